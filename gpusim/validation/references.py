"""Reference answers computed independently of the engine: exact laws (Galton-Watson,
Luria-Delbrueck), lattice-walk moments, discrete and analytic field solutions, CARTmath."""

from __future__ import annotations

import math

from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------------------------
# 2. birth and death (Galton-Watson per step)
def gw_distribution(pb: float, pd: float, steps: int, M: int = 4096) -> np.ndarray:
    """Exact law of Z_steps from Z_0 = 1 for offspring 0 (pd), 1 (1-pb-pd), 2 (pb): the pgf
    composed ``steps`` times, evaluated at the M-th roots of unity, inverted by FFT (the mass
    beyond M is negligible for the sizes used; checked by the total)."""
    s = np.exp(2j * np.pi * np.arange(M) / M)
    g = s.copy()
    for _ in range(steps):
        g = pd + (1.0 - pb - pd) * g + pb * g * g
    p = np.fft.fft(g).real / M
    p = np.clip(p, 0.0, None)
    return p


def gw_extinction_path(pb, pd, n):
    q, out = 0.0, [0.0]
    for _ in range(n):
        q = pd + (1 - pb - pd) * q + pb * q * q
        out.append(q)
    return out


def pure_birth_mutants(p: float, mu: float, steps: int, n0: int = 1, M: int = 4096) -> np.ndarray:
    """Exact law of the number of antigen-negative cells after ``steps`` steps of the engine's
    pure-birth process from ``n0`` antigen-positive founders: per step a cell divides with
    probability p; a positive parent's daughter is negative with probability mu; a negative
    parent's daughters are negative.  First-step decomposition of the probability generating
    functions in y (negative cells): a negative lineage G_{n+1} = (1-p) G_n + p G_n^2, G_0 = y;
    a positive one W_{n+1} = (1-p) W_n + p W_n ((1-mu) W_n + mu G_n), W_0 = 1; n0 founders:
    W^n0.  Evaluated at the M-th roots of unity and inverted by FFT (mass beyond M aliases; M
    is chosen far above the counts that occur)."""
    y = np.exp(2j * np.pi * np.arange(M) / M)
    W = np.ones(M, dtype=complex)
    G = y.copy()
    for _ in range(steps):
        W = (1 - p) * W + p * W * ((1 - mu) * W + mu * G)
        G = (1 - p) * G + p * G * G
    return np.clip(np.fft.fft(W ** n0).real / M, 0.0, None)


def ld_distribution(m: float, kmax: int) -> np.ndarray:
    """Luria-Delbrück mutant-count law for expected mutations m: Ma, Sandri & Sarkar (1992)
    recursion p_0 = e^-m, p_n = (m/n) sum_{i<n} p_i / (n - i + 1)."""
    p = np.zeros(kmax + 1)
    p[0] = math.exp(-m)
    for nn in range(1, kmax + 1):
        i = np.arange(nn)
        p[nn] = m / nn * float((p[:nn] / (nn - i + 1)).sum())
    return p


def golden_max(f, lo: float, hi: float, tol: float = 1e-5) -> float:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol * max(1.0, abs(a)):
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return 0.5 * (a + b)


def ld_fit(weights: np.ndarray, m0: float) -> float:
    """The m maximising sum_k weights[k] log p_k(m) under the Luria-Delbrück law: with weights =
    observed count frequencies, the maximum-likelihood estimate of m (fluctuation analysis);
    with weights = a law, the m an infinite sample from that law would give."""
    w = np.asarray(weights, dtype=float)
    k = np.flatnonzero(w > 0)
    kmax = int(k.max()) if k.size else 0

    def ll(m):
        p = ld_distribution(m, kmax)
        return float((w[k] * np.log(np.maximum(p[k], 1e-300))).sum())

    return golden_max(ll, m0 / 8.0, m0 * 8.0)


def ld_information(m: float, kmax: int = 4000) -> float:
    """Fisher information about m of one Luria-Delbrück count: sum_k p_k (d log p_k / dm)^2
    (central differences; the tail beyond kmax, mass ~ m/kmax, adds about 1/(m kmax))."""
    h = 1e-4 * max(m, 1e-3)
    p = ld_distribution(m, kmax)
    dp = (ld_distribution(m + h, kmax) - ld_distribution(m - h, kmax)) / (2 * h)
    ok = p > 0
    return float((dp[ok] ** 2 / p[ok]).sum())


MOORE2 = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)],
                  dtype=float)


def walk_moments(pm, rho, chemo, best, n_moves_max: int):
    """Exact mean displacement and mean squared displacement after k sub-moves (k = 0..n) of the
    free lattice walk (no boundary, no obstacles), by propagating the joint law of (last
    direction) with first and second moments: state 0..7 = last direction, 8 = none."""
    K = 8
    e = MOORE2
    # transition given a move attempt: new direction distribution from state i
    T = np.zeros((K + 1, K))
    for i in range(K + 1):
        keep = rho if i < K else 0.0
        if i < K:
            T[i, i] += keep
        rest = 1 - keep
        T[i, best] += rest * chemo
        T[i] += rest * (1 - chemo) / K
    # P[i] = prob(state i); M1[i] = E[X 1{state i}] (2-vector); M2[i] = E[|X|^2 1{state i}]
    P = np.zeros(K + 1)
    P[K] = 1
    M1 = np.zeros((K + 1, 2))
    M2 = np.zeros(K + 1)
    mean, msd = [np.zeros(2)], [0.0]
    sq = (e ** 2).sum(1)
    for _ in range(n_moves_max):
        nP = (1 - pm) * P
        nM1 = (1 - pm) * M1
        nM2 = (1 - pm) * M2
        # moving: from state i to direction j with prob pm T[i, j]
        W = pm * T  # (K+1, K)
        nP[:K] += P @ W
        nM1[:K] += W.T @ M1 + (P @ W)[:, None] * e
        nM2[:K] += W.T @ M2 + 2 * (W.T @ M1 * e).sum(1) + (P @ W) * sq
        P, M1, M2 = nP, nM1, nM2
        mean.append(M1.sum(0))
        msd.append(M2.sum())
    return np.array(mean), np.array(msd)


def slab_mfpt(n_sub, pm, rho, pe_slab, L: int, max_steps: int, pm_slab=None):
    """Exact E[min(T, max_steps)] (and the survival curve) in steps, T the first step at whose end
    a cell started at x = 0 (last direction none) stands at x >= L, on a row 0..L with no
    neighbour rows: entry into x in 1..L-1 succeeds with pe_slab, into x = L with 1; a cell inside
    the slab attempts a sub-move with pm_slab (slower in dense ECM; default pm).  States
    (x, last dir in {-1, +1, none})."""
    pm_out = pm
    S = L * 3 + 1  # absorbing state last
    A = S - 1

    def idx(x, dcode):
        return x * 3 + dcode  # dcode 0: -1, 1: +1, 2: none

    P = np.zeros((S, S))
    P[A, A] = 1
    for x in range(L):
        pm = pm_out if (x == 0 or pm_slab is None) else pm_slab
        for dc in range(3):
            i = idx(x, dc)
            P[i, i] += 1 - pm
            keep = rho if dc < 2 else 0.0
            tries = {}
            if dc < 2:
                tries[dc] = tries.get(dc, 0) + pm * keep
            for dd in (0, 1):
                tries[dd] = tries.get(dd, 0) + pm * (1 - keep) / 8
            p_invalid = pm * (1 - keep) * 6 / 8
            P[i, i] += p_invalid
            for dd, pr in tries.items():
                xn = x + (1 if dd == 1 else -1)
                if xn < 0:
                    P[i, i] += pr
                    continue
                pe = 1.0 if (xn >= L or xn == 0) else pe_slab
                j = A if xn >= L else idx(xn, dd)
                P[i, j] += pr * pe
                P[i, i] += pr * (1 - pe)
    Pstep = np.linalg.matrix_power(P, n_sub)
    v = np.zeros(S)
    v[idx(0, 2)] = 1
    surv = [1.0]
    for _ in range(max_steps):
        v = v @ Pstep
        surv.append(1 - v[A])
    surv = np.array(surv)
    return float(surv[:-1].sum()), surv


def slab_exact_discrete(D, h, k, cv, X):
    """Exact solution of the discrete slab problem (float64 dense solve)."""
    n = X - 2
    A = np.zeros((n, n))
    rhs = np.zeros(n)
    dh = D / (h * h)
    for i in range(n):
        A[i, i] = 2 * dh + k
        if i > 0:
            A[i, i - 1] = -dh
        if i < n - 1:
            A[i, i + 1] = -dh
    rhs[0] += dh * cv
    rhs[-1] += dh * cv
    return np.concatenate([[cv], np.linalg.solve(A, rhs), [cv]])


def greenspan_necrotic_radius(R: float, q: float, D: float, cv: float) -> float:
    """Greenspan (1972) necrotic radius of a ball of radius R (um) with zero-order consumption q
    (mmHg/min) where O2 > 0, diffusion D (um^2/min) and O2 held at cv (mmHg) on its surface:
    the root Rn in [0, R) of cv = q/(6D) (R^2 - 3 Rn^2 + 2 Rn^3 / R) (c and c' vanish at Rn);
    0 when cv >= q R^2 / (6D) (no necrosis).  Bisection on rho = Rn/R, where
    1 - 3 rho^2 + 2 rho^3 falls monotonically from 1 to 0."""
    if not (R > 0 and q > 0 and D > 0 and cv >= 0):
        raise ValueError("R, q, D must be > 0 and cv >= 0")
    target = 6.0 * D * cv / (q * R * R)
    if target >= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if 1.0 - 3.0 * mid * mid + 2.0 * mid ** 3 > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi) * R


def greenspan_profile(r, R: float, q: float, D: float, cv: float) -> np.ndarray:
    """Greenspan's steady O2 (mmHg) at radius r (um) in the ball: 0 in the core r <= Rn, else
    c = cv - q/(6D) (R^2 - r^2) + q Rn^3/(3D) (1/r - 1/R)."""
    Rn = greenspan_necrotic_radius(R, q, D, cv)
    r = np.maximum(np.asarray(r, dtype=np.float64), 1e-12)
    c = cv - q / (6.0 * D) * (R * R - r * r) + q * Rn ** 3 / (3.0 * D) * (1.0 / r - 1.0 / R)
    return np.where(r <= Rn, 0.0, c)


def nb_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the six face neighbours of every voxel of a 3-D array (zero outside)."""
    s = np.zeros_like(x)
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        s[tuple(lo)] += x[tuple(hi)]
        s[tuple(hi)] += x[tuple(lo)]
    return s


def obstacle_exact_discrete(inside: np.ndarray, dh: float, q: float, cv: float,
                            rtol: float = 1e-14, max_outer: int = 100) -> tuple[np.ndarray, int]:
    """Exact solution (float64) of the discrete obstacle problem of a zero-order consumer: on the
    voxels of ``inside`` (3-D bool; every other voxel held at cv)

        c >= 0,  w = A c - b >= 0,  c w = 0,   A c = dh (6 c - sum_nb c),  b = dh cv n_out - q

    (n_out: the voxel's neighbours outside; the equation holds where c > 0, consumption stops
    where c = 0).  Primal-dual active set (Hintermueller, Ito & Kunisch 2003; finite for an
    M-matrix): contact set I = {c < 0 of the last solve} + {w > 0 of I}, the free voxels solved
    by matrix-free conjugate gradients to a relative residual ``rtol``.  Written independently of
    the engine's solver.  Returns (c on the full array, 0 outside, outer iterations)."""
    inside = np.asarray(inside, bool)
    n_out = 6.0 - nb_sum(inside.astype(np.float64))
    b = np.where(inside, dh * cv * n_out - q, 0.0)

    def A(x):  # x zero outside the free set
        return dh * (6.0 * x - nb_sum(x))

    contact = np.zeros_like(inside)
    c = np.zeros(inside.shape)
    for it in range(1, max_outer + 1):
        free = inside & ~contact
        x = np.where(free, c, 0.0)
        r = np.where(free, b - A(x), 0.0)
        p = r.copy()
        rr = float((r * r).sum())
        stop = (rtol * float(np.sqrt((b[free] ** 2).sum()))) ** 2
        for _ in range(20 * inside.sum() + 100):
            if rr <= stop:
                break
            Ap = np.where(free, A(p), 0.0)
            alpha = rr / float((p * Ap).sum())
            x += alpha * p
            r -= alpha * Ap
            rr_new = float((r * r).sum())
            p = r + (rr_new / rr) * p
            rr = rr_new
        c = x
        w = np.where(inside, A(c) - b, 0.0)
        new = (contact & (w > 0)) | (free & (c < 0))
        if np.array_equal(new, contact):
            return c, it
        contact = new
    raise RuntimeError("obstacle_exact_discrete: the active set did not settle")


# ---------------------------------------------------------------------------------------------
# 6. well-mixed limit: CARTmath
def cartmath_euler(CT0, CM0, T0, pars: dict, dt_days: float, steps: int) -> np.ndarray:
    """Explicit Euler of CARTmath (Barros et al., Cancers 2021, eq. 1):

        dC_T/dt = phi C_T - rho C_T + theta T C_M - alpha T C_T
        dC_M/dt = eps C_T - theta T C_M - mu C_M
        dT/dt   = r T (1 - b T) - gamma C_T T

    Returns (steps + 1, 3) of (C_T, C_M, T)."""
    p = pars
    out = np.zeros((steps + 1, 3))
    CT, CM, T = float(CT0), float(CM0), float(T0)
    out[0] = CT, CM, T
    for i in range(steps):
        dCT = p["phi"] * CT - p["rho"] * CT + p["theta"] * T * CM - p["alpha"] * T * CT
        dCM = p["eps"] * CT - p["theta"] * T * CM - p["mu"] * CM
        dT = p["r"] * T * (1 - p["b"] * T) - p["gamma"] * CT * T
        CT, CM, T = CT + dt_days * dCT, CM + dt_days * dCM, T + dt_days * dT
        out[i + 1] = CT, CM, T
    return out


def p_encounter(T: float, V: int, n: int = 9) -> float:
    """Probability that n given voxels hold at least one of T cells placed on distinct, uniformly
    random voxels of V (hypergeometric)."""
    if T <= 0:
        return 0.0
    i = np.arange(n)
    return float(1.0 - np.prod(np.clip(1.0 - T / (V - i), 0.0, 1.0)))


def cartmath_engine_map(T0, C0, M0, p: dict, V: int, steps: int) -> np.ndarray:
    """Expected counts (T, C_T, C_M) per step of the engine's own step in the stirred well-mixed
    set-up (each expectation taken given the previous expected counts; the moment-closure error
    is O(1/N)): tumour phase T1 = T (1 + pb - pd); engagement with encounter probability
    P = p_encounter(T1) (neighbourhoods never overlap: no claim is ever lost): kills
    C P p_rec p_kill, stimulated effectors C P p_rec, reactivated memory M P p_rec p_react;
    fate: death of effectors (reactivated included) with p_rho and of the other memory cells
    with p_mu, conversion of surviving unstimulated effectors with p_mem, division of the
    surviving effectors that did not convert with p_phi."""
    out = np.zeros((steps + 1, 3))
    T, C, M = float(T0), float(C0), float(M0)
    out[0] = T, C, M
    for k in range(steps):
        T1 = T * (1 + p["pb"] - p["pd"])
        P = p_encounter(T1, V)
        kills = C * P * p["p_rec"] * p["p_kill"]
        stim = C * P * p["p_rec"]
        react = M * P * p["p_rec"] * p["p_react"]
        alive = (C + react) * (1 - p["p_rho"])
        conv = (C - stim) * (1 - p["p_rho"]) * p["p_mem"]
        div = (alive - conv) * p["p_phi"]
        T, C, M = T1 - kills, alive - conv + div, (M - react) * (1 - p["p_mu"]) + conv
        out[k + 1] = T, C, M
    return out


# ---------------------------------------------------------------------------------------------
# tumour growth and heterogeneity (the ``biology`` case and tests/test_growth.py,
# tests/test_heterogeneity.py)
SPHEROID_DATA = Path(__file__).parent / "data" / "freyer_sutherland_1986_emt6_spheroids.tsv"
#: day 0 of the untreated scenario in hours of culture: where the Gompertz fit of the data's radius
#: reaches the scenario's 160 µm (docs/model.md)
T0_HOURS = 177.08
#: stated bound on the relative deviation of the mean model radius from each data radius
GROWTH_BOUND = 0.15


def spheroid_data() -> tuple[np.ndarray, np.ndarray]:
    """Freyer & Sutherland 1986 EMT6/Ro spheroids: (time in hours, radius in µm)."""
    lines = [ln for ln in SPHEROID_DATA.read_text().splitlines() if ln and not ln.startswith("#")]
    d = np.array([[float(x) for x in ln.split()] for ln in lines[1:]])
    return d[:, 0], d[:, 2] / 2.0


def gompertz_radius_um(t_hours):
    """The Gompertz fit of the data's radius (docs/model.md): r(t) = r_inf exp(ln(r_0 / r_inf)
    exp(-a (t - 101.69 h))), r_inf = 783.7 µm, r_0 = 80.7 µm, a = 4.75e-3 /h."""
    return 783.66 * np.exp(np.log(80.71 / 783.66) * np.exp(-4.7505e-3 * (np.asarray(t_hours) - 101.69)))


def equivalent_radius_um(sim) -> np.ndarray:
    """Per replicate: the radius of a disc of the tumour's cells, sqrt(N / pi) x voxel (µm)."""
    n = sim.metrics()["tumour_cells"].astype(np.float64)
    return sim.scenario["domain.voxel_um"] * np.sqrt(n / np.pi)


def subclone_fractions(sc, reps):
    """Realised initial subclone fractions per replicate, columns A+B+, A+B-, A-B+, A-B- (over
    tumour cells); also the tumour cell counts and the initial tissue."""
    from ..model.lattice import Kind
    from ..model.tissue import initial_tissue_batch

    t = initial_tissue_batch(sc, int(sc["run.seed"]), reps)
    R = len(reps)
    tum = (t["kind"] == Kind.TUMOUR).reshape(R, -1)
    a = (t["antigen_a"] > 0).reshape(R, -1)
    b = (t["antigen_b"] > 0).reshape(R, -1)
    n = tum.sum(axis=1)
    counts = np.stack([(tum & a & b).sum(1), (tum & a & ~b).sum(1), (tum & ~a & b).sum(1),
                       (tum & ~a & ~b).sum(1)], axis=1)
    return counts / n[:, None], n, t


def declared_fractions(sc) -> np.ndarray:
    """The scenario's declared subclone fractions in the order of :func:`subclone_fractions`."""
    return np.array([sc["tumour.fraction_a_pos_b_pos"], sc["tumour.fraction_a_pos_b_neg"],
                     sc["tumour.fraction_a_neg_b_pos"], sc["tumour.fraction_a_neg_b_neg"]])

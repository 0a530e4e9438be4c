"""Case 5, ``fields``: steady oxygen against discrete, analytic and Greenspan solutions."""

from __future__ import annotations

import math

import numpy as np

from ..core import CaseResult, Check, F32, scenario
from ..lattices import blank_state
from ..phases import NUMPY, Phases
from ..references import greenspan_necrotic_radius, obstacle_exact_discrete, slab_exact_discrete


# ---------------------------------------------------------------------------------------------
# 5. fields
def o2_sink(sc) -> float:
    """Oxygen sink of a tumour voxel (1/min): decay + tumour uptake, as float32 sum."""
    return float(F32(sc["oxygen.decay_per_min"]) + F32(sc["oxygen.uptake_tumour_per_min"]))


def slab_engine(phases, sc, h: float, L_um: float, tol: float = 0.0, omega: float = 1.0):
    """Oxygen on a 1-D row of tumour cells between two vessels, solved by the engine's
    FieldSolver (by default plain Gauss-Seidel to its float32 fixed point, so that the solver's
    stopping error does not hide the discretisation error). Returns (x_um, c)."""
    from ...model.fields import FieldSolver

    X = int(round(L_um / h)) + 1
    a = np.full((1, 1, 1, X), o2_sink(sc), np.float32)
    fixed = np.zeros((1, 1, 1, X), bool)
    fixed[..., 0] = fixed[..., -1] = True
    c = np.full((1, 1, 1, X), sc["oxygen.vessel_mmHg"], np.float32)
    fs = FieldSolver(c.shape, diffusion_um2_per_min=sc["oxygen.diffusion_um2_per_min"], voxel_um=h,
                     boundary="neumann", omega=omega, tol=tol, max_iter=200_000)
    phases.solve(fs, c, a, np.zeros_like(a), fixed, sc["oxygen.vessel_mmHg"])
    return np.arange(X) * h, c[0, 0, 0].astype(np.float64)


def greenspan_engine(phases, R0: int, h: float, D: float, cv: float, q: float):
    """O2 of a ball of tumour voxels (radius R0 voxels, centre on a voxel) with zero-order
    consumption q only (no first-order uptake, no decay), VESSEL voxels held at cv outside, solved
    by the engine's FieldsPhase on a blank state (plain Gauss-Seidel, omega = 1, to its float32
    fixed point).  Returns (o2 (n, n, n) float32, inside mask, distance from the centre in
    voxels, oxygen sweeps, max_iter)."""
    from ...model.lattice import Kind

    n = 2 * R0 + 3
    sc = scenario({"domain.x_voxels": n, "domain.y_voxels": n, "domain.z_voxels": n,
                    "domain.voxel_um": h, "oxygen.diffusion_um2_per_min": D,
                    "oxygen.vessel_mmHg": cv, "run.field_omega": 1.0, "run.field_tolerance": 1e-9,
                    "oxygen.decay_per_min": 0.0, "oxygen.uptake_tumour_per_min": 0.0,
                    "oxygen.consumption_tumour_mmHg_per_min": q,
                    # the other fields become trivial (converged in one sweep)
                    "glucose.uptake_tumour_per_min": 0.0, "chemokine.secretion_tumour_per_min": 0.0,
                    "tgfb.secretion_tumour_pg_per_cell_per_day": 0.0})
    ax = np.arange(n) - n // 2
    dist = np.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    inside = dist <= R0
    st = blank_state((n, n, n), 1, o2=cv)
    st.kind[0] = np.where(inside, np.uint8(Kind.TUMOUR), np.uint8(Kind.VESSEL))
    sweeps, max_iter = phases.fields(sc, st)
    return st.o2[0], inside, dist, sweeps, max_iter


def case_fields(quick: bool, seed: int, phases: Phases = NUMPY) -> CaseResult:
    """Case 5: steady oxygen fields (slab, spheroid, Greenspan) against exact and analytic
    solutions (concentrations in mmHg, lengths in µm)."""
    res = CaseResult("fields", "Steady oxygen: slab and spheroid, first-order uptake; spheroid, "
                     "zero-order consumption",
                     "exact discrete solution (dense solve; obstacle problem by active set); "
                     "analytic cosh / sinh(r)/r profiles with length sqrt(D/k); Greenspan 1972 "
                     "necrotic radius")
    sc = scenario({})
    D = sc["oxygen.diffusion_um2_per_min"]
    cv = sc["oxygen.vessel_mmHg"]
    k = o2_sink(sc)
    lam = math.sqrt(D / k)
    h0 = sc["domain.voxel_um"]
    data = {"lam": lam, "cv": cv, "h": h0, "D": D}
    data.update(_slab_checks(res, phases, sc, D, cv, k, lam, h0))
    data.update(_spheroid_checks(res, phases, quick, D, cv, k, lam, h0))
    data.update(_greenspan_checks(res, phases, quick, D, cv, h0))
    res.data = data
    return res


def _slab_checks(res: CaseResult, phases: Phases, sc, D: float, cv: float, k: float, lam: float,
                 h0: float) -> dict:
    """(a) the engine's slab profile against the exact discrete solution; (b) against the
    analytic cosh profile, and its order of convergence under refinement."""
    L = 400.0
    # (a) engine vs exact discrete at the scenario's voxel size
    x, c = slab_engine(phases, sc, h0, L)
    ex = slab_exact_discrete(D, h0, k, cv, x.size)
    err_d = float(np.max(np.abs(c - ex)))
    # numerical tolerance: float32 rounding accumulated over the profile, 1e-5 x the vessel value
    res.checks.append(Check("slab: engine vs exact discrete (max |dc|, mmHg)", 0.0, err_d,
                            1e-5 * cv, "numeric", note="Gauss-Seidel to the float32 fixed point; "
                                                      "tolerance 1e-5 x vessel value"))
    # (b) analytic profile and convergence under refinement
    def analytic(xx):
        return cv * np.cosh((xx - L / 2) / lam) / math.cosh(L / (2 * lam))

    hs = [2 * h0, h0, h0 / 2]
    errs = []
    prof = {}
    for h in hs:
        xx, cc = slab_engine(phases, sc, h, L)
        sel = np.isclose(np.mod(xx, h0), 0) | np.isclose(np.mod(xx, h0), h0)
        errs.append(float(np.max(np.abs(cc[sel] - analytic(xx[sel])))))
        prof[h] = (xx, cc)
        if h == h0:
            err_h0 = errs[-1]
    order = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
    # discrete cosh profile error ~ (h^2 / 12 lam^2) x O(cv): at h0 a relative 3e-3
    res.checks.append(Check(f"slab: max error vs analytic at h = {h0:g} um (mmHg)", 0.0, err_h0,
                            cv * (h0 / lam) ** 2 / 6, "numeric",
                            note=f"lambda = sqrt(D/k) = {lam:.1f} um; bound cv (h/lambda)^2/6"))
    res.checks.append(Check(f"slab: convergence order h = {hs[1]:g} -> {hs[2]:g} um", 2.0, order[-1],
                            0.15, "numeric", note=f"orders {', '.join(f'{o:.3f}' for o in order)}"))
    return {"prof": prof, "analytic": analytic, "errs": errs, "hs": hs}


def _ball_exact_discrete(inside: np.ndarray, D: float, h0: float, k: float, cv: float) -> np.ndarray:
    """The exact discrete steady state over the voxels of ``inside`` (Z, Y, X) with first-order
    uptake ``k`` and the surroundings held at ``cv``: one dense solve (float64)."""
    idx = -np.ones(inside.shape, np.int64)
    iv = np.argwhere(inside)
    idx[inside] = np.arange(iv.shape[0])
    dh = D / (h0 * h0)
    M = np.zeros((iv.shape[0], iv.shape[0]))
    rhs = np.zeros(iv.shape[0])
    for r_, (zz, yy, xx) in enumerate(iv):
        M[r_, r_] = 6 * dh + k
        for dz, dy, dxx in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            j = idx[zz + dz, yy + dy, xx + dxx]
            if j >= 0:
                M[r_, j] -= dh
            else:
                rhs[r_] += dh * cv
    sol = np.linalg.solve(M, rhs)
    return sol


def _spheroid_checks(res: CaseResult, phases: Phases, quick: bool, D: float, cv: float, k: float,
                     lam: float, h0: float) -> dict:
    """(c) a 3D ball of tumour with first-order uptake: engine against the exact discrete
    solution, and its centre value against the analytic sinh(r)/r bracket."""
    from ...model.fields import FieldSolver

    # (c) spheroid: 3D ball of tumour (radius R0 voxels) in vessel-held surroundings
    R0 = 4 if quick else 6
    n = 2 * R0 + 3
    ax = np.arange(n) - n // 2
    dist = np.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    inside = dist <= R0
    a = np.where(inside, F32(k), F32(0)).astype(np.float32)[None]
    fixed = ~inside[None]
    c3 = np.full((1, n, n, n), cv, np.float32)
    fs = FieldSolver(c3.shape, diffusion_um2_per_min=D, voxel_um=h0, boundary="neumann",
                     omega=1.0, tol=0.0, max_iter=200_000)
    phases.solve(fs, c3, a, np.zeros_like(a), fixed, cv)
    sol = _ball_exact_discrete(inside, D, h0, k, cv)
    eng = c3[0][inside].astype(np.float64)
    res.checks.append(Check("spheroid: engine vs exact discrete (max |dc|, mmHg)", 0.0,
                            float(np.max(np.abs(eng - sol))), 1e-5 * cv, "numeric"))
    centre = float(c3[0, n // 2, n // 2, n // 2])

    def centre_an(Rum):
        return cv * (Rum / lam) / math.sinh(Rum / lam)

    lo, hi = centre_an((R0 + 1) * h0), centre_an(R0 * h0)
    res.checks.append(Check(f"spheroid: centre O2 within analytic bracket (radius {R0}..{R0 + 1} voxels)",
                            (lo + hi) / 2, centre, (hi - lo) / 2, "numeric",
                            note="the staircase ball's boundary lies between R0 and R0 + 1 voxels"))
    return {"sphere_r": dist[inside] * h0, "sphere_c": eng, "centre_an": centre_an, "R0um": R0 * h0}


def _greenspan_checks(res: CaseResult, phases: Phases, quick: bool, D: float, cv: float, h0: float) -> dict:
    """(d) zero-order consumption (Greenspan 1972): engine against the exact discrete obstacle
    problem, and the necrotic radius against Greenspan's."""
    # (d) spheroid with zero-order consumption q where O2 > 0 (Greenspan 1972): a ball of tumour
    # voxels (radius G0 voxels) in vessel-held surroundings, no first-order uptake, solved by the
    # engine's FieldsPhase (projected Gauss-Seidel, floor 0).  q = 12 D cv / R^2 puts Greenspan's
    # necrotic radius at R/2 for R = (G0 + 1/2) h, the middle of the staircase ball's radius.
    G0 = 8 if quick else 16
    q = 12.0 * D * cv / ((G0 + 0.5) * h0) ** 2
    cg, gin, gdist, sweeps, max_iter = greenspan_engine(phases, G0, h0, D, cv, q)
    gex, _ = obstacle_exact_discrete(gin, D / (h0 * h0), q, cv)
    err_g = float(np.max(np.abs(cg[gin].astype(np.float64) - gex[gin])))
    res.checks.append(Check("zero-order spheroid: engine vs exact discrete (mmHg)", 0.0, err_g,
                            1e-5 * cv, "numeric",
                            note=f"max |dc|; R0 = {G0} voxels, q = {q:.4g} mmHg/min; exact: "
                                 "discrete obstacle problem, float64 active set + CG; engine "
                                 f"{sweeps if sweeps >= 0 else 'n/a'} sweeps (max {max_iter}); "
                                 "tolerance 1e-5 x vessel value"))
    # necrotic radius: the volume-equivalent radius of the engine's core (voxels with O2 == 0)
    # against Greenspan's Rn.  A priori tolerance: the staircase ball's surface lies between R0
    # and R0 + 1 voxels from the centre, and Rn(R) grows with R, so the continuum core radius lies
    # in [Rn(R0 h), Rn((R0 + 1) h)]; a core made of the voxels whose centres lie within a radius
    # rho is a union of cubes that contains the ball of radius rho - sqrt(3)/2 h (every point of
    # that ball lies in a cube whose centre is within rho) and lies inside the ball of radius
    # rho + sqrt(3)/2 h (no point of a cube is farther than sqrt(3)/2 h from its centre), so its
    # volume-equivalent radius lies within sqrt(3)/2 h of rho.  Together:
    # [Rn(R0 h) - sqrt(3)/2 h, Rn((R0 + 1) h) + sqrt(3)/2 h].
    n_core = int(np.count_nonzero(cg[gin] == 0))
    rn_eng = (3.0 * n_core / (4.0 * math.pi)) ** (1.0 / 3.0) * h0
    rn_lo = greenspan_necrotic_radius(G0 * h0, q, D, cv) - math.sqrt(3) / 2 * h0
    rn_hi = greenspan_necrotic_radius((G0 + 1) * h0, q, D, cv) + math.sqrt(3) / 2 * h0
    rn_mid = greenspan_necrotic_radius((G0 + 0.5) * h0, q, D, cv)
    res.checks.append(Check("zero-order spheroid: necrotic radius (um)",
                            (rn_lo + rn_hi) / 2, rn_eng, (rn_hi - rn_lo) / 2, "numeric",
                            note=f"volume-equivalent radius of the {n_core} voxels at O2 = 0 "
                                 f"(exact discrete: "
                                 f"{int(np.count_nonzero(gex[gin] <= 0))}); Greenspan Rn = "
                                 f"{rn_mid:.1f} um at R = {G0 + 0.5:g} voxels; bracket "
                                 "Rn(R0 h) - sqrt(3)/2 h .. Rn((R0+1) h) + sqrt(3)/2 h"))
    return {"gs_r": gdist[gin] * h0, "gs_c": cg[gin].astype(np.float64), "gs_R0um": G0 * h0,
            "gs_q": q, "gs_rn": rn_eng}

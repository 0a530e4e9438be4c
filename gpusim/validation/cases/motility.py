"""Case 4, ``motility``: the CAR-T lattice walk against exact Markov-chain moments."""

from __future__ import annotations

import math

import numpy as np

from ..core import CaseResult, F32, p_exact, scenario, z_check
from ..lattices import blank_state, place_grid
from ..phases import NUMPY, Phases
from ..references import slab_mfpt, walk_moments


# ---------------------------------------------------------------------------------------------
# 4. motility
def walk_params(sc):
    """Per-sub-move probabilities of the CAR-T walk, from the scenario (exact realised values)."""
    step_um = sc["car_t.speed_um_per_min"] * sc["run.dt_min"] / sc["domain.voxel_um"]
    n_sub = max(1, math.ceil(step_um))
    return (n_sub, p_exact(step_um / n_sub), p_exact(sc["car_t.persistence"]),
            p_exact(sc["car_t.chemotaxis_bias"]))


def movement_only(extra: dict):
    base = {"car_t.kill_rate_per_min": 0.0, "car_t.division_rate_per_min": 0.0,
            "car_t.costimulation": "4-1BB", "car_t.generation": "second",
            "car_t.lifespan_days": 1e5, "car_t.starvation_death_rate_per_min": 0.0,
            "car_t.exhaustion_hypoxia_per_day": 0.0}
    base.update(extra)
    return scenario(base)


def run_walkers(phases, sc, seed, R, spacing, steps, chem_slope=0.0):
    from ...model import car_t as car_t_mod

    cp = car_t_mod.CarTParams.from_scenario(sc)
    Y = X = 4 * spacing
    st = blank_state((1, Y, X), R, capacity=16)
    if chem_slope:
        st.chemokine[:] = (np.arange(X, dtype=np.float32) * F32(chem_slope))[None, None, None, :]
    pos0 = place_grid(st, spacing)
    y0, x0 = pos0 // X, pos0 % X
    disp = []
    for k in range(steps):
        phases.car_t(sc, st, cp, seed, k, {})
        p = st.t_pos[:, :pos0.size].astype(np.int64)
        disp.append(np.stack([p // X - y0, p % X - x0], axis=-1).reshape(-1, 2))
    return np.array(disp, dtype=float)  # (steps, cells, 2)


def case_motility(quick: bool, seed: int, phases: Phases = NUMPY) -> CaseResult:
    """Case 4: CAR-T random walk, chemotaxis and stroma crossing against exact moments
    (displacements in voxels, times in steps)."""
    res = CaseResult("motility", "CAR-T motility: random walk, chemotaxis, stroma crossing",
                     "exact moments of the persistent Moore-lattice walk (Markov chain on the "
                     "last direction); exact mean first-passage time across a slab")
    steps = 20
    spacing = 64
    R = 96 if quick else 384
    # (a) random walk, no chemokine
    sc = movement_only({"run.seed": seed})
    n_sub, pm, rho, chemo = walk_params(sc)
    disp = run_walkers(phases, sc, seed, R, spacing, steps)
    _, msd_exact = walk_moments(pm, rho, 0.0, 0, steps * n_sub)
    sq = (disp ** 2).sum(-1)
    msd_t = msd_exact[n_sub::n_sub]
    res.checks.append(z_check(f"MSD after {steps} steps (voxel^2)", msd_t[-1], sq[-1].mean(),
                               sq[-1].std(ddof=1) / math.sqrt(sq.shape[1]),
                               note=f"{sq.shape[1]} cells, {n_sub} sub-moves/step, p_move {pm:.4f}, "
                                    f"persistence {rho:.4f}; SE from the sample"))
    # (b) chemotaxis up a linear gradient along +x; ties between the three x+1 neighbours go to the
    # lowest neighbour index, (dy, dx) = (-1, +1)
    disp_c = run_walkers(phases, sc, seed + 1, R, spacing, steps, chem_slope=1e-3)
    best = 2
    mean_c, _ = walk_moments(pm, rho, chemo, best, steps * n_sub)
    mc = mean_c[steps * n_sub]
    for axis, nm in ((1, "x"), (0, "y")):
        v = disp_c[-1, :, axis]
        res.checks.append(z_check(f"chemotactic drift along {nm} after {steps} steps", mc[axis],
                                   v.mean(), v.std(ddof=1) / math.sqrt(v.size),
                                   note=f"bias {chemo:.4f}; SE from the sample"))
    hit, surv, mfpt = _stroma_crossing(res, phases, sc, seed, quick, n_sub, pm, rho)
    t = np.arange(1, steps + 1)
    res.data = {"t": t, "msd": sq.mean(1), "msd_se": sq.std(1, ddof=1) / math.sqrt(sq.shape[1]),
                "msd_exact": msd_t, "drift": disp_c.mean(1), "drift_exact": mean_c[n_sub::n_sub],
                "hit": hit, "surv": surv, "mfpt": mfpt}
    return res


def _stroma_crossing(res: CaseResult, phases: Phases, sc, seed: int, quick: bool, n_sub: int,
                     pm: float, rho: float):
    """(c) crossing a slab of stroma: the engine's first-passage steps against the exact mean;
    returns the steps per replicate, the exact survival curve and the exact mean."""
    from ...model import car_t as car_t_mod

    # a single row (1 x 1 x L+1 lattice, one cell per replicate)
    L, rho_s = 8, 0.8
    perm = sc["stroma.permeability"]
    pe = p_exact(float(F32(1) - F32(rho_s) * F32(1.0 - perm)))
    # inside the slab a cell attempts a sub-move with p_move x (1 - rho (1 - dense_speed_fraction))
    slow = sc["stroma.dense_speed_fraction"]
    step_um = sc["car_t.speed_um_per_min"] * sc["run.dt_min"] / sc["domain.voxel_um"]
    pm_s = p_exact(float(F32(step_um / n_sub) * (F32(1) - F32(rho_s) * F32(1.0 - slow))))
    Tmax = 400
    mfpt, surv = slab_mfpt(n_sub, pm, rho, pe, L, Tmax, pm_slab=pm_s)
    Rs = 400 if quick else 2000
    cp = car_t_mod.CarTParams.from_scenario(sc)
    st = blank_state((1, 1, L + 1), Rs)
    st.ecm[:, 0, 0, 1:L] = F32(rho_s)
    st.t_state[:, 0] = 1
    st.t_count[:] = 1
    hit = np.full(Rs, Tmax, np.int64)
    for k in range(Tmax):
        phases.car_t(sc, st, cp, seed + 2, k, {})
        newly = (st.t_pos[:, 0] >= L) & (hit == Tmax)
        hit[newly] = k + 1
        if (hit < Tmax).all():
            break
    # variance of min(T, Tmax) from the exact survival curve: E[T^2] = sum (2k+1) P(T > k)
    ks = np.arange(Tmax)
    et2 = float(((2 * ks + 1) * surv[:-1]).sum())
    sd = math.sqrt(max(et2 - mfpt ** 2, 0))
    res.checks.append(z_check(f"steps to cross {L - 1} voxels of stroma (density {rho_s})", mfpt,
                               hit.mean(), sd / math.sqrt(Rs),
                               note=f"entry probability {pe:.4f} (permeability {perm}), move "
                                    f"probability in the slab {pm_s:.4f}; exact SE; "
                                    f"truncated at {Tmax} steps"))
    return hit, surv, mfpt

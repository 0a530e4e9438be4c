"""Case 6, ``well_mixed``: the stirred engine against CARTmath and its mean-field map."""

from __future__ import annotations

import math

import numpy as np

from ... import rng
from ..core import ALPHA_CHECK, CaseResult, Check, p_exact, scenario, t_quantile, z_check
from ..lattices import blank_state, place_tumour, stir, stir_agents
from ..phases import NUMPY, Phases
from ..references import cartmath_engine_map, cartmath_euler


# the sub-model the engine realises: no killing, no memory, no carrying capacity (see docs)
WM_PARS = {"phi": 0.5, "rho": 1 / 42.0, "theta": 0.0, "alpha": 0.0, "eps": 0.0, "mu": 0.0,
           "r_div": 1440 * 0.00072, "r_death": 1440 * 5.3e-5, "b": 0.0, "gamma": 0.0}


def case_well_mixed(quick: bool, seed: int, phases: Phases = NUMPY) -> CaseResult:
    """Case 6: the stirred engine against CARTmath (part A here, part B in
    :func:`well_mixed_interacting`); counts in cells, time in days."""
    res = CaseResult("well_mixed", "Well-mixed limit: CARTmath (effector, memory, tumour)",
                     "Barros et al. 2021, CARTmath, Cancers 13:2941 (explicit Euler at the "
                     "engine's step): (A) growth, expansion and death alone, exact Galton-Watson "
                     "means; (B) with killing, memory conversion, reactivation and memory death "
                     "in a stirred lattice (alpha = b = 0), against the engine's mean-field map "
                     "and CARTmath")
    dt = 6.0
    dtd = dt / 1440.0
    P = WM_PARS
    sc = _part_a_scenario(seed, dt)
    days = 1.0 if quick else 2.0
    steps = int(round(days / dtd))
    R = 8 if quick else 24
    E = 40  # 3D, 40^3 voxels: 26 neighbours, so a growing clone is never boxed in
    T0, C0 = 1200, 1000
    traj = _run_part_a(phases, sc, seed, steps, R, E, T0, C0)
    pars = {"phi": P["phi"], "rho": P["rho"], "theta": 0.0, "alpha": 0.0, "eps": 0.0, "mu": 0.0,
            "r": P["r_div"] - P["r_death"], "b": 0.0, "gamma": 0.0}
    ode = cartmath_euler(C0, 0.0, T0, pars, dtd, steps)
    # exact discrete means: tumour (1 + pb - pd)^n; CAR-T (1 - p_rho)(1 + p_phi) per step
    # (division only if the cell did not die), which differs from Euler by p_rho p_phi per step
    pb, pd = p_exact(P["r_div"] * dtd), p_exact(P["r_death"] * dtd)
    pphi, prho = p_exact(P["phi"] * dtd), p_exact(P["rho"] * dtd)
    mT = T0 * (1 + pb - pd) ** steps
    mC = C0 * ((1 - prho) * (1 + pphi)) ** steps
    # variances of the two Galton-Watson processes (per-step offspring laws) for the SE
    def gw_var(n0, m1, s2, n):
        return n0 * s2 * m1 ** (n - 1) * (m1 ** n - 1) / (m1 - 1)

    vT = gw_var(T0, 1 + pb - pd, pb + pd - (pb - pd) ** 2, steps)
    off = np.array([prho, (1 - prho) * (1 - pphi), (1 - prho) * pphi])  # 0, 1, 2 offspring
    m1 = off[1] + 2 * off[2]
    vC = gw_var(C0, m1, off[1] + 4 * off[2] - m1 ** 2, steps)
    fT, fC = traj[-1, :, 0], traj[-1, :, 1]
    res.checks.append(z_check(f"tumour cells at day {days:g} (ensemble mean)", ode[-1, 2], fT.mean(),
                               math.sqrt(vT / R), extra_tol=abs(mT - ode[-1, 2]),
                               note=f"{R} replicates; Euler vs exact discrete {abs(mT - ode[-1, 2]):.2g}"))
    res.checks.append(z_check(f"CAR-T cells at day {days:g} (ensemble mean)", ode[-1, 0], fC.mean(),
                               math.sqrt(vC / R), extra_tol=abs(mC - ode[-1, 0]),
                               note=f"Euler vs exact discrete {abs(mC - ode[-1, 0]):.2g} "
                                    "(p_death x p_division per step)"))
    res.data = {"t": np.arange(steps + 1) * dtd, "traj": traj, "ode": ode}
    well_mixed_interacting(phases, quick, seed, res)
    return res

# the interacting set-up: rates per day (CARTmath's units) and the engine probabilities realising
# them; 2D 300 x 300 lattice, tumour cells stirred, CAR-T cells on the 3-spaced grid
WMI = {"E": 300, "T0": 1500, "C0": 1000, "M0": 1000, "r_div": 1440 * 0.00072,
       "r_death": 1440 * 5.3e-5, "phi": 0.6, "rho": 1 / 42.0, "eps": 0.5, "mu": 0.1,
       "p_kill": 0.025, "p_react": 0.0167, "affinity": 1e-4}


def well_mixed_interacting(phases, quick: bool, seed: int, res: CaseResult) -> None:
    """Part B of ``well_mixed``: killing, memory conversion, reactivation and memory death."""
    from ...model import car_t as car_t_mod

    P = WMI
    dt = 6.0
    dtd = dt / 1440.0
    sc = _part_b_scenario(seed, dt)
    days = 0.5 if quick else 2.0
    steps = int(round(days / dtd))
    R = 16 if quick else 32
    E = P["E"]
    V = E * E
    T0, C0, M0 = P["T0"], P["C0"], P["M0"]
    cp = car_t_mod.CarTParams.from_scenario(sc)
    traj = _run_part_b(phases, sc, seed, steps, R, cp)
    # references from the scenario values (exact realised per-step probabilities)
    pr = {"pb": p_exact(P["r_div"] * dtd), "pd": p_exact(P["r_death"] * dtd),
          "p_phi": p_exact(P["phi"] * dtd), "p_rho": p_exact(P["rho"] * dtd),
          "p_mem": p_exact(P["eps"] * dtd), "p_mu": p_exact(P["mu"] * dtd),
          "p_kill": p_exact(P["p_kill"]), "p_react": p_exact(P["p_react"]),
          "p_rec": p_exact(1.0 / (1.0 + P["affinity"]))}
    mf = cartmath_engine_map(T0, C0, M0, pr, V, steps)
    # CARTmath with the same step: gamma, theta from the encounter volume (9 voxels of V);
    # the engine's conversion removes the effector, so CARTmath's effector loss rho is
    # death + conversion; alpha = b = 0 (no exhaustion by killing, ample room)
    pars = {"phi": pr["p_phi"] / dtd, "rho": (pr["p_rho"] + pr["p_mem"]) / dtd,
            "eps": pr["p_mem"] / dtd, "mu": pr["p_mu"] / dtd, "alpha": 0.0, "b": 0.0,
            "r": (pr["pb"] - pr["pd"]) / dtd,
            "gamma": 9 * pr["p_rec"] * pr["p_kill"] / (V * dtd),
            "theta": 9 * pr["p_rec"] * pr["p_react"] / (V * dtd)}
    ode = cartmath_euler(C0, M0, T0, pars, dtd, steps)  # columns C_T, C_M, T
    ode_tcm = ode[:, [2, 0, 1]]
    _part_b_checks(res, traj, mf, ode_tcm, days, R)
    res.data.update({"t2": np.arange(steps + 1) * dtd, "traj2": traj, "map2": mf, "ode2": ode_tcm,
                     "pars2": pars})


def _inv(rate_per_day: float, dt: float) -> float:
    """The engine rate (1/min) whose per-step probability over ``dt`` min is ``rate_per_day`` x
    the step in days (Euler's increment)."""
    dtd = dt / 1440.0
    return -math.log(1 - rate_per_day * dtd) / dt


def _rates(P: dict, dt: float) -> dict:
    """The settings both parts share: growth, expansion and death at the rates of ``P`` (per day),
    everything else that would change the counts off (no glucose or oxygen limit, no necrosis,
    no antigen loss, no exhaustion, no activation limit, no lymphodepletion)."""
    inv = lambda rate_per_day: _inv(rate_per_day, dt)
    return {"tumour.division_rate_per_min": inv(P["r_div"]), "tumour.apoptosis_rate_per_min": inv(P["r_death"]),
            "tumour.glucose_half_mM": 0.0, "tumour.necrosis_max_rate_per_min": 0.0,
            "tumour.antigen_loss_per_division": 0.0,
            "car_t.division_rate_per_min": inv(P["phi"]), "car_t.lifespan_days": 1.0 / (1440 * inv(P["rho"])),
            "car_t.max_divisions": 255, "car_t.glucose_half_mM": 0.0, "car_t.costimulation": "4-1BB",
            "car_t.generation": "second", "delivery.lymphodepletion": False,
            "car_t.activation_hours": 3000.0, "car_t.starvation_death_rate_per_min": 0.0,
            "car_t.exhaustion_hypoxia_per_day": 0.0}


def _part_a_scenario(seed: int, dt: float):
    """Part A: growth, expansion and death alone (no killing, memory or exhaustion)."""
    return scenario({**_rates(WM_PARS, dt), "car_t.kill_rate_per_min": 0.0, "run.seed": seed})


def _run_part_a(phases: Phases, sc, seed: int, steps: int, R: int, E: int, T0: int, C0: int) -> np.ndarray:
    """Part A on an E^3 lattice: (steps + 1, R, 2) tumour and CAR-T counts."""
    from ...model import car_t as car_t_mod
    from ...model import tumour as tumour_mod

    tp = tumour_mod.TumourParams.from_scenario(sc)
    cp = car_t_mod.CarTParams.from_scenario(sc)
    V = E ** 3
    st = blank_state((E, E, E), R, capacity=V)
    # scattered initial cells (deterministic from the seed via the engine's generator)
    for r in range(R):
        w = rng.blocks(seed, r, 0, rng.Stream.INIT_TISSUE, np.arange(V))
        order = np.argsort(w[:, 0], kind="stable")
        place_tumour(st, r, order[:T0])
        tpos = np.sort(np.argsort(w[:, 1], kind="stable")[:C0])
        st.t_pos[r, :C0] = tpos
    st.t_state[:, :C0] = 1
    st.t_div[:, :C0] = 255
    st.t_act[:, :C0] = cp.activation_steps
    st.t_count[:] = C0
    traj = np.zeros((steps + 1, R, 2))
    traj[0] = np.stack([np.full(R, T0), np.full(R, C0)], -1)
    for k in range(steps):
        phases.tumour(sc, st, tp, seed, k, {})
        phases.car_t(sc, st, cp, seed, k, {})
        traj[k + 1, :, 0] = (st.kind.reshape(R, -1) == 1).sum(1)
        traj[k + 1, :, 1] = st.t_count
    return traj


def _part_b_scenario(seed: int, dt: float):
    """Part B: killing, memory conversion, reactivation and memory death (alpha = b = 0)."""
    P = WMI
    inv = lambda rate_per_day: _inv(rate_per_day, dt)
    return scenario({**_rates(P, dt), "tumour.trogocytosis_fraction": 0.0,
                     "tumour.apoptotic_clearance_min": 1.0,
                     "car_t.memory_conversion_rate_per_day": 1440 * inv(P["eps"]),
                     "car_t.memory_death_rate_per_day": 1440 * inv(P["mu"]),
                     "car_t.memory_reactivation_probability": P["p_react"],
                     "car_t.kill_rate_per_min": -math.log(1 - P["p_kill"]) / dt,
                     "car_t.affinity_a": P["affinity"], "car_t.targets": "A",
                     "car_t.exhaustion_per_kill": 0.0, "car_t.speed_um_per_min": 0.0,
                     "run.dt_min": dt, "run.seed": seed})


def _run_part_b(phases: Phases, sc, seed: int, steps: int, R: int, cp) -> np.ndarray:
    """Part B on the stirred 2D lattice: (steps + 1, R, 3) tumour, effector and memory counts."""
    from ...model import tumour as tumour_mod
    from ...model.lattice import TState

    P = WMI
    E = P["E"]
    V = E * E
    T0, C0, M0 = P["T0"], P["C0"], P["M0"]
    tp = tumour_mod.TumourParams.from_scenario(sc)
    st = blank_state((1, E, E), R, capacity=(E // 3) ** 2)
    gen = np.random.default_rng([seed, 6, E])
    for r in range(R):
        place_tumour(st, r, gen.choice(V, T0, replace=False))
    n0 = C0 + M0
    st.t_state[:, :C0] = TState.EFFECTOR
    st.t_state[:, C0:n0] = TState.MEMORY
    st.t_div[:, :n0] = 255
    st.t_act[:, :C0] = cp.activation_steps
    st.t_count[:] = n0
    stir_agents(st, gen)
    traj = np.zeros((steps + 1, R, 3))
    traj[0] = (T0, C0, M0)
    for k in range(steps):
        phases.tumour(sc, st, tp, seed, k, {})
        stir(st, gen, E)
        phases.car_t(sc, st, cp, seed, k, {})
        stir_agents(st, gen)
        live = np.arange(st.t_state.shape[1])[None, :] < st.t_count[:, None]
        traj[k + 1, :, 0] = (st.kind.reshape(R, -1) == 1).sum(1)
        traj[k + 1, :, 1] = ((st.t_state == TState.EFFECTOR) & live).sum(1)
        traj[k + 1, :, 2] = ((st.t_state == TState.MEMORY) & live).sum(1)
    return traj


def _part_b_checks(res: CaseResult, traj: np.ndarray, mf: np.ndarray, ode_tcm: np.ndarray,
                   days: float, R: int) -> None:
    """Final ensemble means of part B against the mean-field map and against CARTmath."""
    tq = t_quantile(R - 1, ALPHA_CHECK)
    fin = traj[-1]
    names = ("tumour cells", "effector CAR-T", "memory CAR-T")
    for j, nm in enumerate(names):
        mean = float(fin[:, j].mean())
        se = float(fin[:, j].std(ddof=1)) / math.sqrt(R)
        res.checks.append(Check(f"{nm} at day {days:g} vs engine mean-field map", mf[-1, j], mean,
                                tq * se, "stat", se=se,
                                note=f"{R} replicates; Student t ({R - 1} df) quantile {tq:.2f} "
                                     "x sample SE"))
    for j, nm in enumerate(names):
        mean = float(fin[:, j].mean())
        se = float(fin[:, j].std(ddof=1)) / math.sqrt(R)
        gap = abs(mf[-1, j] - ode_tcm[-1, j])
        res.checks.append(Check(f"{nm} at day {days:g} vs CARTmath (Euler)", ode_tcm[-1, j], mean,
                                tq * se + gap, "stat", se=se,
                                note=f"tolerance adds |map - Euler| = {gap:.3g} (per-step "
                                     "products of probabilities, encounter saturation)"))

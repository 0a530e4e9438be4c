"""Case 7, ``biology``: each mechanism switched on and off with paired seeds moves its outcome in
the published direction; the untreated growth curve against its data; heterogeneity as declared.

The case is a list of small named checks (:data:`CHECKS`), one entry per mechanism and outcome, so
that a further mechanism is added as one entry.  A :class:`Paired` entry runs two arms of the same
scenario, seed and replicates (the same initial tissue and random words wherever the arms agree)
that differ only in the mechanism's switch, and tests the per-replicate difference of one outcome
in the published direction: a one-sided paired t-test at the suite's per-check level
``ALPHA_CHECK`` (pass iff mean > t_crit x SE, t_crit the Student quantile with n - 1 df; kind
"paired": a family of its own, outside the Bonferroni count of the default suite, since the case
runs only when named).  The
note states the power: the smallest true mean difference the design detects with 80 % power,
(t_crit + z_0.8) x SE.  Arms are memoised, so entries sharing an arm run it once.  The quick subset
(``quick=True``, in ``make test``) runs the entries marked ``quick`` at their quick sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Callable

import numpy as np

from ..core import ALPHA_CHECK, CaseResult, Check, t_quantile
from ..phases import NUMPY, Phases
from ..references import (GROWTH_BOUND, T0_HOURS, declared_fractions, equivalent_radius_um,
                          spheroid_data, subclone_fractions)

Z80 = NormalDist().inv_cdf(0.8)

#: a small tumour (radius 10 voxels) in a 30 x 30 domain, CAR-T entering from vessels outside it
#: only (none inside), so that the stroma around it stands between the cells and the tumour
BARRIER = {"domain.x_voxels": 30, "domain.y_voxels": 30, "tumour.radius_um": 200.0,
           "stroma.septa_count": 0, "stroma.capsule_thickness_um": 60.0, "stroma.capsule_density": 0.9,
           "vessels.density_tumour_fraction": 0.0, "vessels.density_normal_fraction": 0.06,
           "vessels.core_radius_fraction": 0.0, "delivery.route": "intravenous",
           "delivery.dose_cells": 3e9}
#: the same tumour treated by an intratumoral dose of ~150 cells of a product relieved of TGF-beta
#: (dnTGFbRII armour): expansion that fills voxels (crowding)
POTENT = {"domain.x_voxels": 30, "domain.y_voxels": 30, "tumour.radius_um": 200.0,
          "stroma.capsule_thickness_um": 0.0, "stroma.septa_count": 0,
          "vessels.density_tumour_fraction": 0.03, "vessels.core_radius_fraction": 0.0,
          "delivery.route": "intratumoral", "delivery.dose_cells": 3e7, "car_t.armour": "dnTGFbRII"}
#: a 12-voxel tumour in a fibroblast-rich capsule, supplied from outside only (tests/test_tgfb.py)
TGFB = {"domain.x_voxels": 40, "domain.y_voxels": 40, "tumour.radius_um": 240.0,
        "stroma.capsule_thickness_um": 60.0, "stroma.capsule_density": 0.7, "stroma.septa_count": 0,
        "vessels.density_tumour_fraction": 0.0, "vessels.core_radius_fraction": 0.0}
TGFB_OFF = {"tgfb.secretion_tumour_pg_per_cell_per_day": 0.0,
            "tgfb.secretion_fibroblast_pg_per_cell_per_day": 0.0}
TGFB_STEPS = 720  # 3 days
#: the TGFB tumour treated by an intratumoral dose at its centre: the core, supplied from outside
#: only, is hypoxic (oxygen's diffusion length sqrt(D/k) is about 100 µm against a 240 µm radius)
HYPOXIC = dict(TGFB, **{"delivery.route": "intratumoral", "delivery.dose_cells": 1e8})
DEGRADE = {"stroma.car_t_degradation_per_day": 5.0}
RELIEF = {"car_t.armour": "dnTGFbRII"}


# ---------------------------------------------------------------------------------------------
# outcomes: per replicate, from a finished Simulation
def depth(sim) -> np.ndarray:
    return np.nan_to_num(np.asarray(sim.metrics()["infiltration_depth_mean_um"], float), nan=-1e3)


def tumour_cells(sim) -> np.ndarray:
    return np.asarray(sim.metrics()["tumour_cells"], float)


def car_t_cells(sim) -> np.ndarray:
    return sim.state.t_count.astype(float)


def _per_cell(sim, fn) -> np.ndarray:
    st = sim.state
    out = np.zeros(st.kind.shape[0])
    for r in range(out.size):
        pos = st.t_pos[r, :st.t_count[r]]
        out[r] = fn(st, r, pos)
    return out


def mean_ecm(sim) -> np.ndarray:
    """Domain-mean ECM density per replicate."""
    return sim.state.ecm.reshape(sim.state.ecm.shape[0], -1).mean(axis=1, dtype=np.float64)


def in_dense_stroma(sim) -> np.ndarray:
    """Fraction of the CAR-T cells standing in voxels of ECM density >= 0.5."""
    return _per_cell(sim, lambda st, r, pos: (st.ecm[r].ravel()[pos] >= 0.5).mean() if pos.size else 0.0)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Paired:
    """One mechanism, one outcome: ``on`` vs ``off`` arms (overrides of ``base``), outcome
    expected to move in ``direction`` (+1: larger with the mechanism on)."""

    name: str
    reference: str
    base: dict
    on: dict
    off: dict
    outcome: Callable
    direction: int
    steps: int
    replicates: int = 16
    quick: bool = False
    quick_steps: int = 0
    scenario: str = "quickstart"


@dataclass(frozen=True)
class Reference:
    """A check against data (``run(quick, seed, phases, arm)`` returns its Checks)."""

    name: str
    run: Callable
    quick: bool = False


def _growth(quick, seed, phases, arm) -> list[Check]:
    """The untreated scenario's equivalent radius at every data time in the run (quick: the first)
    within GROWTH_BOUND x the data radius + 3 standard errors of the replicate mean."""
    t_h, r_data = spheroid_data()
    R = 4 if quick else 8
    sim = arm.simulation("untreated", {"run.replicates": R, "run.seed": seed})
    days, dt = sim.scenario["run.days"], sim.scenario["run.dt_min"]
    sel = (t_h >= T0_HOURS) & (t_h <= T0_HOURS + 24.0 * days + 0.5)
    t_sel, r_sel = t_h[sel][:1 if quick else None], r_data[sel][:1 if quick else None]
    steps_at = np.rint((t_sel - T0_HOURS) * 60.0 / dt).astype(int)
    got = {}
    for i in range(1, int(steps_at.max()) + 1):
        sim.step()
        if i in steps_at:
            got[i] = equivalent_radius_um(sim)
    out = []
    for s, r, t in zip(steps_at, r_sel, t_sel):
        x = got[s]
        se = float(x.std(ddof=1) / math.sqrt(R))
        out.append(Check(f"untreated radius at day {(t - T0_HOURS) / 24:.1f} (µm)", float(r),
                         float(x.mean()), float(GROWTH_BOUND * r + 3.0 * se), "numeric", se=se,
                         note=f"Freyer & Sutherland 1986 EMT6/Ro; bound {GROWTH_BOUND:.0%} of the "
                              f"data radius + 3 SE of {R} replicates"))
    return out


def _heterogeneity(quick, seed, phases, arm) -> list[Check]:
    """Realised initial subclone fractions of a 70/30 patch layout within 3 binomial standard
    errors of the declared ones in every replicate (worst replicate and class, in bands)."""
    from ...scenario import load_scenario

    sc = load_scenario("quickstart", {"tumour.layout": "patches", "tumour.fraction_a_pos_b_neg": 0.7,
                                      "tumour.fraction_a_neg_b_neg": 0.3, "run.seed": seed})
    R = 8 if quick else 32
    frac, n, _ = subclone_fractions(sc, range(R))
    dec = declared_fractions(sc)
    band = 3 * np.sqrt(dec * (1 - dec) / n[:, None])
    live = dec > 0
    worst = float((np.abs(frac - dec)[:, live] / band[:, live]).max())
    zero_ok = bool((frac[:, ~live] == 0).all())
    return [Check("heterogeneity: worst |realised - declared| (binomial bands)", 0.0, worst, 1.0,
                  "numeric", passed=worst <= 1.0 and zero_ok,
                  note=f"{R} replicates of a 70/30 patch layout, ~{int(n.mean())} tumour cells; "
                       "pass if every class of every replicate lies within 3 binomial SE and "
                       "undeclared classes are absent")]


KATHER_STEPS = 200  # 20 h: before TGF-beta relief alone clears the small tumour (floor effect)
KATHER_N = 64  # paired replicates: 80 % power for a true difference of ~8 tumour cells


def _kather_interaction(quick, seed, phases, arm) -> list[Check]:
    """Shown, not part of the verdict: the benefit of ECM degradation (fewer tumour cells) with
    TGF-beta relief against its benefit without, paired per replicate."""
    common = dict(BARRIER, **{"run.replicates": KATHER_N, "run.seed": seed})
    x = {k: tumour_cells(arm("quickstart", dict(common, **over), KATHER_STEPS))
         for k, over in (("none", {}), ("degr", DEGRADE), ("relief", RELIEF),
                         ("both", dict(DEGRADE, **RELIEF)))}
    d = (x["relief"] - x["both"]) - (x["none"] - x["degr"])
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    return [Check("Kather 2017: extra benefit of degradation with relief (tumour cells)", 0.0,
                  float(d.mean()), 0.0, "info", se=se,
                  note=f"benefit without relief {float((x['none'] - x['degr']).mean()):.3g}, with "
                       f"relief {float((x['relief'] - x['both']).mean()):.3g} tumour cells; "
                       f"{d.size} paired replicates, {KATHER_STEPS} steps")]


CHECKS: tuple = (
    Paired("barrier: capsule lowers infiltration depth (µm)",
           "Salmon 2012; Kather 2017: dense stroma keeps T cells from tumour islets",
           BARRIER, {}, {"stroma.capsule_thickness_um": 0.0}, depth, -1, 150, quick=True,
           quick_steps=100),
    Paired("barrier: ECM-degrading CAR-T raise infiltration depth (µm)",
           "Caruana 2015 (heparanase CAR-T); Salmon 2012 (collagenase lets T cells reach tumour cells)",
           BARRIER, DEGRADE, {}, depth, +1, 150, quick=True, quick_steps=100),
    Paired("barrier: dense ECM retains CAR-T (fraction in dense stroma)",
           "Salmon 2012: T cells migrate poorly and accumulate in dense matrix",
           BARRIER, {}, {"stroma.dense_speed_fraction": 1.0}, in_dense_stroma, +1, 150),
    Paired("Kather 2017: degradation + TGF-beta relief beat relief alone (tumour cells)",
           "Kather 2017: stroma permeabilisation helps together with immune activation",
           BARRIER, dict(DEGRADE, **RELIEF), RELIEF, tumour_cells, -1, KATHER_STEPS, replicates=KATHER_N),
    Paired("Kather 2017: degradation + TGF-beta relief beat degradation alone (tumour cells)",
           "Kather 2017: stroma permeabilisation alone is not enough",
           BARRIER, dict(DEGRADE, **RELIEF), DEGRADE, tumour_cells, -1, KATHER_STEPS, replicates=KATHER_N),
    Reference("Kather 2017: degradation helps more with TGF-beta relief (info)", _kather_interaction),
    Paired("crowding: several CAR-T per voxel let a potent product expand (CAR-T cells)",
           "cell volumes (docs/model.md): a voxel holds several T cells",
           POTENT, {}, {"car_t.max_per_voxel": 1}, car_t_cells, +1, 240, quick=True),
    Paired("TGF-beta suppresses CAR-T killing (tumour cells, TGF-beta on vs off)",
           "Thomas & Massagué 2005; Kloss 2018 (TGF-beta blunts CAR-T function in tumours)",
           TGFB, {}, TGFB_OFF, tumour_cells, +1, TGFB_STEPS),
    Paired("TGF-beta's second target: the stroma thickens with dnTGFbRII CAR-T (mean ECM, armour "
           "vs TGF-beta off)", "Calon 2012 (stromal TGF-beta activates CAFs); Kloss 2018 (the "
           "dominant-negative receptor shields the T cell only)",
           TGFB, RELIEF, TGFB_OFF, mean_ecm, +1, TGFB_STEPS),
    Paired("metabolism: hypoxia suppresses CAR-T killing (tumour cells, hypoxia factor on vs 1)",
           "Berahovich 2019 (CAR-T kill and expand less at 1 % O2); Scharping 2021 (hypoxia "
           "drives T-cell dysfunction in tumours)",
           HYPOXIC, {}, {"car_t.hypoxia_factor": 1.0}, tumour_cells, +1, 240),
    Reference("growth: untreated curve vs Freyer & Sutherland 1986", _growth),
    Reference("heterogeneity: subclone fractions as declared", _heterogeneity, quick=True),
)


# ---------------------------------------------------------------------------------------------
@dataclass
class Arms:
    """Memoised runs: (scenario, overrides, steps) -> the Simulation after ``steps`` steps."""

    phases: Phases
    cache: dict = field(default_factory=dict)

    def __call__(self, scenario: str, over: dict, steps: int):
        key = (scenario, tuple(sorted(over.items())), steps)
        if key not in self.cache:
            sim = self.simulation(scenario, over)
            for _ in range(steps):
                sim.step()
            self.cache[key] = sim
        return self.cache[key]

    def simulation(self, scenario, over):
        """A Simulation of the bundled ``scenario`` with ``over``, on the case's backend."""
        from ...engine import Simulation
        from ...scenario import load_scenario

        sc = load_scenario(scenario, over)
        rt = getattr(self.phases, "rt", None)
        if rt is None:
            return Simulation(sc)
        from ...backends.cupy_backend import device_phases

        return Simulation(sc, phases=device_phases(rt))


def paired_check(p: Paired, quick: bool, seed: int, arm: Arms) -> tuple[Check, dict]:
    """Run both arms and test the paired difference in the published direction (module doc)."""
    steps = p.quick_steps if quick and p.quick_steps else p.steps
    common = dict(p.base, **{"run.replicates": p.replicates, "run.seed": seed})
    x_on = p.outcome(arm(p.scenario, dict(common, **p.on), steps))
    x_off = p.outcome(arm(p.scenario, dict(common, **p.off), steps))
    d = p.direction * (x_on - x_off)
    n = d.size
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    t_crit = t_quantile(n - 1, 2.0 * ALPHA_CHECK)
    mean = float(d.mean())
    passed = bool(mean > t_crit * se) if se > 0 else bool(mean > 0)
    mde = (t_crit + Z80) * se
    note = (f"{p.reference}; {n} paired replicates, {steps} steps; on {x_on.mean():.4g} vs off "
            f"{x_off.mean():.4g}; one-sided paired t, pass if > {t_crit:.2f} SE; 80 % power for "
            f"a true difference >= {mde:.3g}")
    return (Check(p.name, 0.0, mean, t_crit * se, "paired", se=se, passed=passed, note=note),
            {"on": x_on, "off": x_off})


def case_biology(quick: bool, seed: int, phases: Phases = NUMPY) -> CaseResult:
    res = CaseResult("biology", "Biology: mechanisms on/off with paired seeds, growth and "
                     "heterogeneity against their references",
                     "published directions (Kather 2017, Salmon 2012, Caruana 2015); Freyer & "
                     "Sutherland 1986 spheroid growth; binomial placement of subclones")
    arm = Arms(phases)
    for c in CHECKS:
        if quick and not c.quick:
            continue
        if isinstance(c, Paired):
            check, data = paired_check(c, quick, seed, arm)
            res.checks.append(check)
            res.data[c.name] = data
        else:
            res.checks.extend(c.run(quick, seed, phases, arm))
    return res

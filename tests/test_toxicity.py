"""Toxicity, the CSF compartment and dose schedules (issue 12): each mechanism's direction at
default parameters, with paired seeds (the same replicates in both arms).

The toxicity phase does not feed back on the tissue or the CAR-T cells (only the steroid changes
the blood and CSF pools), so arms that differ only in a toxicity parameter share their CAR-T
trajectories exactly and are compared replicate by replicate.  Arms that differ in the dose or
the tumour are compared on the mean over paired replicates.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from gpusim.engine import Simulation, steps_for
from gpusim.errors import ScenarioError
from gpusim.scenario import doses, load_scenario, parse_schedule

#: iv_baseline at a small domain, short run and 12-minute steps (the default-suite dose sweep)
IV_SMALL = {"domain.x_voxels": 36, "domain.y_voxels": 36, "tumour.radius_um": 216.0,
            "run.days": 3.0, "run.dt_min": 12.0, "run.replicates": 3,
            "run.checkpoint_interval_hours": 0.0}
#: 4 doses over 2 logs: the range of solid-tumour IV dose escalations (1e7-1e9 cells)
SWEEP = (1e7, 4.6e7, 2.2e8, 1e9)
#: regional_gbm at a small domain: one dose on day 0, 6 days
GBM_SMALL = {"domain.x_voxels": 36, "domain.y_voxels": 36, "tumour.radius_um": 180.0,
             "run.days": 6.0, "run.dt_min": 12.0, "run.replicates": 3,
             "delivery.schedule": "intraventricular 0 1e7"}


def run(name: str, over: dict, days: float | None = None) -> Simulation:
    sc = load_scenario(name, over)
    sim = Simulation(sc)
    for _ in range(steps_for(days if days is not None else sc["run.days"], sc["run.dt_min"])):
        sim.step()
    return sim


_SHARED: dict = {}


def shared(name: str, over: dict) -> Simulation:
    """The run of ``name`` with ``over`` to its ``run.days``, made once per module: the arms that
    several tests compare (the dose sweep's doses are the other tests' reference arms); tests only
    read it."""
    key = (name, repr(sorted(over.items())))
    if key not in _SHARED:
        _SHARED[key] = run(name, over)
    return _SHARED[key]


def sweep(name: str, base: dict, doses_: tuple) -> list[dict]:
    return [shared(name, dict(base, **{"delivery.dose_cells": d})).endpoints() for d in doses_]


# --- CRS -----------------------------------------------------------------------------------------
def test_iv_dose_sweep_crs_grades_rise_with_dose_across_0_to_4():
    eps = sweep("iv_baseline", IV_SMALL, SWEEP)
    grades = np.array([e["crs_grade"] for e in eps])  # (dose, replicate)
    means = grades.mean(axis=1)
    assert (np.diff(means) >= 0).all() and means[-1] > means[0] + 2, grades
    assert grades[0].max() <= 2 and grades[-1].min() >= 3, grades
    sig = np.array([e["peak_crs_signal"] for e in eps]).mean(axis=1)
    assert (np.diff(sig) > 0).all(), sig
    # the myeloid compartment, not the CAR-T cells, makes most of the IL-6 at the top dose
    assert (eps[-1]["peak_myeloid"] > 0.2).all()
    # onset comes earlier at higher doses
    onset = np.array([np.nanmean(e["crs_onset_days"]) for e in eps])
    assert onset[-1] < onset[0], onset


@pytest.mark.slow
def test_iv_dose_sweep_full_size():
    base = {"run.days": 7.0, "run.replicates": 4, "run.checkpoint_interval_hours": 0.0}
    eps = sweep("iv_baseline", base, SWEEP)
    means = np.array([e["crs_grade"].mean() for e in eps])
    assert (np.diff(means) >= 0).all() and means[-1] > means[0], means


def test_myeloid_amplifier_makes_most_of_the_il6():
    over = dict(IV_SMALL, **{"delivery.dose_cells": 2.2e8})
    full = shared("iv_baseline", over).endpoints()
    none = run("iv_baseline", dict(over, **{"toxicity.il6_myeloid_max_pg_per_mL_per_day": 0.0,
                                            "toxicity.il1_myeloid_max_pg_per_mL_per_day": 0.0})).endpoints()
    assert (full["peak_il6"] > 5 * none["peak_il6"]).all()
    assert (full["crs_grade"] > none["crs_grade"]).all()


def test_crs_rises_with_tumour_burden():
    over = dict(IV_SMALL, **{"delivery.dose_cells": 4.6e7})
    small = shared("iv_baseline", over).endpoints()
    big = run("iv_baseline", dict(over, **{"tumour.radius_um": 300.0,
                                           "delivery.tumour_volume_cm3": 3.0})).endpoints()
    assert big["peak_crs_signal"].mean() > small["peak_crs_signal"].mean()
    assert big["crs_grade"].mean() >= small["crs_grade"].mean()


def test_tocilizumab_blocks_il6_signalling_but_raises_serum_il6_and_not_icans():
    over = dict(IV_SMALL, **{"delivery.dose_cells": 2.2e8})
    plain = shared("iv_baseline", over).endpoints()
    toci = run("iv_baseline", dict(over, **{"toxicity.tocilizumab_days": [0.0]})).endpoints()
    assert (toci["peak_crs_signal"] < 0.5 * plain["peak_crs_signal"]).all()
    # IL-1 keeps signalling under IL-6R blockade (Norelli 2018), so not every grade falls
    assert (toci["crs_grade"] <= plain["crs_grade"]).all() and toci["crs_grade"].mean() < plain["crs_grade"].mean()
    assert (toci["peak_il6"] > plain["peak_il6"]).all()  # receptor-mediated clearance blocked
    assert (toci["peak_cns_cytokine"] >= 0.5 * plain["peak_cns_cytokine"]).all()  # no BBB crossing
    # reactive use: given when CRS reaches grade 2, never later than the onset of grade 2
    react = run("iv_baseline", dict(over, **{"toxicity.tocilizumab_at_grade": 2})).endpoints()
    assert np.isfinite(react["tocilizumab_day"]).all()
    assert (react["peak_crs_signal"] <= plain["peak_crs_signal"]).all()


def test_steroid_suppresses_the_myeloid_compartment_and_clears_circulating_car_t():
    over = dict(IV_SMALL, **{"delivery.dose_cells": 2.2e8})
    plain = shared("iv_baseline", over)
    ster = run("iv_baseline", dict(over, **{"toxicity.steroid_days": [0.0]}))
    a, b = plain.endpoints(), ster.endpoints()
    assert (b["peak_myeloid"] < a["peak_myeloid"]).all()
    assert (ster.state.blood < plain.state.blood).all()  # lymphotoxic: fewer cells circulate
    assert b["entered_iv"].sum() < a["entered_iv"].sum()


# --- CSF compartment ------------------------------------------------------------------------------
#: the first 2 days after an intraventricular dose, when the CSF exposure peaks (CSF half-life 2
#: days); later the cells that expanded in this small tumour set the peak whatever the dose
GBM_EARLY = dict(GBM_SMALL, **{"run.days": 2.0})


@functools.cache
def gbm_low() -> tuple[Simulation, np.ndarray]:
    """regional_gbm at GBM_EARLY (2 days) and its regional entries at day 0.5, made once: the CSF
    and the ICANS tests read it."""
    sim = run("regional_gbm", GBM_EARLY, days=0.5)  # the infusion took 1 hour
    half = sim.state.entered_regional.copy()
    for _ in range(steps_for(GBM_EARLY["run.days"], 12.0) - steps_for(0.5, 12.0)):
        sim.step()
    return sim, half


def test_csf_pool_outlasts_the_infusion_and_keeps_feeding_the_tissue():
    sim, before = gbm_low()
    assert sim.state.step == steps_for(2.0, 12.0)
    st = sim.state
    # entry 1/day and outflow half-life 2 days leave exp(-2 (1 + ln 2 / 2)) = 6.7 % on day 2
    assert (st.csf > 0.02 * 0.95e7).all()
    assert (st.entered_regional > before).all()  # cells kept crossing on days 0.5-2


def test_iv_dose_reaches_the_csf_more_with_endothelial_activation():
    over = dict(IV_SMALL, **{"delivery.dose_cells": 2.2e8})
    calm = run("iv_baseline", dict(over, **{"delivery.csf_trafficking_activation_gain": 0.0})).endpoints()
    hot = shared("iv_baseline", over).endpoints()
    assert (calm["peak_csf_car_t"] > 0).all()
    assert (hot["peak_csf_car_t"] > 2 * calm["peak_csf_car_t"]).all()


# --- ICANS -----------------------------------------------------------------------------------------
def test_icans_regional_gbm_moves_with_dose_burden_and_route():
    low = gbm_low()[0].endpoints()
    high = run("regional_gbm", dict(GBM_EARLY, **{"delivery.schedule": "intraventricular 0 1e8"})).endpoints()
    big = run("regional_gbm", dict(GBM_EARLY, **{"tumour.radius_um": 300.0,
                                                 "delivery.tumour_volume_cm3": 3.0})).endpoints()
    iv = run("regional_gbm", dict(GBM_EARLY, **{"delivery.schedule": "iv 0 1e7"})).endpoints()
    # dose: more cells in the CSF release more cytokine there
    assert high["peak_cns_cytokine"].mean() > 1.5 * low["peak_cns_cytokine"].mean()
    assert high["icans_grade"].mean() > low["icans_grade"].mean()
    # burden: more tumour engaged in the CNS (tumour inflammation-associated neurotoxicity)
    assert big["peak_cns_cytokine"].mean() > low["peak_cns_cytokine"].mean()
    # route: at the same dose the intraventricular route exposes the CNS far more than IV ...
    assert (low["peak_cns_cytokine"] > 3 * iv["peak_cns_cytokine"]).all()
    assert low["icans_grade"].mean() > iv["icans_grade"].mean()
    # ... while systemic CRS stays low: the brain keeps most of the signal
    assert low["crs_grade"].max() <= 2


# --- schedules -------------------------------------------------------------------------------------
def test_schedule_parses_routes_and_rejects_mixing_with_legacy_keys():
    assert parse_schedule("iv 0 1e8; intraventricular 7 1e7; it 3 2e7") == [
        ("intravenous", 0.0, 1e8), ("regional", 7.0, 1e7), ("intratumoral", 3.0, 2e7)]
    sc = load_scenario("quickstart", {"delivery.dose_days": [0.0, 7.0], "delivery.dose_cells": 5e7})
    assert doses(sc) == [("intravenous", 0.0, 5e7), ("intravenous", 7.0, 5e7)]
    with pytest.raises(ScenarioError, match="both set"):
        load_scenario("quickstart", {"delivery.schedule": "iv 0 1e8", "delivery.dose_cells": 5e7})
    with pytest.raises(ScenarioError, match="unknown route"):
        load_scenario("quickstart", {"delivery.schedule": "oral 0 1e8"})
    with pytest.raises(ScenarioError, match="route day cells"):
        load_scenario("quickstart", {"delivery.schedule": "iv 0"})


def test_prime_boost_scenario_gives_iv_then_intraventricular_entry():
    over = {"domain.x_voxels": 36, "domain.y_voxels": 36, "tumour.radius_um": 180.0,
            "run.dt_min": 12.0, "run.replicates": 2,
            "delivery.schedule": "iv 0 7e7; intraventricular 2 3e7"}
    sim = run("gbm_prime_boost", over, days=1.9)
    st = sim.state
    assert (st.entered_regional == 0).all() and (st.entered_iv > 0).all()
    for _ in range(steps_for(1.0, 12.0)):
        sim.step()
    assert (sim.state.entered_regional > 0).all()
    # the bundled schedule itself
    sc = load_scenario("gbm_prime_boost")
    assert doses(sc) == [("intravenous", 0.0, 7e7), ("regional", 14.0, 3e7)]


# --- lymphodepletion ---------------------------------------------------------------------------------
def test_lymphodepletion_expands_circulating_car_t_and_raises_crs():
    over = dict(IV_SMALL, **{"delivery.dose_cells": 4.6e7})
    # without conditioning the division multiplier is unused (CarTParams.p_division_at): the
    # plain arm is the dose sweep's
    plain = shared("iv_baseline", over)
    ld = run("iv_baseline", dict(over, **{"delivery.lymphodepletion": True,
                                          "delivery.lymphodepletion_division_multiplier": 1.0}))
    assert (ld.state.blood > plain.state.blood).all()
    a, b = plain.endpoints(), ld.endpoints()
    assert b["entered_iv"].sum() > a["entered_iv"].sum()
    assert b["peak_crs_signal"].mean() > a["peak_crs_signal"].mean()


def test_anakinra_lowers_crs_and_cns_exposure():
    over = dict(IV_SMALL, **{"delivery.dose_cells": 2.2e8})
    plain = shared("iv_baseline", over).endpoints()
    ana = run("iv_baseline", dict(over, **{"toxicity.anakinra_days": [0.0, 1.0, 2.0]})).endpoints()
    assert (ana["peak_crs_signal"] < plain["peak_crs_signal"]).all()
    assert (ana["peak_cns_cytokine"] < plain["peak_cns_cytokine"]).all()  # reaches the CNS
    react = run("iv_baseline", dict(over, **{"toxicity.anakinra_at_grade": 1})).endpoints()
    assert np.isfinite(react["anakinra_day"]).all()

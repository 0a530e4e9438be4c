"""Next-generation designs as mechanisms (docs/model.md, Next-generation designs): the 5th
generation's JAK-STAT signal, TRUCK (IL-12) innate killing, lymphodepletion, anti-PD-1
reinvigoration, FAP-targeting CAR-T and the steroid's effect on CAR-T cells in tissue.

Paired-seed tests: two batches of the same N = 16 replicates (same seed, same global replicate
indices: the same initial tissue and the same random words) that differ in one switch, every
mechanism parameter at its default; the direction is asserted with the exact one-sided Wilcoxon
signed-rank test at p < 1e-4 (``test_biology.assert_greater``: with 16 pairs the smallest
attainable p is 2^-16, so nearly every pair must move the asserted way; under the null a pass has
probability below 1e-4).  Exact statements (a mechanism that must change nothing, probabilities
from their closed forms) are asserted exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.model.lattice import Kind
from gpusim.scenario import load_scenario
from test_biology import SMALL, assert_greater, shared, simulate

#: a heterogeneous tumour: half the cells carry antigen A, half carry no antigen, mixed cell by cell
HETEROGENEOUS = dict(tumour__fraction_a_pos_b_neg=0.5, tumour__fraction_a_neg_b_neg=0.5,
                     delivery__dose_cells=2e7)


def _count(sim: Simulation, kind: Kind) -> np.ndarray:
    k = sim.state.kind
    return (k.reshape(k.shape[0], -1) == kind).sum(axis=1)


# --- TRUCK ---------------------------------------------------------------------------------------
def test_truck_reduces_antigen_negative_survivors_in_a_heterogeneous_tumour():
    """IL-12 from activated TRUCKs recruits innate killers that kill tumour cells whatever their
    antigens, so fewer antigen-negative cells survive than with the 2nd generation; without the
    innate arm (rate 0) the antigen-negative cells die only by the tissue's own rules."""
    second = simulate(100, **HETEROGENEOUS)
    truck = simulate(100, **HETEROGENEOUS, car_t__generation="fourth")
    assert float(second.state.il12.max()) == 0.0  # no IL-12: no innate killing at all (exact)
    neg2 = second.metrics()["tumour_a_neg_b_neg"]
    neg4 = truck.metrics()["tumour_a_neg_b_neg"]
    assert_greater(neg2, neg4, "antigen-negative survivors, 2nd generation vs TRUCK")


# --- 5th generation ------------------------------------------------------------------------------
def test_gen5_signal_acts_only_after_engagement():
    """Without a target the CAR is never engaged, its JAK-STAT signal stays 0 and a 5th-generation
    product behaves exactly like the 2nd generation (every state array equal)."""
    over = dict(SMALL, **{"tumour.fraction_a_pos_b_neg": 0.0, "tumour.fraction_a_neg_b_neg": 1.0,
                          "run.replicates": 2})
    sims = [Simulation(load_scenario("quickstart", dict(over, **{"car_t.generation": g})))
            for g in ("second", "fifth")]
    for _ in range(60):
        for s in sims:
            s.step()
    assert sims[0].state.t_count.sum() > 0
    assert sims[0].state.digest() == sims[1].state.digest()


@pytest.mark.slow
def test_gen5_expands_and_forms_memory_on_engagement():
    second = simulate(150)
    fifth = simulate(150, car_t__generation="fifth")
    assert_greater(fifth.state.car_t_births, second.state.car_t_births, "5th-generation births")
    assert_greater(fifth.state.t_count, second.state.t_count, "5th-generation CAR-T cells")


# --- lymphodepletion -----------------------------------------------------------------------------
def test_conditioning_time_courses():
    """H(t) halves every cytokine half-life from the first dose; the regulatory relief is
    (1 − q D)/(1 − q) with D = 1 − depletion × 2^(−t/recovery); both act on the per-step
    probabilities, and without conditioning nothing changes."""
    sc = load_scenario("quickstart", {"delivery.lymphodepletion": True, "delivery.dose_days": [1.0]})
    cp = Simulation(sc, replicates=1).car_t_params
    c = cp.conditioning
    per_day = 1440.0 / sc["run.dt_min"]
    s0 = int(per_day)
    q, d = sc["car_t.regulatory_suppression_fraction"], sc["delivery.lymphodepletion_regulatory_depletion_fraction"]
    assert c.cytokines(s0 - 1) == 0.0 and c.relief(s0 - 1) == 1.0
    assert c.cytokines(s0) == 1.0 and c.relief(s0) == pytest.approx((1 - q * (1 - d)) / (1 - q))
    hl = sc["delivery.lymphodepletion_cytokine_half_life_days"]
    assert c.cytokines(s0 + int(round(hl * per_day))) == pytest.approx(0.5)
    rate = sc["car_t.division_rate_per_min"] * sc["run.dt_min"]
    m = sc["delivery.lymphodepletion_division_multiplier"]
    assert cp.p_division_at(s0) == np.float32(-math.expm1(-rate * m) * c.relief(s0))
    assert cp.p_kill_at(s0) == np.float32(cp.p_kill64 * c.relief(s0))
    plain = Simulation(load_scenario("quickstart"), replicates=1).car_t_params
    assert all(plain.p_division_at(s) == plain.p_division and plain.p_kill_at(s) == plain.p_kill
               for s in (0, s0, 10 * s0))


def test_lymphodepletion_raises_expansion_and_killing():
    plain = shared(60)  # tests/test_biology.py's treated arm
    ld = simulate(60, delivery__lymphodepletion=True)
    assert_greater(ld.state.car_t_births, plain.state.car_t_births, "births after lymphodepletion")
    assert_greater(ld.state.kills_tumour, plain.state.kills_tumour, "kills after lymphodepletion")


# --- anti-PD-1 -----------------------------------------------------------------------------------
def test_reinvigoration_probability_follows_the_occupancy():
    sc = load_scenario("quickstart", {"pd1.dose_days": [1.0]})
    cp = Simulation(sc, replicates=1).car_t_params
    per_day = 1440.0 / sc["run.dt_min"]
    rate = sc["pd1.reinvigoration_rate_per_day"] * sc["run.dt_min"] / 1440.0
    assert cp.p_revive_at(int(per_day) - 1) == 0.0  # before the dose
    for s in (int(per_day), int(30 * per_day)):
        assert cp.p_revive_at(s) == np.float32(-math.expm1(-rate * cp.blockade(s)))
    assert cp.p_revive_at(int(30 * per_day)) < cp.p_revive_at(int(per_day))  # transient


#: a tumour with strong PD-L1 induction and fast exhaustion, anti-PD-1 on day 0
PD1 = dict(tumour__pdl1_ifng_rate_per_day=4.0, tumour__pdl1_hypoxia_rate_per_day=1.0,
           pd1__dose_days=[0.0], car_t__exhaustion_per_kill=0.25, delivery__dose_cells=2e7)


def test_reinvigorated_cells_are_partial_effectors():
    """Exhausted cells are reinvigorated only under anti-PD-1 with a reinvigoration rate; a
    reinvigorated cell is an effector at exactly pd1.reinvigorated_exhaustion (< 1: partial, it
    exhausts again after a few stimulations)."""
    def run(**over):
        sim = simulate(0, **PD1, run__replicates=4, **over)
        tot, ok = np.zeros(4, np.int64), True
        for _ in range(100):
            sim.step()
            ev = sim.last_events["pd1_reinvigorations"]
            tot += ev
            st = sim.state
            live = np.arange(st.t_state.shape[1])[None, :] < st.t_count[:, None]
            at = ((st.t_exh == sim.car_t_params.revive_exh) & (st.t_state == 1) & live).sum(axis=1)
            ok &= bool((at >= ev).all())
        return tot, ok
    tot, ok = run(pd1__reinvigoration_rate_per_day=50.0)
    assert tot.sum() > 0 and ok
    assert run(pd1__reinvigoration_rate_per_day=0.0)[0].sum() == 0  # exact: no rate, no revival


@pytest.mark.slow
def test_anti_pd1_reinvigoration_leaves_fewer_exhausted_cells():
    off = simulate(480, **PD1, pd1__reinvigoration_rate_per_day=0.0)
    on = simulate(480, **PD1)
    assert_greater(off.metrics()["car_t_exhausted"], on.metrics()["car_t_exhausted"],
                   "exhausted CAR-T without reinvigoration")


# --- FAP-targeting CAR-T -------------------------------------------------------------------------
#: the small tumour wrapped in a fibroblast-rich capsule with septa
CAPSULE = dict(stroma__capsule_thickness_um=60.0, stroma__septa_count=4)


@pytest.mark.slow
def test_fap_targeting_kills_cafs_and_lowers_tgfb():
    plain = simulate(150, **CAPSULE)
    fap = simulate(150, **CAPSULE, car_t__fap_targeting=True)
    assert_greater(_count(plain, Kind.FIBROBLAST), _count(fap, Kind.FIBROBLAST), "fibroblasts left")
    assert_greater(plain.metrics()["mean_tgfb"], fap.metrics()["mean_tgfb"], "mean TGF-β")


def test_cafs_restore_degraded_ecm_up_to_their_level_exactly():
    """Deposition, one microenvironment step on a state whose fibroblast voxels were degraded to
    0.2: there ecm' = ecm + r_dep × (ρ_CAF − ecm) (float32), everywhere else the ECM is unchanged;
    a voxel whose fibroblast is gone (apoptotic) gets nothing."""
    import dataclasses

    from gpusim.model.microenv import microenv_phase
    sim = simulate(0, **CAPSULE, run__replicates=2)
    st = sim.state
    # the TGF-β-driven deposition (tests/test_tgfb.py) off: this checks the restoration rule alone
    mp = dataclasses.replace(sim.microenv_params, r_tgf_dep=np.float32(0))
    fib = st.kind == Kind.FIBROBLAST
    assert fib.sum() > 10
    dead = fib & (np.cumsum(fib.ravel()).reshape(fib.shape) % 2 == 0)
    st.kind[dead] = Kind.APOPTOTIC
    st.ecm[fib] = np.float32(0.2)
    before = st.ecm.copy()
    microenv_phase(st, mp, sim.seed, 0, {})
    live = fib & ~dead
    want = (np.float32(0.2) + mp.r_dep * (mp.caf_level - np.float32(0.2))).astype(np.float32)
    assert mp.r_dep > 0 and (st.ecm[live] == want).all()
    np.testing.assert_array_equal(st.ecm[~live], before[~live])


# --- steroid -------------------------------------------------------------------------------------
def test_steroid_death_table_is_exact():
    sim = Simulation(load_scenario("quickstart"), replicates=1)
    cp = sim.car_t_params
    tab = cp.p_death_table(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(tab[0], cp.p_death)  # no steroid: the plain table, bitwise
    extra = load_scenario("quickstart")["toxicity.steroid_tissue_car_t_death_per_day"] / 1440.0
    np.testing.assert_array_equal(tab[1], (-np.expm1(-(cp.death_rates + extra) * cp.dt_min)).astype(np.float32))
    assert (tab[1] > tab[0]).all()


@pytest.mark.slow
def test_steroid_lowers_car_t_in_tissue():
    plain = simulate(150)
    ster = simulate(150, toxicity__steroid_days=[0.0, 2.0, 4.0])
    assert_greater(plain.state.t_count, ster.state.t_count, "CAR-T cells in tissue without steroid")


# the bundled next-generation scenarios (truck_il12, stroma_targeting, gen5) switch their mechanisms
# on in the runs that tests/test_device.py compares bitwise: test_variants_exercise_their_mechanism

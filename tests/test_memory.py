"""Memory phenotype of the CAR-T agents (TState.MEMORY; docs/model.md, CAR-T cells, "Memory").

CARTmath correspondence (Barros et al. 2021): an effector that is not stimulated becomes a memory
cell at rate ε (``car_t.memory_conversion_rate_per_day``), memory cells die at rate μ
(``car_t.memory_death_rate_per_day``) and a memory cell meeting a target it recognises becomes an
effector again with probability θ per step (``car_t.memory_reactivation_probability``).

Stochastic checks compare counts with exact Binomial quantiles (scipy.stats.binom) at a two-sided
false-failure rate ALPHA = 1e-6 per check; several of them also check the exact set of cells that
changed against the Philox words the model documents (rng.blocks), which has no tolerance at all.
The device backend runs memory formation bitwise against the NumPy phase on the emulated device
(tests/test_device.py, variant "memory").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.stats import binom

from gpusim import rng
from gpusim.engine import Simulation
from gpusim.model.car_t import CarTParams, car_t_phase
from gpusim.model.lattice import Kind, TState
from gpusim.rng import Stream
from gpusim.scenario import load_scenario
from gpusim.validation.lattices import blank_state

F32 = np.float32
ALPHA = 1e-6  # two-sided false-failure rate of each Binomial check
SEED = 7
SHAPE = (1, 30, 30)  # 900 voxels per replicate
R = 4  # 3600 cells when every voxel holds one


def binom_ok(k: int, n: int, p: float) -> tuple[bool, tuple[float, float]]:
    """k inside the central 1 - ALPHA interval of Binomial(n, p) (exact quantiles): a correct
    model fails this with probability <= ALPHA."""
    lo, hi = binom.ppf(ALPHA / 2, n, p), binom.isf(ALPHA / 2, n, p)
    return bool(lo <= k <= hi), (lo, hi)


def params(**overrides) -> CarTParams:
    return CarTParams.from_scenario(load_scenario("quickstart", overrides))


def cells_everywhere(state: int, glucose: float = 5.0):
    """A blank engine state (no tissue, no signals) with one CAR-T cell of ``state`` in every
    voxel of every replicate, slot = voxel index; t_act 0 and no divisions left (no division)."""
    V = int(np.prod(SHAPE))
    st = blank_state(SHAPE, R, capacity=V, glucose=glucose)
    st.t_count[:] = V
    st.t_state[:] = state
    st.t_pos[:] = np.arange(V, dtype=np.int32)[None, :]
    st.t_dir[:] = -1
    return st


def fate_words(st, step, draw):
    """Word 0 of the CAR_T_FATE block (slot, draw) of every slot, (R, C)."""
    C = st.t_state.shape[1]
    reps = np.asarray(st.replicates)[:, None]
    return rng.blocks(SEED, reps, step, Stream.CAR_T_FATE, np.arange(C)[None, :], draw=draw)[..., 0]


NO_DEATH = np.zeros((3, 2), F32)
NO_DEATH_RATES = np.zeros((3, 2))  # the per-replicate death table is built from the rates


# ----------------------------------------------------------------------------- parameters
def test_parameters_unit_conversion_and_defaults():
    dt = 6.0
    cp = params(**{"car_t.memory_conversion_rate_per_day": 30.0, "car_t.memory_death_rate_per_day": 2.0,
                   "car_t.memory_reactivation_probability": 0.25, "car_t.starvation_death_rate_per_min": 0.01,
                   "run.dt_min": dt})
    assert cp.p_mem == F32(-np.expm1(-30.0 / 1440.0 * dt))
    assert cp.p_react == F32(0.25)
    assert cp.p_death.shape == (3, 2) and cp.p_death.dtype == F32
    assert cp.p_death[2, 0] == F32(-np.expm1(-(2.0 / 1440.0) * dt))
    assert cp.p_death[2, 1] == F32(-np.expm1(-(2.0 / 1440.0 + 0.01) * dt))
    d = params()
    assert d.p_mem == F32(-np.expm1(-0.015 / 1440.0 * 6.0)) and d.p_react == F32(0.5)
    assert d.p_death[2, 0] == F32(-np.expm1(-(0.002 / 1440.0) * 6.0))


# ----------------------------------------------------------------------------- conversion
def test_conversion_count_is_binomial_and_uses_fate_draw_1():
    """No target anywhere (no stimulation), no death, no division: after one phase every
    effector has become MEMORY independently with p_mem, decided by word 0 of the CAR_T_FATE
    block (slot, draw 1)."""
    cp = replace(params(**{"car_t.memory_conversion_rate_per_day": 60.0}), p_death=NO_DEATH, death_rates=NO_DEATH_RATES)
    p = float(cp.p_mem)
    assert 0.2 < p < 0.25  # 1 - exp(-60 × 6 / 1440)
    st = cells_everywhere(TState.EFFECTOR)
    n = int(st.t_count.sum())
    want = rng.below(fate_words(st, 3, 1), cp.p_mem)
    events = {}
    car_t_phase(st, cp, SEED, 3, events)
    assert (st.t_count == n // R).all()
    mem = st.t_state == TState.MEMORY
    np.testing.assert_array_equal(mem, want)  # exact: the documented word decides
    assert (st.t_state[~mem] == TState.EFFECTOR).all() and (st.t_act == 0).all()
    np.testing.assert_array_equal(events["memory_conversions"], mem.sum(axis=1))
    ok, (lo, hi) = binom_ok(int(mem.sum()), n, p)
    assert ok, (int(mem.sum()), lo, hi)


def test_stimulated_effectors_do_not_convert():
    """p_mem = 1: every unstimulated effector converts and no stimulated one does."""
    cp = replace(params(**{"car_t.memory_conversion_rate_per_day": 1e4}), p_death=NO_DEATH, death_rates=NO_DEATH_RATES)
    assert cp.p_mem == F32(1)
    st = cells_everywhere(TState.EFFECTOR)
    st.kind[:] = Kind.TUMOUR
    st.antigen_a[:] = np.random.default_rng(0).integers(0, 120, st.kind.shape, dtype=np.uint8)
    events = {}
    car_t_phase(st, cp, SEED, 0, events)
    eng = st.t_eng[:, :st.t_count.max()] == 1
    state = st.t_state[:, :st.t_count.max()]
    assert eng.sum() > 100 and (~eng).sum() > 100  # both kinds of cell are present
    assert (state[eng] != TState.MEMORY).all()
    assert (state[~eng] == TState.MEMORY).all()
    np.testing.assert_array_equal(events["memory_conversions"], (~eng).sum(axis=1))


# ----------------------------------------------------------------------------- no killing
def test_memory_cells_never_kill():
    """Memory cells among strongly antigen-positive tumour cells, p_react 0: no kill, no
    engagement, no trogocytosis, no reactivation, the lattice untouched over several steps."""
    cp = replace(params(**{"car_t.memory_reactivation_probability": 0.0,
                           "tumour.trogocytosis_fraction": 0.5}), p_death=NO_DEATH, death_rates=NO_DEATH_RATES)
    st = cells_everywhere(TState.MEMORY)
    st.kind[:] = Kind.TUMOUR
    st.antigen_a[:] = 255
    st.pdl1[:] = 0.3
    kind0, aa0 = st.kind.copy(), st.antigen_a.copy()
    for step in range(5):
        events = {}
        car_t_phase(st, cp, SEED, step, events)
        for k in ("kills_tumour", "kills_healthy", "engagements", "memory_reactivations"):
            assert int(np.sum(events.get(k, 0))) == 0, k
        assert "trogocytosis" not in events
    np.testing.assert_array_equal(st.kind, kind0)
    np.testing.assert_array_equal(st.antigen_a, aa0)
    assert (st.t_state[:, :st.t_count.max()] == TState.MEMORY).all() and (st.t_eng == 0).all()


def test_memory_cells_never_block_effectors():
    """Adding memory cells (later slots, next to the same targets; p_react 1 so that many
    reactivate) changes nothing of what the effectors do to the lattice."""
    cp = replace(params(**{"car_t.memory_reactivation_probability": 1.0,
                           "tumour.trogocytosis_fraction": 0.3}), p_death=NO_DEATH, death_rates=NO_DEATH_RATES, p_kill=F32(0.5))
    V = int(np.prod(SHAPE))
    g = np.random.default_rng(3)
    out = []
    for with_memory in (False, True):
        st = blank_state(SHAPE, R, capacity=V)
        st.kind[:] = Kind.TUMOUR
        st.antigen_a[:] = g.integers(0, 200, st.kind.shape, dtype=np.uint8) if not out else out[0][3]
        vox = np.arange(0, V, 3)  # effectors on every third voxel, memory cells on the others
        mem_vox = np.setdiff1d(np.arange(V), vox) if with_memory else np.zeros(0, int)
        n = vox.size + mem_vox.size
        st.t_count[:] = n
        st.t_pos[:, :n] = np.concatenate([vox, mem_vox])[None, :]
        st.t_state[:, :vox.size] = TState.EFFECTOR
        st.t_state[:, vox.size:n] = TState.MEMORY
        aa_in = st.antigen_a.copy()
        events = {}
        car_t_phase(st, cp, SEED, 5, events)
        out.append((st.kind.copy(), st.antigen_a.copy(), events, aa_in))
    (k0, a0, e0, _), (k1, a1, e1, _) = out
    assert int(e0["kills_tumour"].sum()) > 50 and int(e1["memory_reactivations"].sum()) > 100
    np.testing.assert_array_equal(k0, k1)
    np.testing.assert_array_equal(a0, a1)
    for k in ("kills_tumour", "engagements", "trogocytosis"):
        np.testing.assert_array_equal(e0[k], e1[k], err_msg=k)


# ----------------------------------------------------------------------------- reactivation
def test_no_reactivation_without_a_recognisable_target():
    """Antigen-negative tumour cells (and antigen-A cells for a B-only CAR) are never recognised:
    p_react = 1, and still no memory cell reactivates."""
    for targets, aa, ab in (("A", 0, 0), ("B", 200, 0)):
        cp = replace(params(**{"car_t.memory_reactivation_probability": 1.0, "car_t.targets": targets}),
                     p_death=NO_DEATH, death_rates=NO_DEATH_RATES)
        st = cells_everywhere(TState.MEMORY)
        st.kind[:] = Kind.TUMOUR
        st.antigen_a[:], st.antigen_b[:] = aa, ab
        for step in range(4):
            events = {}
            car_t_phase(st, cp, SEED, step, events)
            assert int(np.sum(events.get("memory_reactivations", 0))) == 0
        assert (st.t_state[:, :st.t_count.max()] == TState.MEMORY).all()


def test_reactivation_frequency_and_reactivated_cell_state():
    """Every candidate has the same antigen level, so a memory cell reactivates with probability
    q = P(word 2 < thr_rec) × P(word 3 < thr_react) = thr_rec thr_react / 2^64 (independent words).
    A reactivated cell is an effector stimulated this step: t_eng 1, t_act = activation_steps,
    exhaustion + exh_pd × PD-L1 of the target, and it kills nothing this step."""
    cp = replace(params(**{"car_t.memory_reactivation_probability": 0.6, "car_t.exhaustion_pdl1_per_day": 5.0}),
                 p_death=NO_DEATH, death_rates=NO_DEATH_RATES, exh_recovery=F32(0))
    st = cells_everywhere(TState.MEMORY)
    st.kind[:] = Kind.TUMOUR
    st.antigen_a[:] = 50  # level 0.5: p_rec = 0.5 / 0.7
    st.pdl1[:] = F32(0.4)
    st.t_exh[:, :st.t_count.max()] = F32(0.125)
    n = int(st.t_count.sum())
    thr_rec = cp.rec_tables[0, 50 * 256]
    thr_react = rng.threshold(cp.p_react)
    q = float(thr_rec) * float(thr_react) / 2.0 ** 64
    C = st.t_state.shape[1]
    b = rng.blocks(SEED, np.asarray(st.replicates)[:, None], 2, Stream.CAR_T_ENGAGE, np.arange(C)[None, :])
    want = (b[..., 2].astype(np.uint64) < thr_rec) & (b[..., 3].astype(np.uint64) < thr_react)
    events = {}
    car_t_phase(st, cp, SEED, 2, events)
    eff = st.t_state == TState.EFFECTOR
    np.testing.assert_array_equal(eff, want)  # exact: the documented words decide
    assert (st.t_state[~eff] == TState.MEMORY).all()  # every slot is live (no death)
    np.testing.assert_array_equal(events["memory_reactivations"], eff.sum(axis=1))
    ok, (lo, hi) = binom_ok(int(eff.sum()), n, q)
    assert ok, (int(eff.sum()), lo, hi, q)
    _, exh_pd = cp.pdl1_terms(2)
    assert (st.t_eng[eff] == 1).all() and (st.t_act[eff] == cp.activation_steps).all()
    assert (st.t_exh[eff] == F32(F32(0.125) + exh_pd * F32(0.4))).all()
    live = np.arange(C)[None, :] < st.t_count[:, None]
    assert (st.t_eng[live & ~eff] == 0).all() and (st.t_act[live & ~eff] == 0).all()
    assert int(events["kills_tumour"].sum()) == 0 and (st.t_kills == 0).all()
    assert (st.kind == Kind.TUMOUR).all()


# ----------------------------------------------------------------------------- death
def test_memory_death_frequency_uses_row_2():
    """Memory cells alone, replicates 0-1 fed, 2-3 starving: deaths are decided by word 0 of the
    CAR_T_FATE block (slot, draw 0) against p_death[2, starving] and are Binomial."""
    cp = params(**{"car_t.memory_death_rate_per_day": 100.0, "car_t.starvation_death_rate_per_min": 0.05})
    st = cells_everywhere(TState.MEMORY)
    st.glucose[2:] = 0.0
    C = st.t_state.shape[1]
    starving = np.array([0, 0, 1, 1])
    want = rng.below(fate_words(st, 4, 0), cp.p_death[2, starving][:, None])
    events = {}
    car_t_phase(st, cp, SEED, 4, events)
    died = want.sum(axis=1)
    np.testing.assert_array_equal(events["car_t_deaths"], died)
    np.testing.assert_array_equal(st.t_count, C - died)
    for reps, p in (([0, 1], cp.p_death[2, 0]), ([2, 3], cp.p_death[2, 1])):
        ok, (lo, hi) = binom_ok(int(died[reps].sum()), 2 * C, float(p))
        assert ok, (reps, int(died[reps].sum()), lo, hi, float(p))
    assert (st.t_state[:, :st.t_count.max()][np.arange(st.t_count.max())[None, :] < st.t_count[:, None]]
            == TState.MEMORY).all()


# ----------------------------------------------------------------------------- engine
SMALL = {"domain.x_voxels": 24, "domain.y_voxels": 24, "tumour.radius_um": 180.0}


def test_without_conversion_no_memory_forms_and_memory_parameters_are_inert():
    off = {**SMALL, "car_t.memory_conversion_rate_per_day": 0.0}
    sim = Simulation(load_scenario("intratumoral", off), replicates=2)
    assert sim.car_t_params.p_mem == 0
    other = Simulation(load_scenario("intratumoral", {**off, "car_t.memory_death_rate_per_day": 50.0,
                                                      "car_t.memory_reactivation_probability": 0.1}),
                       replicates=2)
    for _ in range(25):
        sim.step(check=True)
        other.step()
        assert not (sim.state.t_state == TState.MEMORY).any()
        assert not sim.last_events["memory_conversions"].any()
        assert not sim.last_events["memory_reactivations"].any()
    assert sim.state.t_count.min() > 10
    assert (sim.metrics()["car_t_memory"] == 0).all()
    assert sim.state.digest() == other.state.digest()


def test_engine_with_memory_checks_and_metric():
    """An engine run forming and reactivating memory cells passes step(check=True) and reports
    car_t_memory = the number of memory cells per replicate."""
    sc = load_scenario("intratumoral", {**SMALL, "car_t.memory_conversion_rate_per_day": 100.0,
                                        "car_t.memory_reactivation_probability": 1.0})
    sim = Simulation(sc, replicates=2)
    tot = {"memory_conversions": 0, "memory_reactivations": 0}
    for _ in range(20):
        sim.step(check=True)
        for k in tot:
            tot[k] += int(np.sum(sim.last_events.get(k, 0)))
        m = sim.metrics()["car_t_memory"]
        st = sim.state
        live = np.arange(st.t_state.shape[1])[None, :] < st.t_count[:, None]
        np.testing.assert_array_equal(m, ((st.t_state == TState.MEMORY) & live).sum(axis=1))
    assert tot["memory_conversions"] > 0 and tot["memory_reactivations"] > 0, tot
    assert int(sim.metrics()["car_t_memory"].sum()) > 0

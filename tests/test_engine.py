"""Mechanisms of the reference engine, each tested so that breaking it fails a test.

Degenerate probabilities (0 or 1) make the stochastic model exact; the conservation laws are
checked after every step (``Simulation.step(check=True)``).
"""

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.errors import CapacityError
from gpusim.model.lattice import Kind
from gpusim.model.tissue import tumour_geometry
from gpusim.scenario import load_scenario

# a small, fully controlled world: no O2/glucose limitation, no stroma, no healthy cells
CALM = {
    "domain.x_voxels": 11, "domain.y_voxels": 11, "tumour.radius_um": 10.0,
    "stroma.capsule_thickness_um": 0.0, "stroma.septa_count": 0, "stroma.background_density": 0.0,
    "vessels.density_normal_fraction": 0.0, "vessels.density_tumour_fraction": 0.0,
    "healthy.cell_fraction": 0.0,
    "oxygen.boundary": "dirichlet", "oxygen.uptake_tumour_per_min": 0.0,
    "oxygen.uptake_healthy_per_min": 0.0, "oxygen.uptake_car_t_per_min": 0.0, "oxygen.decay_per_min": 0.0,
    "glucose.boundary": "dirichlet", "glucose.uptake_tumour_per_min": 0.0,
    "glucose.uptake_healthy_per_min": 0.0, "glucose.uptake_car_t_per_min": 0.0,
    "tumour.glucose_half_mM": 0.0, "tumour.apoptosis_rate_per_min": 0.0,
    "tumour.necrosis_max_rate_per_min": 0.0, "delivery.dose_cells": 0.0,
    "run.replicates": 3,
}


def scenario(**over):
    v = dict(CALM)
    v.update({k.replace("__", "."): x for k, x in over.items()})
    return load_scenario("quickstart", v)


def counts(sim, kind):
    R = sim.state.kind.shape[0]
    return (sim.state.kind.reshape(R, -1) == kind).sum(axis=1)


def test_single_cell_with_division_probability_one_doubles():
    sim = Simulation(scenario(tumour__division_rate_per_min=100.0))
    assert list(counts(sim, Kind.TUMOUR)) == [1, 1, 1]
    sim.step(check=True)
    assert list(counts(sim, Kind.TUMOUR)) == [2, 2, 2]
    assert list(sim.last_events["tumour_divisions"]) == [1, 1, 1]


def test_division_probability_zero_never_divides():
    sim = Simulation(scenario(tumour__division_rate_per_min=0.0, tumour__radius_um=60.0))
    n0 = counts(sim, Kind.TUMOUR).copy()
    for _ in range(30):
        sim.step(check=True)
    assert np.array_equal(counts(sim, Kind.TUMOUR), n0)


def test_antigen_loss_probability_one_and_zero():
    sim = Simulation(scenario(tumour__division_rate_per_min=100.0, tumour__antigen_loss_per_division=1.0))
    sim.step(check=True)
    m = sim.metrics()
    assert list(m["tumour_a_pos_b_neg"]) == [1, 1, 1]  # the parent keeps A
    assert list(m["tumour_a_neg_b_neg"]) == [1, 1, 1]  # the daughter lost it
    sim = Simulation(scenario(tumour__division_rate_per_min=100.0, tumour__antigen_loss_per_division=0.0))
    for _ in range(5):
        sim.step(check=True)
    m = sim.metrics()
    assert (m["tumour_cells"] > 8).all()
    assert (m["tumour_a_neg_b_neg"] == 0).all()


def test_daughters_only_go_to_free_voxels_below_block_density():
    # a dense capsule (no fibroblasts in it) fills every neighbour: no division can happen
    sim = Simulation(scenario(tumour__division_rate_per_min=100.0, stroma__capsule_thickness_um=200.0,
                              stroma__capsule_density=0.9, stroma__fibroblast_fraction=0.0))
    assert list(counts(sim, Kind.EMPTY)) == [120, 120, 120]
    for _ in range(5):
        sim.step(check=True)
    assert list(counts(sim, Kind.TUMOUR)) == [1, 1, 1]


def _necrosis_world(**over):
    v = {"domain.x_voxels": 60, "domain.y_voxels": 60, "tumour.radius_um": 440.0,
         "stroma.capsule_thickness_um": 0.0, "stroma.septa_count": 0,
         "vessels.density_normal_fraction": 0.05, "run.replicates": 2, "delivery.dose_cells": 0.0}
    v.update(over)
    return Simulation(load_scenario("quickstart", v))


def test_tumour_without_oxygen_supply_grows_a_necrotic_core():
    sim = _necrosis_world(**{"vessels.core_radius_fraction": 1.0})  # no vessel inside the tumour
    for _ in range(240):  # one day
        sim.step(check=True)
    dist, _ = tumour_geometry(sim.scenario)
    kind = sim.state.kind
    nec = kind == Kind.NECROTIC
    tum = kind == Kind.TUMOUR
    assert (nec.reshape(2, -1).sum(axis=1) > 50).all()
    d = np.broadcast_to(dist, kind.shape[1:])
    for r in range(2):
        # the dead voxels sit in the core, the live ones around it
        assert d[nec[r]].mean() < 0.6 * d[tum[r]].mean()
    # the same tumour, well vascularised, has no necrosis at all
    sim = _necrosis_world(**{"vessels.density_tumour_fraction": 0.25})
    for _ in range(240):
        sim.step(check=True)
    assert (sim.state.kind == Kind.NECROTIC).sum() == 0


def _capsule_world(permeability):
    v = {"domain.x_voxels": 50, "domain.y_voxels": 50, "tumour.radius_um": 300.0,
         "stroma.capsule_thickness_um": 60.0, "stroma.capsule_density": 1.0, "stroma.septa_count": 0,
         "stroma.permeability": permeability, "vessels.density_tumour_fraction": 0.0,
         "vessels.density_normal_fraction": 0.05, "delivery.dose_cells": 2e9, "run.replicates": 2}
    return Simulation(load_scenario("quickstart", v))


@pytest.mark.parametrize("permeability", [0.0, 1.0])
def test_permeability_zero_keeps_car_t_out_of_an_encapsulated_tumour(permeability):
    sim = _capsule_world(permeability)
    dist, _ = tumour_geometry(sim.scenario)
    inside = (dist <= 300.0 + 60.0).ravel()  # tumour and capsule
    ever_inside = 0
    for _ in range(120):
        sim.step(check=True)
        st = sim.state
        for r in range(2):
            pos = st.t_pos[r, : st.t_count[r]]
            ever_inside += int(inside[pos].sum())
    assert sim.state.t_count.sum() > 100  # plenty of CAR-T cells were at the capsule
    if permeability == 0.0:
        assert ever_inside == 0
        assert sim.state.kills_tumour.sum() == 0
    else:  # the control: the same world with an open capsule is entered
        assert ever_inside > 0


def _killing_world(targets, fractions, **over):
    v = {"domain.x_voxels": 30, "domain.y_voxels": 30, "tumour.radius_um": 200.0,
         "stroma.capsule_thickness_um": 0.0, "stroma.septa_count": 0, "stroma.background_density": 0.0,
         "vessels.density_tumour_fraction": 0.05, "vessels.density_normal_fraction": 0.05,
         "tumour.division_rate_per_min": 0.0, "tumour.apoptosis_rate_per_min": 0.0,
         "tumour.necrosis_max_rate_per_min": 0.0, "tumour.apoptotic_clearance_min": 1e7,
         "delivery.dose_cells": 5e9, "car_t.targets": targets, "run.replicates": 2,
         "tumour.fraction_a_pos_b_pos": fractions[0], "tumour.fraction_a_pos_b_neg": fractions[1],
         "tumour.fraction_a_neg_b_pos": fractions[2], "tumour.fraction_a_neg_b_neg": fractions[3]}
    v.update(over)
    return Simulation(load_scenario("quickstart", v))


CLASSES = ("tumour_a_pos_b_pos", "tumour_a_pos_b_neg", "tumour_a_neg_b_pos", "tumour_a_neg_b_neg")


@pytest.mark.parametrize("targets,seen", [("A", (1, 1, 0, 0)), ("B", (1, 0, 1, 0)),
                                          ("A|B", (1, 1, 1, 0)), ("A&B", (1, 0, 0, 0))])
def test_car_logic_kills_only_cells_it_recognises(targets, seen):
    sim = _killing_world(targets, (0.25, 0.25, 0.25, 0.25))
    m0 = sim.metrics()
    for _ in range(150):
        sim.step(check=True)
    m1 = sim.metrics()
    for cls, visible in zip(CLASSES, seen):
        if visible:
            assert (m1[cls] < m0[cls]).all(), cls
        else:  # never killed: with no other death, the count is exactly unchanged
            assert np.array_equal(m1[cls], m0[cls]), cls
    assert (m1["kills_tumour"] == m0["tumour_cells"] - m1["tumour_cells"]).all()


def test_each_kill_is_counted_once():
    # no CAR-T cell dies, so the kills they carry add up to the tumour's losses
    sim = _killing_world("A", (0.0, 1.0, 0.0, 0.0), **{
        "car_t.lifespan_days": 1e5, "car_t.exhaustion_per_kill": 0.0,
        "car_t.exhaustion_hypoxia_per_day": 0.0, "car_t.starvation_death_rate_per_min": 0.0,
        "car_t.max_divisions": 0})
    n0 = counts(sim, Kind.TUMOUR).copy()
    for _ in range(100):
        sim.step(check=True)
        st = sim.state
        carried = np.array([st.t_kills[r, : st.t_count[r]].sum() for r in range(2)])
        assert np.array_equal(carried, st.kills_tumour)
        assert np.array_equal(n0 - counts(sim, Kind.TUMOUR), st.kills_tumour)
        assert (st.car_t_deaths == 0).all()
    assert (st.kills_tumour > 20).all()


def test_healthy_cells_without_antigen_are_never_killed():
    sim = _killing_world("A", (0.0, 1.0, 0.0, 0.0), **{"healthy.cell_fraction": 0.9})
    for _ in range(100):
        sim.step(check=True)
    assert (sim.state.kills_tumour > 0).all()
    assert (sim.state.kills_healthy == 0).all()


def test_no_dose_no_car_t():
    sim = Simulation(load_scenario("quickstart", {"delivery.dose_cells": 0.0, "run.replicates": 2}))
    for _ in range(50):
        sim.step(check=True)
    assert (sim.state.t_count == 0).all() and (sim.state.car_t_entered == 0).all()


def test_full_model_conserves_cells_and_agents_every_step():
    sim = Simulation(load_scenario("iv_baseline", {"domain.x_voxels": 70, "domain.y_voxels": 70,
                                                   "tumour.radius_um": 500.0, "run.replicates": 2,
                                                   "delivery.dose_cells": 1e9}))
    for _ in range(200):
        sim.step(check=True)
    st = sim.state
    assert (st.car_t_entered > 0).all() and (st.car_t_births > 0).all()
    assert (st.kills_tumour > 0).all()


def test_capacity_overflow_is_an_error_not_a_silent_drop():
    sim = _killing_world("A", (0.0, 1.0, 0.0, 0.0), **{"car_t.capacity_per_replicate": 3})
    with pytest.raises(CapacityError, match="capacity_per_replicate is 3"):
        for _ in range(50):
            sim.step()


def test_3d_runs_and_conserves(backend):
    sim = backend(load_scenario("quickstart", {"domain.x_voxels": 16, "domain.y_voxels": 16,
                                                  "domain.z_voxels": 16, "tumour.radius_um": 100.0,
                                                  "run.replicates": 2, "delivery.dose_cells": 5e10}))
    assert sim.state.kind.shape == (2, 16, 16, 16)
    for _ in range(60):
        sim.step(check=True)
    assert (sim.state.car_t_entered > 0).all()


@pytest.mark.parametrize("o2,divides", [(8.0, False), (12.0, True)])
def test_hypoxic_cells_are_quiescent(o2, divides):
    # uniform oxygen o2: the division ramp (o2 - 5)/(38 - 5) is positive at both levels, but below
    # the 10 mmHg hypoxic threshold a cell must not divide at all
    sim = Simulation(scenario(tumour__division_rate_per_min=100.0, tumour__radius_um=60.0,
                              oxygen__boundary_mmHg=o2, oxygen__vessel_mmHg=o2))
    assert np.allclose(sim.state.o2, o2)
    n0 = counts(sim, Kind.TUMOUR).copy()
    for _ in range(10):
        sim.step(check=True)
    grew = counts(sim, Kind.TUMOUR) > n0
    assert grew.all() if divides else not grew.any()


def test_antigen_a_and_b_are_lost_independently():
    # 400 single A+B+ cells divide once with loss probability 1/2 per antigen: the daughter's
    # class is one of 4 with probability 1/4 each (independent losses). Chi-square, 3 dof: the
    # 1 - 1e-6 quantile is 30.7, so a correct engine fails with probability 1e-6; correlated
    # losses (A+B+ and A-B- only) give a statistic near 400.
    sim = Simulation(scenario(tumour__division_rate_per_min=100.0, tumour__antigen_loss_per_division=0.5,
                              tumour__fraction_a_pos_b_pos=1.0, tumour__fraction_a_pos_b_neg=0.0,
                              run__replicates=400))
    sim.step(check=True)
    m = sim.metrics()
    obs = np.array([m[c].sum() for c in CLASSES], dtype=float)
    obs[0] -= 400  # the parents stay A+B+
    assert obs.sum() == 400
    chi2 = ((obs - 100.0) ** 2 / 100.0).sum()
    assert chi2 < 30.7, obs

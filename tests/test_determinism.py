"""A replicate's trajectory is a function of (scenario, seed, global replicate index) only."""

import numpy as np
import pytest

import gpusim
from gpusim.engine import Simulation
from gpusim.scenario import load_scenario

SMALL = {"domain.x_voxels": 36, "domain.y_voxels": 36, "tumour.radius_um": 220.0,
         "stroma.capsule_thickness_um": 20.0, "delivery.dose_cells": 3e9}


def run_steps(R, first, steps, seed=1, make=Simulation, **over):
    v = dict(SMALL, **{"run.seed": seed}, **over)
    sim = make(load_scenario("quickstart", v), replicates=R, first_replicate=first)
    digests = []
    for _ in range(steps):
        sim.step()
        digests.append([sim.state.digest(r) for r in range(R)])
    return sim, digests


def test_same_run_twice_is_bitwise_identical():
    a, da = run_steps(3, 0, 40)
    b, db = run_steps(3, 0, 40)
    assert da == db
    assert (a.state.t_count > 0).all()  # the run exercised the CAR-T code


@pytest.mark.parametrize("batch", [1, 8, 64])
def test_replicate_is_the_same_in_any_batch(batch, backend):
    """On every backend, and against the NumPy engine: the batch a replicate runs in changes
    nothing."""
    if backend.name != "numpy" and batch == 64:
        pytest.skip("the 64-replicate batch runs on the NumPy engine only (time)")
    steps = 25 if batch == 64 else 40
    _, ref = run_steps(3, 5, steps)  # replicates 5, 6, 7 on the NumPy engine
    first = 5 if batch == 1 else 0
    _, got = run_steps(batch, first, steps, make=backend)
    for s in range(steps):
        assert got[s][5 - first] == ref[s][0], f"replicate 5 differs at step {s}"


def test_different_seeds_give_different_trajectories():
    _, a = run_steps(2, 0, 30, seed=1)
    _, b = run_steps(2, 0, 30, seed=2)
    assert a[-1][0]["kind"] != b[-1][0]["kind"]
    assert a[-1][0]["t_pos"] != b[-1][0]["t_pos"]


def test_different_replicates_differ():
    _, d = run_steps(2, 0, 30)
    assert d[-1][0]["kind"] != d[-1][1]["kind"]


def test_run_api_first_replicate_matches_the_big_batch():
    sc = load_scenario("quickstart", dict(SMALL, **{"run.days": 0.5, "run.output_interval_hours": 3.0}))
    big = gpusim.run(sc, replicates=5)
    part = gpusim.run(sc, replicates=2, first_replicate=3)
    for k in big.timeseries:
        assert np.array_equal(big.timeseries[k][3:5], part.timeseries[k], equal_nan=True), k
    for k in big.endpoints:
        assert np.array_equal(big.endpoints[k][3:5], part.endpoints[k], equal_nan=True), k

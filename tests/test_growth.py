"""Tumour growth by shoving (issue 11, item 1; MODEL.md section 4, model/tumour.py).

* quick: with paired seeds (same scenario, seed and replicates) the untreated tumour grows in
  every replicate, while the former rule (a daughter needs a free neighbour: push radius 1, no
  pushing) lets it shrink; healthy cells shoved aside are counted and conserved
  (``step(check=True)``).
* slow: the bundled ``untreated`` scenario against the EMT6/Ro spheroid radii of Freyer &
  Sutherland 1986 (gpusim/validation/data/freyer_sutherland_1986_emt6_spheroids.tsv): at every data time in
  the run the replicate mean of the equivalent radius sqrt(N / pi) x voxel lies within the stated
  bound, BOUND x the data radius, widened by 3 standard errors of the mean over the replicates
  (sd / sqrt(n), n = the scenario's 8 replicates).
"""

from __future__ import annotations

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.scenario import load_scenario
from gpusim.validation.references import (GROWTH_BOUND as BOUND, T0_HOURS, equivalent_radius_um,
                                          gompertz_radius_um, spheroid_data)


def _run(over, steps, check_every=0):
    sim = Simulation(load_scenario("untreated", over))
    for i in range(steps):
        sim.step(check=bool(check_every) and i % check_every == 0)
    return sim


def test_untreated_tumour_grows_and_the_former_rule_shrinks_it():
    small = ["domain.x_voxels=40", "domain.y_voxels=40", "run.replicates=4"]
    steps = 360  # 1.5 days
    new = _run(small, steps, check_every=5)
    old = _run(small + ["tumour.push_radius_voxels=1", "tumour.push_probability=0"], steps)
    n0 = new.state.tumour_initial
    assert np.array_equal(n0, old.state.tumour_initial)
    n_new, n_old = new.metrics()["tumour_cells"], old.metrics()["tumour_cells"]
    assert (n_new > 1.2 * n0).all(), (n0, n_new)
    assert (n_new > n_old).all(), (n_new, n_old)
    assert (n_old < n0 * 1.05).all(), (n0, n_old)  # the former rule cannot grow past the footprint


def test_shoving_displaces_healthy_cells_and_the_ecm_slows_it():
    """Healthy cells are displaced (counted, conserved in the engine's check), and a denser ECM
    around the tumour slows the growth (paired seeds)."""
    small = ["domain.x_voxels=40", "domain.y_voxels=40", "run.replicates=4"]
    tot = np.zeros(4, np.int64)
    sim = Simulation(load_scenario("untreated", small))
    dense = Simulation(load_scenario("untreated", small + ["stroma.background_density=0.45"]))
    for i in range(240):
        sim.step(check=i % 5 == 0)
        dense.step()
        tot += sim.last_events["healthy_displaced"]
    assert (tot > 0).all()
    assert (sim.metrics()["tumour_cells"] > dense.metrics()["tumour_cells"]).all()


@pytest.mark.slow
def test_untreated_curve_matches_the_emt6_spheroid_data():
    sc = load_scenario("untreated")
    t_h, r_data = spheroid_data()
    sel = (t_h >= T0_HOURS) & (t_h <= T0_HOURS + 24.0 * sc["run.days"] + 0.5)  # to the last point
    steps_at = np.rint((t_h[sel] - T0_HOURS) * 60.0 / sc["run.dt_min"]).astype(int)
    sim = Simulation(sc)
    assert abs(equivalent_radius_um(sim).mean() - gompertz_radius_um(T0_HOURS)) < 5.0
    got = {}
    for i in range(1, steps_at.max() + 1):
        sim.step()
        if i in steps_at:
            got[i] = equivalent_radius_um(sim)
    n = sc["run.replicates"]
    for s, r in zip(steps_at, r_data[sel]):
        x = got[s]
        tol = BOUND * r + 3.0 * x.std(ddof=1) / np.sqrt(n)
        assert abs(x.mean() - r) <= tol, f"day {s * sc['run.dt_min'] / 1440:.2f}: model {x.mean():.0f} µm vs data {r:.0f} µm (±{tol:.0f})"

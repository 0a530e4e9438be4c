"""Every field of a real engine step ends within its stated bound (docs/fields.md): the max-norm
distance of the float32 result to the float64 converged solution of the same discrete system
(:func:`gpusim.model.fields.exact_solution`) is at most the solver's ``tol``, on a 2D and a 3D
state taken from engine runs."""

from __future__ import annotations

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.model.fields import exact_solution
from gpusim.scenario import load_scenario

FIELDS = ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12")


def recorded_step(sim):
    """Run one step of ``sim`` and return, per field solved in it, (solver, inputs, result)."""
    rec = {}
    for name in FIELDS:
        fs = getattr(sim.fields, name)

        def solve(c, a, s, fixed_mask=None, fixed_value=0.0, _n=name, _fs=fs,
                  _inner=fs.solve):
            inputs = (np.array(a), np.array(s), None if fixed_mask is None else np.array(fixed_mask),
                      fixed_value)
            it = _inner(c, a, s, fixed_mask, fixed_value)
            rec[_n] = (_fs, inputs, c.copy(), it)
            return it

        fs.solve = solve
    try:
        sim.step()
    finally:
        for name in FIELDS:
            del getattr(sim.fields, name).solve
    return rec


CASES = {
    "2d": ("iv_baseline", {"domain.x_voxels": 64, "domain.y_voxels": 64, "tumour.radius_um": 480.0,
                           "run.replicates": 2}, 25),
    "3d": ("large_3d", {"domain.x_voxels": 22, "domain.y_voxels": 22, "domain.z_voxels": 22,
                        "tumour.radius_um": 165.0, "run.replicates": 1}, 8),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_field_within_its_bound_on_a_real_state(case):
    name, overrides, steps = CASES[case]
    sim = Simulation(load_scenario(name, overrides))
    for _ in range(steps):
        sim.step()
    rec = recorded_step(sim)
    assert {"o2", "glucose", "chemokine", "tgfb"} <= set(rec)
    for field, (fs, (a, s, fixed, fv), c, it) in rec.items():
        assert (it < fs.max_iter).all(), field
        exact = exact_solution(fs, a, s, fixed, fv)
        err = np.abs(c.astype(np.float64) - exact).max()
        assert err <= fs.tol, (field, err, fs.tol, it)

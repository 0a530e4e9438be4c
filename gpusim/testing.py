"""Test fixtures shared by the test suite and the GPU check: a field solve on random coefficients
and the bitwise check of a device solve against the NumPy solver (on a GPU, or on the emulated
device :mod:`gpusim.backends.emulated`)."""

from __future__ import annotations

import numpy as np


def solver_case(shape, boundary: str, omega: float = 1.6, floor=None, tol: float = 1e-5,
                max_iter: int = 500, seed: int | None = None):
    """A field solve on random coefficients: ``(solver, c0, a, s, fixed)``; with a floor the
    source is mostly negative so that the floor binds (zero-order consumption)."""
    from .model.fields import FieldSolver

    g = np.random.default_rng(sum(shape) if seed is None else seed)
    c0 = g.uniform(0, 1, shape).astype(np.float32)
    a = g.uniform(0.01, 0.5, shape).astype(np.float32)
    s = (g.uniform(-6.0, 0.2, shape) if floor is not None else g.uniform(0, 0.2, shape)).astype(np.float32)
    fixed = g.random(shape) < 0.05
    fs = FieldSolver(shape, diffusion_um2_per_min=2000.0, voxel_um=20.0, boundary=boundary,
                     boundary_value=0.3, omega=omega, tol=tol, max_iter=max_iter, floor=floor)
    return fs, c0, a, s, fixed


def multigrid_case(shape, boundary: str = "neumann", seed: int = 1, **kw):
    """A multigrid solve on random coefficients (5 % of the voxels held): ``(solver, c0, a, s,
    fixed)``; ``kw`` goes to the solver (tol 1e-5 unless given)."""
    from .model.multigrid import MultigridSolver

    g = np.random.default_rng(seed)
    c0 = g.uniform(0, 1, shape).astype(np.float32)
    a = g.uniform(0.001, 0.05, shape).astype(np.float32)
    s = g.uniform(0, 0.02, shape).astype(np.float32)
    fixed = g.random(shape) < 0.05
    ms = MultigridSolver(shape, diffusion_um2_per_min=2000.0, voxel_um=20.0, boundary=boundary,
                         boundary_value=0.3, **{"tol": 1e-5, **kw})
    return ms, c0, a, s, fixed


def assert_device_solve_bitwise(runtime, case, fixed_value=np.float32(0.75)) -> np.ndarray:
    """Solve ``case`` (from :func:`solver_case`) with the NumPy solver and on ``runtime`` (a
    device or the emulated device); assert sweeps and values bitwise equal; return the values."""
    from .backends.cupy_backend import device_solve

    fs, c0, a, s, fixed = case
    c_np = c0.copy()
    it_np = fs.solve(c_np, a, s, fixed, fixed_value)
    xp = runtime.xp
    c_dev = xp.asarray(c0)
    it_dev = device_solve(runtime, fs, c_dev, xp.asarray(a), xp.asarray(s),
                          xp.asarray(fixed.astype(np.uint8)), fixed_value)
    np.testing.assert_array_equal(it_dev, it_np)
    np.testing.assert_array_equal(c_dev.get().view(np.uint32), c_np.view(np.uint32))
    return c_np

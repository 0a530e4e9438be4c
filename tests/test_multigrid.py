"""The multigrid field solver (gpusim.model.multigrid): its transfers are each other's transpose,
it converges to the float64 solution of the same discrete system as the SOR solver within the
stated bound, a replicate's result does not depend on its batch, and the device twin
(kernels/multigrid.cu) is bitwise on the emulated device."""

from __future__ import annotations

import numpy as np
import pytest

from gpusim.model.fields import FieldSolver
from gpusim.model.fields_exact import exact_solution
from gpusim.model.multigrid import MultigridSolver, level_shapes, prolong_axis, restrict_weights
from gpusim.testing import multigrid_case

F32 = np.float32


def dense_prolongation(n: int) -> np.ndarray:
    lo, hi, wlo, whi = prolong_axis(n)
    P = np.zeros((n, (n + 1) // 2))
    for i in range(n):
        P[i, lo[i]] += wlo[i]
        P[i, hi[i]] += whi[i]
    return P


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 13, 25, 50])
def test_restriction_is_the_transpose_of_the_prolongation(n):
    P = dense_prolongation(n)
    np.testing.assert_array_equal(P.sum(axis=1), 1.0)      # interpolation keeps constants
    w = restrict_weights(n)
    R = np.zeros_like(P.T)
    for J in range(w.shape[0]):
        for k in range(4):
            i = 2 * J - 1 + k
            if 0 <= i < n:
                R[J, i] += w[J, k]
            else:
                assert w[J, k] == 0
    np.testing.assert_array_equal(R, P.T)


def test_hierarchy_shapes():
    assert level_shapes((1, 100, 100)) == [(1, 100, 100), (1, 50, 50), (1, 25, 25), (1, 13, 13),
                                           (1, 7, 7), (1, 4, 4), (1, 2, 2), (1, 1, 1)]
    assert level_shapes((75, 75, 75))[-2:] == [(2, 2, 2), (1, 1, 1)]
    assert level_shapes((1, 3, 40))[:4] == [(1, 3, 40), (1, 2, 20), (1, 1, 10), (1, 1, 5)]
    assert level_shapes((1, 1, 1)) == [(1, 1, 1)]          # one voxel: Gauss-Seidel only


@pytest.mark.parametrize("shape,boundary", [
    ((2, 1, 40, 33), "neumann"), ((2, 1, 31, 40), "dirichlet"), ((1, 13, 12, 11), "neumann"),
    ((1, 10, 9, 12), "dirichlet"), ((1, 1, 3, 20), "neumann"),
])
def test_converges_to_the_direct_solve_within_its_bound(shape, boundary):
    """The stopping rule's bound (docs/fields.md) against a float64 sparse direct solve of the
    same system, from a cold start (the warm start of a real step is easier)."""
    ms, c0, a, s, fixed = multigrid_case(shape, boundary)
    c = c0.copy()
    it = ms.solve(c, a, s, fixed, F32(0.75))
    assert (it < ms.max_iter).all()
    exact = exact_solution(ms, a, s, fixed, F32(0.75))
    err = np.abs(c.astype(np.float64) - exact).max()
    assert err <= ms.tol, (err, ms.tol, it)
    assert (c[fixed] == F32(0.75)).all()


@pytest.mark.parametrize("shape", [(1, 1, 6, 6), (1, 4, 5, 6), (1, 1, 3, 40)])
def test_nearly_singular_problem_converges(shape):
    """No flux, a uniform weak sink (a TGF-β steady state): the constant mode, which smoothing
    barely touches, is corrected by the one-voxel level (c = s / a there) with restrictions that
    keep a constant (odd extents included), so the solve ends within its bound in a few cycles,
    near the analytic level s / a."""
    a = np.full(shape, 2e-4, F32)
    s = np.full(shape, 2.5e-3, F32)
    ms = MultigridSolver(shape, diffusion_um2_per_min=2340.0, voxel_um=20.0, tol=1e-3 * 12.5,
                         scale=12.5)
    c = np.zeros(shape, F32)
    it = ms.solve(c, a, s)
    assert it[0] <= 6
    exact = exact_solution(ms, a, s)      # den = den0 + a rounds a in float32 by up to 1.5 %
    np.testing.assert_allclose(exact, 12.5, rtol=0.02)
    assert np.abs(c - exact).max() <= ms.tol


def test_same_system_as_sor():
    """Both solvers iterate on the one discrete system: solved tightly, they agree to far below
    the tolerance of a run."""
    ms, c0, a, s, fixed = multigrid_case((2, 1, 24, 28), tol=1e-7, scale=1.0)
    fs = FieldSolver(ms.shape, diffusion_um2_per_min=2000.0, voxel_um=20.0, boundary="neumann",
                     boundary_value=0.3, omega=1.7, tol=1e-7, scale=1.0)
    c1, c2 = c0.copy(), c0.copy()
    ms.solve(c1, a, s, fixed, F32(0.75))
    fs.solve(c2, a, s, fixed, F32(0.75))
    assert np.abs(c1 - c2).max() < 1e-5


def test_replicate_result_is_independent_of_its_batch():
    """Convergence is per replicate: a replicate solved alone and in a batch (where the others
    converge at other cycles and are compacted out) ends bitwise the same."""
    ms, c0, a, s, fixed = multigrid_case((3, 1, 30, 30))
    c0[1] *= F32(40)          # far from converged: more cycles than the others
    c = c0.copy()
    it = ms.solve(c, a, s, fixed, F32(0.75))
    assert len(set(it.tolist())) > 1
    for r in range(3):
        one = MultigridSolver((1,) + ms.shape[1:], diffusion_um2_per_min=2000.0, voxel_um=20.0,
                              boundary="neumann", boundary_value=0.3, tol=1e-5)
        cr = c0[r:r + 1].copy()
        itr = one.solve(cr, a[r:r + 1], s[r:r + 1], fixed[r:r + 1], F32(0.75))
        assert itr[0] == it[r]
        np.testing.assert_array_equal(cr.view(np.uint32), c[r:r + 1].view(np.uint32))


def test_max_iter_and_bad_arguments():
    ms, c0, a, s, fixed = multigrid_case((2, 1, 16, 16), max_iter=1, tol=0.0)
    c = c0.copy()
    assert (ms.solve(c, a, s, fixed, F32(0.75)) == 1).all()
    ms0, *_ = multigrid_case((2, 1, 16, 16), max_iter=0)
    c = c0.copy()
    assert (ms0.solve(c, a, s, fixed, F32(0.75)) == 0).all()
    np.testing.assert_array_equal(c[~fixed], c0[~fixed])
    for kw, msg in (({"rho_min": 1.0}, "rho_min"), ({"rho_min": "x"}, "rho_min"),
                    ({"boundary": "open"}, "boundary"), ({"max_iter": 2.5}, "max_iter")):
        with pytest.raises(ValueError, match=msg):
            multigrid_case((1, 1, 8, 8), **kw)
    with pytest.raises(ValueError, match="shape"):
        ms.solve(np.zeros((1, 1, 16, 16), F32), a, s)
    with pytest.raises(ValueError, match="fixed_value must be a scalar or broadcast to"):
        ms.solve(c0.copy(), a, s, fixed, np.zeros(3, F32))


# ----------------------------------------------------------------------------- the device twin
@pytest.fixture(scope="module")
def emulated():
    from gpusim.backends.emulated import EmulatedRuntime, compiler

    if compiler() is None:
        pytest.skip("the emulated device needs a C++ compiler")
    return EmulatedRuntime(order=2)


@pytest.mark.parametrize("shape,boundary,kw", [
    ((3, 1, 33, 32), "neumann", {}),
    ((2, 1, 25, 40), "dirichlet", {}),
    ((2, 9, 8, 11), "neumann", {}),
    ((1, 12, 13, 10), "dirichlet", {}),
    ((2, 5, 3, 12), "neumann", {}),                       # 3D levels whose Z comes down to 1
    ((2, 1, 1, 1), "neumann", {}),                        # one voxel: Gauss-Seidel only
    ((2, 1, 20, 20), "neumann", {"tol": 0.0, "max_iter": 3}),   # stops at max_iter
    ((2, 1, 12, 12), "neumann", {"max_iter": 0}),
    ((2, 1, 24, 24), "neumann", {"tol": 1e-12, "scale": 1.0}),  # the rounding-level stop
])
def test_device_twin_bitwise(emulated, shape, boundary, kw):
    from gpusim.testing import assert_device_solve_bitwise

    ms, c0, a, s, fixed = multigrid_case(shape, boundary, **kw)
    assert_device_solve_bitwise(emulated, (ms, c0, a, s, fixed))

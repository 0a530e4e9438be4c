"""Tests of gpusim.model.fields: the deterministic red-black SOR field solver.

The reference answers come from three independent places: a per-voxel scalar transcription of
the module docstring's arithmetic contract (bitwise), an exact sparse solve of the same linear
system in float64 (scipy, test-only), and closed-form 1D slab profiles.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpusim.model.fields import FieldSolver

F32 = np.float32
U = 2.0 ** -24  # float32 unit roundoff


# ----------------------------------------------------------------------------- helpers
def make_problem(shape, seed, *, fixed_frac=0.1, a_range=(0.5, 2.0), s_range=(0.0, 1.0)):
    rng = np.random.default_rng(seed)
    a = rng.uniform(*a_range, shape).astype(F32)
    s = rng.uniform(*s_range, shape).astype(F32)
    fixed = rng.random(shape) < fixed_frac
    c0 = rng.uniform(0.0, 1.0, shape).astype(F32)
    return c0, a, s, fixed


def neighbours(z, y, x, Z, Y, X):
    """In-domain-or-not neighbour coordinates in the contract's order x-, x+, y-, y+, z-, z+."""
    nbs = [(z, y, x - 1), (z, y, x + 1), (z, y - 1, x), (z, y + 1, x)]
    if Z > 1:
        nbs += [(z - 1, y, x), (z + 1, y, x)]
    return nbs


def reference_solve(c, a, s, fixed, fixed_value, *, D, h, boundary, bv, omega, tol, max_iter,
                    floor=None, scale=0.0):
    """Scalar, per-voxel transcription of the arithmetic contract in gpusim.model.fields
    (``floor``: the projected sweep, as FieldSolver(floor=...))."""
    c = c.copy()
    R, Z, Y, X = c.shape
    dh = F32(D / (h * h))
    n_nb = 6 if Z > 1 else 4
    den0 = F32(dh * F32(n_nb))
    om, tl, bv = F32(omega), F32(tol), F32(bv)
    iters = np.zeros(R, dtype=np.int32)
    for r in range(R):
        cr = c[r]
        cr[fixed[r]] = F32(fixed_value)
        den = (den0 + a[r]).astype(F32)
        dprev = rprev = F32(0)
        cmax = F32(np.abs(cr).max())
        noise = F32(max(cmax, F32(scale)) * F32(2.0 ** -18)) if scale > 0 else F32(0)
        for _ in range(max_iter):
            maxchg = F32(0)
            for colour in (0, 1):
                for z in range(Z):
                    for y in range(Y):
                        for x in range(X):
                            if (x + y + z) % 2 != colour or fixed[r, z, y, x]:
                                continue
                            cc = cr[z, y, x]
                            vals = []
                            for zz, yy, xx in neighbours(z, y, x, Z, Y, X):
                                if 0 <= zz < Z and 0 <= yy < Y and 0 <= xx < X:
                                    vals.append(cr[zz, yy, xx])
                                else:
                                    vals.append(bv if boundary == "dirichlet" else cc)
                            nb = F32(vals[0] + vals[1])
                            for v in vals[2:]:
                                nb = F32(nb + v)
                            t = F32(dh * nb)
                            t = F32(t + s[r, z, y, x])
                            gs = F32(t / den[z, y, x])
                            t = F32(gs - cc)
                            t = F32(om * t)
                            cn = F32(cc + t)
                            if floor is not None and cn < F32(floor):
                                cn = F32(floor)
                            step = F32(cn - cc) if floor is not None else t  # the change
                            maxchg = max(maxchg, F32(abs(step)))
                            cr[z, y, x] = cn
            iters[r] += 1
            ratio = F32(maxchg / dprev) if dprev > 0 else F32(1)
            rho = ratio if ratio > rprev else rprev
            rho = rho if rho > F32(om - F32(1)) else F32(om - F32(1))
            dprev, rprev = maxchg, ratio
            lhs = F32(maxchg * rho)
            if F32(lhs + lhs) <= F32(tl * F32(F32(1) - rho)) or (maxchg <= noise and ratio >= 1):
                break
    return c, iters


def direct_solve(a, s, fixed, fixed_value, *, D, h, boundary, bv):
    """The solver's linear system, assembled with scipy.sparse and solved exactly in float64.

    Uses the float32-rounded coefficient dh the solver uses, so the only differences left are
    the iteration's stopping error and float32 rounding.
    """
    R, Z, Y, X = a.shape
    dh = float(F32(D / (h * h)))
    n_nb = 6 if Z > 1 else 4
    out = np.empty(a.shape, dtype=np.float64)
    idx = np.arange(Z * Y * X).reshape(Z, Y, X)
    for r in range(R):
        rows, cols, vals = [], [], []
        rhs = np.zeros(Z * Y * X)
        for z in range(Z):
            for y in range(Y):
                for x in range(X):
                    i = idx[z, y, x]
                    if fixed[r, z, y, x]:
                        rows.append(i), cols.append(i), vals.append(1.0)
                        rhs[i] = float(F32(fixed_value))
                        continue
                    diag = dh * n_nb + float(a[r, z, y, x])
                    rhs[i] = float(s[r, z, y, x])
                    for zz, yy, xx in neighbours(z, y, x, Z, Y, X):
                        if 0 <= zz < Z and 0 <= yy < Y and 0 <= xx < X:
                            rows.append(i), cols.append(idx[zz, yy, xx]), vals.append(-dh)
                        elif boundary == "dirichlet":
                            rhs[i] += dh * float(F32(bv))
                        else:  # neumann: the ghost is the voxel itself
                            diag -= dh
                    rows.append(i), cols.append(i), vals.append(diag)
        A = sp.csr_matrix((vals, (rows, cols)), shape=(Z * Y * X,) * 2)
        out[r] = spla.spsolve(A, rhs).reshape(Z, Y, X)
    return out


def solver(shape, **kw):
    kw.setdefault("diffusion_um2_per_min", 400.0)  # dh = 1 with 20 um voxels
    kw.setdefault("voxel_um", 20.0)
    return FieldSolver(shape, **kw)


# ----------------------------------------------------------------------------- the contract
CONTRACT_CASES = [
    # shape, boundary, omega
    ((2, 1, 6, 5), "neumann", 1.5),
    ((2, 1, 5, 7), "dirichlet", 1.0),
    ((1, 1, 1, 6), "neumann", 1.2),
    ((1, 1, 7, 1), "dirichlet", 1.5),
    ((2, 3, 4, 5), "neumann", 1.0),
    ((1, 4, 3, 3), "dirichlet", 1.7),
    ((1, 2, 1, 3), "neumann", 1.5),
]


@pytest.mark.parametrize("shape,boundary,omega", CONTRACT_CASES)
@pytest.mark.parametrize("max_iter,tol", [(1, 0.0), (3, 0.0), (60, 1e-3)])
def test_matches_scalar_transcription_of_the_contract_bitwise(shape, boundary, omega,
                                                              max_iter, tol):
    c0, a, s, fixed = make_problem(shape, seed=sum(shape) + max_iter)
    kw = dict(boundary=boundary, boundary_value=0.75, omega=omega, tol=tol, max_iter=max_iter)
    c = c0.copy()
    it = solver(shape, **kw).solve(c, a, s, fixed, 1.25)
    ref, ref_it = reference_solve(c0, a, s, fixed, 1.25, D=400.0, h=20.0, boundary=boundary,
                                  bv=0.75, omega=omega, tol=tol, max_iter=max_iter)
    assert it.dtype == np.int32 and it.shape == (shape[0],)
    np.testing.assert_array_equal(it, ref_it)
    assert np.array_equal(c.view(np.uint32), ref.view(np.uint32))  # bitwise, signed zeros too


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(R=st.integers(1, 2), Z=st.sampled_from([1, 1, 2, 3]), Y=st.integers(1, 5),
       X=st.integers(1, 5), boundary=st.sampled_from(["neumann", "dirichlet"]),
       omega=st.sampled_from([1.0, 1.3, 1.9]), fixed_frac=st.sampled_from([0.0, 0.2]),
       D=st.sampled_from([400.0, 1000.0, 1e5]), seed=st.integers(0, 2**31 - 1))
def test_contract_property(R, Z, Y, X, boundary, omega, fixed_frac, D, seed):
    shape = (R, Z, Y, X)
    c0, a, s, fixed = make_problem(shape, seed, fixed_frac=fixed_frac)
    kw = dict(boundary=boundary, boundary_value=0.3, omega=omega, tol=1e-3, max_iter=8)
    c = c0.copy()
    it = FieldSolver(shape, diffusion_um2_per_min=D, voxel_um=20.0, **kw).solve(
        c, a, s, fixed, 0.9)
    ref, ref_it = reference_solve(c0, a, s, fixed, 0.9, D=D, h=20.0, boundary=boundary,
                                  bv=0.3, omega=omega, tol=1e-3, max_iter=8)
    np.testing.assert_array_equal(it, ref_it)
    assert np.array_equal(c.view(np.uint32), ref.view(np.uint32))


SPECIAL_INPUTS = [
    # boundary, boundary value, what goes into c0, whether the padding needs restoring
    ("neumann", 0.75, None, False),          # the contract tests above: factor 0 keeps it
    ("neumann", 0.75, "face -0.0", True),    # a padding copy could turn -0.0 into +0.0
    ("dirichlet", -0.0, None, True),
    ("dirichlet", 0.75, "nan", True),         # 0 t is not 0 for t = NaN
    ("neumann", 0.75, "inf", True),
]


@pytest.mark.parametrize("boundary,bv,special,restores", SPECIAL_INPUTS)
def test_padding_kept_exactly_for_any_input(boundary, bv, special, restores):
    """The NumPy sweep relaxes the padding by a factor 0 (c + 0 t = c) instead of restoring it,
    except where that would not be exact: a held -0.0 or a non-finite input.  Either way the
    result is the contract's, bitwise (NaN positions and payload-free values alike)."""
    shape = (2, 3, 5, 6)
    c0, a, s, fixed = make_problem(shape, seed=7)
    if special == "face -0.0":
        c0[:, :, 0, :] = -0.0
        s[:, :, :2, :] = -0.0
    elif special == "nan":
        c0[1, 1, 2, 3] = np.nan
    elif special == "inf":
        c0[0, 2, 4, 0] = np.inf
    kw = dict(boundary=boundary, boundary_value=bv, omega=1.5, tol=0.0, max_iter=3)
    fs = solver(shape, **kw)
    c = c0.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        it = fs.solve(c, a, s, fixed, 1.25)
        ref, ref_it = reference_solve(c0, a, s, fixed, 1.25, D=400.0, h=20.0, boundary=boundary,
                                      bv=bv, omega=1.5, tol=0.0, max_iter=3)
    assert fs._exact is restores
    np.testing.assert_array_equal(it, ref_it)
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(c), finite)
    assert np.array_equal(c[finite].view(np.uint32), ref[finite].view(np.uint32))
    assert np.array_equal(np.isnan(c), np.isnan(ref))


# ----------------------------------------------------------------------------- exact solution
EXACT_CASES = [
    ((2, 1, 9, 11), "neumann"),
    ((2, 1, 10, 7), "dirichlet"),
    ((1, 5, 6, 7), "neumann"),
    ((1, 6, 5, 4), "dirichlet"),
]


@pytest.mark.parametrize("shape,boundary", EXACT_CASES)
def test_gauss_seidel_meets_its_error_bound(shape, boundary):
    """omega = 1: a proven max-norm bound from the stopping rule.

    With data >= 0 the map G of one red-black sweep is a contraction in the max norm with
    q = max_i dh*n/(dh*n + a_i) (each voxel's update is a weighted mean of values with total weight
    q, Dirichlet ghosts and fixed voxels being constants). A sweep that changes nothing by more than
    tol therefore leaves an error e <= (q*tol + delta)/(1 - q), where delta bounds the float32
    rounding of one sweep: one voxel update is (n + 6) roundings of values <= M = max|x*|
    (n - 1 adds, *, +, /, den, -, *, +), at most 2 such in a red-black sweep (colour 1 sees colour
    0's rounding scaled by q < 1): delta <= 2 (n + 6) u M.
    """
    tol = 1e-6
    c0, a, s, fixed = make_problem(shape, seed=7)
    n_nb = 6 if shape[1] > 1 else 4
    kw = dict(boundary=boundary, boundary_value=0.5)
    c = np.zeros(shape, F32)
    it = solver(shape, omega=1.0, tol=tol, **kw).solve(c, a, s, fixed, 2.0)
    assert (it < 10_000).all()
    exact = direct_solve(a, s, fixed, 2.0, D=400.0, h=20.0, boundary=boundary, bv=0.5)
    dh = 1.0
    q = (dh * n_nb / (dh * n_nb + a.astype(np.float64)[~fixed])).max()
    M = np.abs(exact).max()
    bound = (q * tol + 2 * (n_nb + 6) * U * M) / (1 - q)
    err = np.abs(c - exact).max()
    assert err <= bound, (err, bound)
    # and the bound is meaningful: a relative accuracy better than 1e-4
    assert bound / M < 1e-4


@pytest.mark.parametrize("shape,boundary", EXACT_CASES)
@pytest.mark.parametrize("omega", [1.5, 1.8])
def test_sor_agrees_with_sparse_direct_solve(shape, boundary, omega):
    """omega > 1 has no max-norm contraction bound; near convergence the error is about
    ||change|| * rho/(1 - rho) with rho the SOR spectral radius (< 0.8 for these absorbing problems,
    so error <~ 4 tol) plus the float32 rounding level (~1e-6 relative). tol = 1e-5 on values of
    order 1 (ulp ~ 1e-7, safely above SOR's last-bit cycling) => relative error < 1e-4."""
    c0, a, s, fixed = make_problem(shape, seed=11, fixed_frac=0.05)
    kw = dict(boundary=boundary, boundary_value=0.25, omega=omega, tol=1e-5)
    c = c0.copy()
    it = solver(shape, **kw).solve(c, a, s, fixed, 1.0)
    assert (it < 10_000).all()
    exact = direct_solve(a, s, fixed, 1.0, D=400.0, h=20.0, boundary=boundary, bv=0.25)
    assert np.abs(c - exact).max() / np.abs(exact).max() < 1e-4


@pytest.mark.parametrize("shape,boundary", EXACT_CASES)
def test_exact_solution_is_the_direct_solve(shape, boundary):
    """gpusim.model.fields_exact.exact_solution (vectorised assembly; direct, or CG above direct_max)
    against the per-voxel assembly here: equal up to float64 rounding and the float32 den."""
    from gpusim.model.fields_exact import exact_solution

    c0, a, s, fixed = make_problem(shape, seed=5)
    fs = solver(shape, boundary=boundary, boundary_value=0.25)
    ref = direct_solve(a, s, fixed, 1.0, D=400.0, h=20.0, boundary=boundary, bv=0.25)
    for kw in ({}, {"direct_max": 0}, {"direct_max": 0, "x0": c0}):
        got = exact_solution(fs, a, s, fixed, 1.0, **kw)
        assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max(), kw


def test_weak_absorption_long_range_diffusion():
    """A field with D/h^2 >> a (oxygen-like: D = 1e5, a = 0.1..10) on a 2D tissue with vessels.

    Values ~20..38 have a float32 ulp of ~4e-6 and over-relaxed sweeps keep cycling in the last
    ~8 ulps (max change ~3e-5 for omega = 1.8), so the solve needs the rounding-level stop
    (``scale``) or a tol far above that."""
    shape = (2, 1, 24, 24)
    rng = np.random.default_rng(3)
    a = rng.choice(np.array([0.1, 5.0, 10.0], F32), size=shape)
    s = np.zeros(shape, F32)
    fixed = rng.random(shape) < 0.03
    c = np.zeros(shape, F32)
    fs = FieldSolver(shape, diffusion_um2_per_min=1e5, voxel_um=20.0, omega=1.8, tol=1e-4,
                     scale=38.0)  # without the rounding-level stop it would cycle to max_iter
    it = fs.solve(c, a, s, fixed, 38.0)
    assert (it < 10_000).all()
    exact = direct_solve(a, s, fixed, 38.0, D=1e5, h=20.0, boundary="neumann", bv=0.0)
    assert np.abs(c - exact).max() / 38.0 < 1e-4


# ----------------------------------------------------------------------------- slab
@pytest.mark.parametrize("axis,three_d", [(3, False), (2, False), (3, True), (1, True)])
def test_slab_profile(axis, three_d):
    """A slab held at c0 on the face at coordinate 0, no flux elsewhere, uptake k, no source.

    Discrete: away from the held face c_j = A r^j + B r^-j with r + 1/r - 2 = k h^2/D; the no-flux
    end (ghost c_N = c_{N-1}) makes the profile symmetric about j = M = N - 1/2, so with
    cosh(theta) = 1 + k h^2/(2D), r = exp(-theta):
        c_j = c0 cosh(theta (M - j)) / cosh(theta M)         (exact for the discrete equations)
    Continuum (lam = sqrt(D/k), L = M h):  c(x) = c0 cosh((L - x)/lam) / cosh(L/lam).
    Discretisation error: theta = eps (1 - eps^2/24 + O(eps^4)) with eps = h/lam, and
    d/dt [ln cosh(t (L - x)) - ln cosh(t L)] lies in [-L, L], so
        |ln c_discrete - ln c_continuum| <= (L/lam) |theta/eps - 1| <= (L/lam) eps^2 / 24.
    """
    N, D, h, k, c0 = 20, 1000.0, 20.0, 0.125, 1.0  # dh = 2.5 and den = dh*n + k exact in float32
    shape = [1, 3 if three_d else 1, 3, 3]
    shape[axis] = N
    shape = tuple(shape)
    fixed = np.zeros(shape, bool)
    held = [slice(None)] * 4
    held[axis] = 0
    fixed[tuple(held)] = True
    c = np.zeros(shape, F32)
    fs = FieldSolver(shape, diffusion_um2_per_min=D, voxel_um=h, boundary="neumann",
                     omega=1.0, tol=1e-8)
    it = fs.solve(c, np.full(shape, k, F32), np.zeros(shape, F32), fixed, c0)
    assert (it < 10_000).all()
    prof = np.moveaxis(c, axis, -1).reshape(-1, N).astype(np.float64)
    # uniform across the slab up to rounding (ghost vs. neighbour values differ in the last bits
    # while iterating)
    assert (np.ptp(prof, axis=0) <= 1e-6 * prof.max(axis=0)).all()

    j = np.arange(N)
    M = N - 0.5
    theta = np.arccosh(1 + k * h * h / (2 * D))
    r = np.exp(-theta)
    assert abs(r + 1 / r - 2 - k * h * h / D) < 1e-12
    discrete = c0 * np.cosh(theta * (M - j)) / np.cosh(theta * M)
    # float32 rounding level (observed ~1e-6); a wrong stencil, boundary or coefficient moves
    # this profile by > 1e-2
    np.testing.assert_allclose(prof[0], discrete, rtol=1e-4, atol=5e-6)

    lam = np.sqrt(D / k)
    eps, L = h / lam, M * h
    continuum = c0 * np.cosh((L - j * h) / lam) / np.cosh(L / lam)
    bound = (L / lam) * eps**2 / 24
    logerr = np.abs(np.log(prof[0]) - np.log(continuum)).max()
    assert logerr <= bound * 1.02 + 1e-4, (logerr, bound)
    # second order for real: the error at the far end is of the predicted size, not far below
    assert logerr > 0.5 * bound


# ----------------------------------------------------------------------------- batches
def test_batch_independence_bitwise():
    shape1 = (1, 1, 17, 19)
    probs = []
    for i, scale in enumerate([0.05, 1.0, 20.0]):  # very different convergence speeds
        c0, a, s, fixed = make_problem(shape1, seed=100 + i, fixed_frac=0.05)
        probs.append((c0, (a * F32(scale)).astype(F32), s, fixed))
    kw = dict(diffusion_um2_per_min=1000.0, voxel_um=20.0, boundary="dirichlet",
              boundary_value=0.1, omega=1.5, tol=1e-5)
    alone = []
    for c0, a, s, fixed in probs:
        c = c0.copy()
        it = FieldSolver(shape1, **kw).solve(c, a, s, fixed, 1.5)
        alone.append((c, it[0]))
    iters_alone = [it for _, it in alone]
    assert len(set(iters_alone)) == 3, iters_alone  # they really converge at different sweeps

    for order in ([0, 1, 2], [2, 0, 1], [1, 1, 0, 2]):
        stack = [np.concatenate([probs[o][i] for o in order]) for i in range(4)]
        c = stack[0].copy()
        it = FieldSolver(c.shape, **kw).solve(c, stack[1], stack[2], stack[3], 1.5)
        for slot, o in enumerate(order):
            assert np.array_equal(c[slot].view(np.uint32), alone[o][0][0].view(np.uint32))
            assert it[slot] == alone[o][1]


def test_max_iter_is_per_replicate_and_raises_nothing():
    shape = (3, 1, 12, 12)
    c0, a, s, fixed = make_problem(shape, seed=5, fixed_frac=0.0)
    a[0] *= F32(100)  # replicate 0 converges quickly, the others hit max_iter
    c = c0.copy()
    it = solver(shape, omega=1.0, tol=1e-4, max_iter=15).solve(c, a, s)
    assert it[0] < 15 and it[1] == 15 and it[2] == 15
    # the capped replicates equal 15 sweeps of the contract, the converged one is frozen
    ref, ref_it = reference_solve(c0, a, s, np.zeros(shape, bool), 0.0, D=400.0, h=20.0,
                                  boundary="neumann", bv=0.0, omega=1.0, tol=1e-4, max_iter=15)
    np.testing.assert_array_equal(it, ref_it)
    assert np.array_equal(c, ref)
    # max_iter = 0: nothing but the fixed voxels changes
    c = c0.copy()
    fixed = np.zeros(shape, bool)
    fixed[:, :, 0, 0] = True
    it = solver(shape, max_iter=0).solve(c, a, s, fixed, 9.0)
    assert (it == 0).all() and (c[fixed] == 9.0).all() and np.array_equal(c[~fixed], c0[~fixed])


# ----------------------------------------------------------------------------- determinism
def test_determinism_same_input_same_bits():
    shape = (4, 1, 33, 31)
    c0, a, s, fixed = make_problem(shape, seed=21)
    out = []
    fs = solver(shape, tol=1e-5)
    for solver_ in (fs, fs, solver(shape, tol=1e-5)):  # reused instance, fresh instance
        c = c0.copy()
        it = solver_.solve(c, a, s, fixed, 3.0)
        out.append((c, it))
    for c, it in out[1:]:
        assert np.array_equal(c.view(np.uint32), out[0][0].view(np.uint32))
        assert np.array_equal(it, out[0][1])


def test_warm_start_from_converged_state_stops_at_once():
    """A converged state stops after at most 3 sweeps: 1 when the first sweep changes nothing
    (an exact fixed point), else the two or three a contraction ratio needs."""
    shape = (2, 1, 15, 15)
    c0, a, s, fixed = make_problem(shape, seed=8)
    fs = solver(shape, omega=1.0, tol=1e-5)
    c = c0.copy()
    fs.solve(c, a, s, fixed, 1.0)
    before = c.copy()
    it = fs.solve(c, a, s, fixed, 1.0)
    assert (it <= 3).all()
    assert np.abs(c - before).max() <= 1e-5
    it = fs.solve(c, a, s, fixed, 1.0)
    assert (it <= 3).all()


# ----------------------------------------------------------------------------- fixed, uniform
@pytest.mark.parametrize("omega", [1.0, 1.5])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet"])
def test_fixed_voxels_hold_their_value_exactly(omega, boundary):
    shape = (2, 3, 8, 9)
    c0, a, s, fixed = make_problem(shape, seed=13, fixed_frac=0.15)
    fv = F32(3.1415927)
    c = c0.copy()
    solver(shape, omega=omega, boundary=boundary, tol=1e-6).solve(c, a, s, fixed, fv)
    assert (c[fixed] == fv).all()
    assert (c[~fixed] != fv).all()
    # per-voxel fixed values (a broadcastable array) work too
    fva = np.linspace(1.0, 2.0, shape[-1], dtype=F32)
    c = c0.copy()
    solver(shape, omega=omega, boundary=boundary, tol=1e-6).solve(c, a, s, fixed, fva)
    assert np.array_equal(c[fixed], np.broadcast_to(fva, shape)[fixed])


@pytest.mark.parametrize("omega", [1.0, 1.5])
@pytest.mark.parametrize("shape", [(2, 1, 10, 13), (1, 4, 5, 6)])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet"])
def test_uniform_problem_has_uniform_solution(omega, shape, boundary):
    """s = a c*: every voxel at c* solves the equations (dirichlet with boundary_value = c*)."""
    cstar, a_val = F32(0.75), F32(0.5)  # all float32 operations on c* are then exact
    a = np.full(shape, a_val, F32)
    s = np.full(shape, F32(a_val * cstar), F32)
    fixed = np.zeros(shape, bool)
    fixed[..., 0, 0] = True
    kw = dict(omega=omega, boundary=boundary, boundary_value=float(cstar), tol=1e-6, scale=0.75)
    # started at c*, it is a fixed point bitwise and stops after one sweep
    c = np.full(shape, cstar, F32)
    it = solver(shape, **kw).solve(c, a, s, fixed, cstar)
    assert (it == 1).all() and (c == cstar).all()
    # started elsewhere, it converges to c*
    c = np.zeros(shape, F32)
    it = solver(shape, **kw).solve(c, a, s, fixed, cstar)
    assert (it < 10_000).all()
    assert np.abs(c - cstar).max() < 1e-5


# ----------------------------------------------------------------------------- API checks
def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        solver((1, 1, 4, 4), boundary="periodic")
    with pytest.raises(ValueError):
        solver((1, 1, 4, 4), omega=2.0)
    with pytest.raises(ValueError):
        solver((1, 4, 4))
    fs = solver((1, 1, 4, 4))
    with pytest.raises(ValueError):
        fs.solve(np.zeros((1, 1, 4, 4)), np.ones((1, 1, 4, 4)), np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError):
        fs.solve(np.zeros((2, 1, 4, 4), F32), np.ones((2, 1, 4, 4)), np.ones((2, 1, 4, 4)))

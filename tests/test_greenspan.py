"""Zero-order oxygen consumption (Greenspan's necrotic core).

* Greenspan's (1972) closed form (``gpusim.validation.references.greenspan_necrotic_radius`` / ``_profile``):
  the necrotic radius R/2 at q = 12 D cv / R^2, no core for cv >= q R^2 / (6D), and the profile
  solves the radial problem;
* the float64 reference of the validation case (``obstacle_exact_discrete``) against scipy's
  sparse direct solve and a separately written projected Gauss-Seidel;
* the projected sweep of :class:`~gpusim.model.fields.FieldSolver` (``floor=``) against the scalar
  transcription of the arithmetic contract (tests/test_fields.py) bitwise, and its CUDA twin
  (kernels/fields_logic.cuh) through the host harness bitwise;
* the oxygen coefficients of :class:`~gpusim.model.environment.FieldsPhase` with consumption on
  against kernels/field_coeffs_logic.cuh bitwise, the floor switched on only with consumption;
* the engine with consumption: O2 >= 0, an anoxic core, necrosis there;
* the validation case: passes, and fails with planted errors (consumption x 0.9, no floor).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from test_fields import reference_solve

from gpusim.validation import format_case
from gpusim.validation.cases.fields import case_fields
from gpusim.validation.references import greenspan_necrotic_radius, greenspan_profile, obstacle_exact_discrete
from gpusim.model import environment as env_mod
from gpusim.model.fields import FieldSolver
from gpusim.model.lattice import Kind
from gpusim.scenario import load_scenario

F32 = np.float32
EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------- Greenspan 1972
@pytest.mark.parametrize("R,D,cv", [(170.0, 1e5, 38.0), (330.0, 2e3, 5.0), (1.0, 1.0, 1.0)])
def test_greenspan_half_radius(R, D, cv):
    q = 12.0 * D * cv / R ** 2  # cv = q/(6D) R^2 (1 - 3/4 + 2/8) = q R^2 / (12 D)
    # bisection over rho in [0, 1] for 100 halvings: exact to the float64 rounding of rho
    assert abs(greenspan_necrotic_radius(R, q, D, cv) - R / 2) <= 4 * EPS * R


def test_greenspan_no_necrosis_below_threshold():
    R, D, cv = 200.0, 1e5, 38.0
    q0 = 6.0 * D * cv / R ** 2  # the centre just reaches 0
    assert greenspan_necrotic_radius(R, q0, D, cv) == 0.0
    assert greenspan_necrotic_radius(R, 0.5 * q0, D, cv) == 0.0
    # just above the threshold a small core appears: 1 - 3 rho^2 + 2 rho^3 = 1/(1 + d) gives
    # rho ~ sqrt(d/3) for small d
    d = 1e-4
    rn = greenspan_necrotic_radius(R, q0 * (1 + d), D, cv)
    assert 0 < rn and abs(rn / R - math.sqrt(d / 3)) < 0.02 * math.sqrt(d / 3)
    # without a core the profile is the parabola cv - q/(6D) (R^2 - r^2)
    r = np.linspace(1.0, R, 50)
    np.testing.assert_allclose(greenspan_profile(r, R, 0.5 * q0, D, cv),
                               cv - 0.5 * q0 / (6 * D) * (R ** 2 - r ** 2), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        greenspan_necrotic_radius(R, 0.0, D, cv)


def test_greenspan_profile_solves_the_radial_problem():
    """c(R) = cv, c = c' = 0 at Rn, c = 0 inside, and D (c'' + 2 c'/r) = q in the shell
    (central differences with step k; truncation bound derived below)."""
    R, D, cv = 300.0, 1e5, 38.0
    q = 3.0 * 6.0 * D * cv / R ** 2
    rn = greenspan_necrotic_radius(R, q, D, cv)
    A = q * rn ** 3 / (3 * D)  # c = q r^2/(6D) + A/r + B in the shell
    assert 0 < rn < R
    assert abs(greenspan_profile(R, R, q, D, cv) - cv) < 1e-12 * cv
    assert greenspan_profile(rn * 0.999, R, q, D, cv) == 0.0
    k = 1e-3 * R
    assert abs(float(greenspan_profile(rn + k, R, q, D, cv))) < q / D * k ** 2  # ~ q k^2/(2D)
    r = np.linspace(rn + 0.05 * (R - rn), R - 0.05 * (R - rn), 9)
    f = lambda x: greenspan_profile(x, R, q, D, cv)  # noqa: E731
    d1 = (f(r + k) - f(r - k)) / (2 * k)
    d2 = (f(r + k) - 2 * f(r) + f(r - k)) / k ** 2
    lhs = D * (d2 + 2 * d1 / r)
    # truncation: |c'' err| <= k^2/12 max|c''''| = k^2/12 * 24 A/r^5, |c' err| <= k^2/6 * 6 A/r^4
    # (the r^2 part is exact); roundoff of the second difference: 4 eps max|c| / k^2 (|c| <= cv)
    tol = D * (4 * k ** 2 * A / r ** 5 + 8 * EPS * cv / k ** 2 * 2)
    assert np.all(np.abs(lhs - q) <= tol), (lhs - q, tol)


# ----------------------------------------------------------------------------- exact reference
def _ball(R0):
    n = 2 * R0 + 3
    ax = np.arange(n) - n // 2
    dist = np.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    return dist <= R0


def _assemble(inside, dh, q, cv):
    """Sparse A and b of the interior problem A c = b (independent of validate's matrix-free form)."""
    iv = np.argwhere(inside)
    idx = -np.ones(inside.shape, np.int64)
    idx[inside] = np.arange(len(iv))
    rows, cols, vals = [], [], []
    b = np.full(len(iv), -q)
    for i, (z, y, x) in enumerate(iv):
        rows.append(i), cols.append(i), vals.append(6 * dh)
        for dz, dy, dx in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            j = idx[z + dz, y + dy, x + dx]
            if j >= 0:
                rows.append(i), cols.append(j), vals.append(-dh)
            else:
                b[i] += dh * cv
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(iv),) * 2), b


def test_obstacle_reference_without_contact_is_the_linear_solve():
    inside = _ball(5)
    dh, cv = 250.0, 38.0
    q = 0.5 * 6 * dh * 400 * cv / (5.5 * 20) ** 2  # well below the necrosis threshold
    c, outer = obstacle_exact_discrete(inside, dh, q, cv)
    A, b = _assemble(inside, dh, q, cv)
    want = spla.spsolve(A.tocsc(), b)
    assert outer == 1 and want.min() > 0
    np.testing.assert_allclose(c[inside], want, rtol=0, atol=1e-10 * cv)


def test_obstacle_reference_satisfies_complementarity_and_matches_projected_gs():
    inside = _ball(6)
    dh, cv, h = 250.0, 38.0, 20.0
    q = 12 * dh * h * h * cv / (6.5 * h) ** 2
    c, outer = obstacle_exact_discrete(inside, dh, q, cv)
    ci = c[inside]
    A, b = _assemble(inside, dh, q, cv)
    w = A @ ci - b
    scale = 6 * dh * cv  # size of the terms of a row
    assert outer > 1 and (ci == 0).sum() > 10, "no contact set: the obstacle is not tested"
    assert ci.min() >= 0 and w.min() >= -1e-10 * scale
    assert np.abs(ci * w).max() <= 1e-10 * scale * cv
    # a separately written projected Gauss-Seidel in float64 (lexicographic order), to a change
    # of 1e-13 cv; its distance to the solution is at most change x rho/(1 - rho) with rho the
    # contraction of the sweep (< 0.99 for a ball of radius 6 voxels: 1e-11 cv is generous)
    iv = [tuple(p) for p in np.argwhere(inside)]
    g = np.where(inside, 0.0, cv)
    for _ in range(20_000):
        chg = 0.0
        for z, y, x in iv:
            nb = (g[z - 1, y, x] + g[z + 1, y, x] + g[z, y - 1, x] + g[z, y + 1, x]
                  + g[z, y, x - 1] + g[z, y, x + 1])
            new = max((dh * nb - q) / (6 * dh), 0.0)
            chg = max(chg, abs(new - g[z, y, x]))
            g[z, y, x] = new
        if chg <= 1e-13 * cv:
            break
    assert chg <= 1e-13 * cv
    np.testing.assert_allclose(ci, g[inside], rtol=0, atol=1e-11 * cv)


# ----------------------------------------------------------------------------- projected SOR
def _floor_problem(shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.0, 0.3, shape).astype(F32)
    s = rng.uniform(-2.0, 0.3, shape).astype(F32)  # net consumers: the floor binds somewhere
    fixed = rng.random(shape) < 0.08
    c0 = rng.uniform(0.0, 1.0, shape).astype(F32)
    return c0, a, s, fixed


@pytest.mark.parametrize("shape,boundary,omega", [
    ((2, 1, 7, 9), "neumann", 1.0), ((2, 1, 8, 6), "dirichlet", 1.6),
    ((1, 4, 5, 6), "neumann", 1.6), ((2, 3, 4, 5), "dirichlet", 1.0),
])
def test_projected_sweep_matches_scalar_transcription_bitwise(shape, boundary, omega):
    c0, a, s, fixed = _floor_problem(shape, sum(shape))
    # scale: the stopping rule's rounding-level branch, as the fields phase uses it (a tol of
    # 1e-6 on values ~1 is below what over-relaxed float32 sweeps settle to)
    kw = dict(D=400.0, h=20.0, boundary=boundary, bv=0.5, omega=omega, tol=1e-6, max_iter=400)
    ref, ref_it = reference_solve(c0, a, s, fixed, 0.8, floor=0.0, scale=1.0, **kw)
    fs = FieldSolver(shape, diffusion_um2_per_min=400.0, voxel_um=20.0, boundary=boundary,
                     boundary_value=0.5, omega=omega, tol=1e-6, max_iter=400, floor=0.0,
                     scale=1.0)
    c = c0.copy()
    it = fs.solve(c, a, s, fixed, 0.8)
    np.testing.assert_array_equal(it, ref_it)
    np.testing.assert_array_equal(c.view(np.uint32), ref.view(np.uint32))
    assert (c[~fixed] == 0).any() and (c[~fixed] > 0).any() and c.min() >= 0
    assert ref_it.min() > 1 and ref_it.max() < 400


def test_floor_below_every_value_is_bitwise_plain_sor_and_bad_floor_is_refused():
    shape = (2, 1, 9, 9)
    c0, a, s, fixed = _floor_problem(shape, 5)
    s = np.abs(s)  # no consumers: the solution stays positive
    out = []
    for floor in (None, -1e30):
        fs = FieldSolver(shape, diffusion_um2_per_min=400.0, voxel_um=20.0, omega=1.6, tol=1e-6,
                         floor=floor)
        c = c0.copy()
        out.append((fs.solve(c, a, s, fixed, 0.8), c))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1].view(np.uint32), out[1][1].view(np.uint32))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="floor"):
            FieldSolver(shape, diffusion_um2_per_min=400.0, voxel_um=20.0, floor=bad)


# ----------------------------------------------------------------------------- FieldsPhase
CONS = ["oxygen.consumption_tumour_mmHg_per_min=40", "oxygen.consumption_healthy_mmHg_per_min=7.5"]


def test_floor_only_with_consumption():
    sc = load_scenario("quickstart", ["domain.x_voxels=12", "domain.y_voxels=12"])
    fp = env_mod.FieldsPhase(sc, 1)
    assert fp.o2.floor is None and not fp.o2_floor_on
    assert np.all(fp.o2_src == 0) and not np.signbit(fp.o2_src).any()  # +0.0: s bitwise zero
    fp = env_mod.FieldsPhase(sc.replace(oxygen__consumption_healthy_mmHg_per_min=2.0), 1)
    assert fp.o2.floor == 0.0 and fp.o2_floor_on
    want = np.zeros(len(Kind), F32)
    want[[Kind.HEALTHY, Kind.FIBROBLAST]] = -2.0
    np.testing.assert_array_equal(fp.o2_src, want)
    for k in ("glucose", "chemokine", "tgfb", "ifng", "il12"):
        assert getattr(fp, k).floor is None


def test_engine_with_consumption_has_an_anoxic_necrotic_core():
    """quickstart with strong zero-order consumption: O2 >= 0 everywhere (the floor), O2 == 0 in
    the core, and necrosis there.  Each anoxic tumour cell turns necrotic with probability
    p = 1 - exp(-dt/360 min) = 0.0165 per step (PhysiCell's maximal necrosis rate below 2.5 mmHg);
    with N cell-steps at O2 = 0, P(no necrosis event) = (1 - p)^N < 1e-9 once N >= 1250, which
    is asserted before the event count is."""
    from gpusim.engine import Simulation

    sc = load_scenario("quickstart", ["oxygen.consumption_tumour_mmHg_per_min=300"])
    sim = Simulation(sc, replicates=1, first_replicate=0)
    anoxic = necrosis = 0
    for _ in range(4):
        st = sim.state
        assert st.o2.min() >= 0
        anoxic += int(((st.kind == Kind.TUMOUR) & (st.o2 == 0)).sum())
        sim.step(check=True)
        necrosis += int(sim.last_events["tumour_necrosis"].sum())
    p = -math.expm1(-sc["run.dt_min"] / 360.0)
    assert anoxic >= math.log(1e-9) / math.log1p(-p), anoxic
    assert necrosis > 0


# ----------------------------------------------------------------------------- validation case
_ZO = ("zero-order spheroid: engine vs exact discrete (mmHg)", "zero-order spheroid: necrotic radius (um)")


def _checks(res):
    return {c.name: c for c in res.checks}


def test_validation_case_passes_with_the_greenspan_checks():
    res = case_fields(True, 1)
    ch = _checks(res)
    assert res.passed, format_case(res)
    for name in _ZO:
        assert ch[name].kind == "numeric" and ch[name].passed
    assert ch[_ZO[0]].measured < ch[_ZO[0]].tol / 10


def test_planted_consumption_times_0_9_fails(monkeypatch):
    orig = env_mod.FieldsPhase.__init__

    def init(self, sc, R):
        orig(self, sc, R)
        self.o2_src = (self.o2_src * F32(0.9)).astype(F32)

    monkeypatch.setattr(env_mod.FieldsPhase, "__init__", init)
    res = case_fields(True, 1)
    ch = _checks(res)
    assert not ch[_ZO[0]].passed, format_case(res)
    # the first-order checks do not use FieldsPhase and still pass
    assert all(c.passed for n, c in ch.items() if not n.startswith("zero-order"))


def test_planted_missing_floor_fails(monkeypatch):
    orig = env_mod.FieldsPhase.__init__

    def init(self, sc, R):
        orig(self, sc, R)
        self.o2.floor = self.o2._floor = None  # plain SOR: consumption goes on below zero

    monkeypatch.setattr(env_mod.FieldsPhase, "__init__", init)
    res = case_fields(True, 1)
    ch = _checks(res)
    assert not ch[_ZO[0]].passed and not ch[_ZO[1]].passed, format_case(res)

"""``gpusim validate``: the cases pass on the engine, and each one fails on a planted error.

A planted error is a monkeypatched engine piece (a parameter object or the field solver); the
references in gpusim.validation are computed from the scenario, not from those objects, so the
perturbation shows up as a difference.  The statistical checks use the suite's own Bonferroni
tolerances (false-failure probability <= 1e-3 for the whole suite, so the passing tests below
fail by chance with probability < 1e-3); each planted error is several tolerances large (the
margin is noted at each test), so a missed detection has probability far below 1e-3 as well.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from click.testing import CliRunner

from gpusim.validation import CASES, format_case, run_validation
from gpusim.validation.cases.antigen_loss import case_antigen_loss
from gpusim.validation.cases.birth_death import BD_STEPS, case_birth_death, run_lineages, tumour_only
from gpusim.validation.cases.fields import case_fields
from gpusim.validation.cases.motility import case_motility
from gpusim.validation.cases.rng import case_rng
from gpusim.validation.cases.well_mixed import case_well_mixed, well_mixed_interacting
from gpusim.validation.core import ALPHA_CHECK, CaseResult, ValidationError, chi2_quantile, t_quantile
from gpusim.validation.lattices import blank_state, lineage_lattice, per_block, stir, stir_agents
from gpusim.validation.phases import DevicePhases, NUMPY, Phases
from gpusim.validation.references import cartmath_engine_map, cartmath_euler, gw_distribution, ld_distribution, ld_fit, ld_information, p_encounter, pure_birth_mutants, walk_moments
from gpusim.cli import main
from gpusim.model import car_t as car_t_mod
from gpusim.model import fields as fields_mod
from gpusim.model import tumour as tumour_mod


def _failed(res: CaseResult) -> list[str]:
    return [c.name for c in res.checks if not c.passed]


def _patch_params(monkeypatch, cls, **scale):
    """Make cls.from_scenario return its object with the named fields multiplied."""
    orig = cls.from_scenario.__func__

    def patched(klass, sc):
        p = orig(klass, sc)
        return dataclasses.replace(p, **{k: type(getattr(p, k))(getattr(p, k) * f)
                                         for k, f in scale.items()})

    monkeypatch.setattr(cls, "from_scenario", classmethod(patched))


# --------------------------------------------------------------------------- the references
def test_gw_distribution_matches_closed_form_moments():
    pb, pd, n = 0.11, 0.08, 30
    p = gw_distribution(pb, pd, n)
    k = np.arange(p.size)
    m = 1 + pb - pd
    s2 = pb + pd - (pb - pd) ** 2
    assert math.isclose(p.sum(), 1.0, rel_tol=1e-9)
    assert math.isclose((k * p).sum(), m ** n, rel_tol=1e-9)
    var = ((k - m ** n) ** 2 * p).sum()
    assert math.isclose(var, s2 * m ** (n - 1) * (m ** n - 1) / (m - 1), rel_tol=1e-7)


def test_ld_distribution_is_a_law_with_known_p0_p1():
    m = 1.3
    p = ld_distribution(m, 2000)
    assert math.isclose(p[0], math.exp(-m))
    assert math.isclose(p[1], m / 2 * math.exp(-m))  # MSS: p1 = (m/1) p0 / 2
    assert 0.97 < p.sum() <= 1.0  # heavy (1/n^2) tail beyond 2000


def test_walk_moments_without_persistence_is_a_plain_lazy_walk():
    pm = 0.75
    _, msd = walk_moments(pm, 0.0, 0.0, 0, 10)
    # uncorrelated moves: E|X_k|^2 = k pm E|e|^2, E|e|^2 = (4 x 1 + 4 x 2)/8 = 1.5
    assert np.allclose(msd, 1.5 * pm * np.arange(11))


def test_chi2_quantile_close_to_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (5, 25, 255):
        assert math.isclose(chi2_quantile(df, 1e-4), stats.chi2.ppf(1 - 1e-4, df), rel_tol=1e-6)


def test_pure_birth_mutant_law_has_the_closed_form_mean_and_p0():
    # E[negative] = (1 + p)^n - (1 + p - p mu)^n (positive cells grow by 1 + p(1 - mu) per step);
    # with n0 founders the law is the n0-fold convolution: mean x n0, P(0) ** n0
    p, mu, n = 0.15, 0.02, 25
    law = pure_birth_mutants(p, mu, n)
    k = np.arange(law.size)
    assert math.isclose(law.sum(), 1.0, rel_tol=1e-9)
    assert math.isclose((k * law).sum(), (1 + p) ** n - (1 + p - p * mu) ** n, rel_tol=1e-9)
    law5 = pure_birth_mutants(p, mu, n, n0=5)
    assert math.isclose((k * law5).sum(), 5 * (k * law).sum(), rel_tol=1e-9)
    assert math.isclose(law5[0], law[0] ** 5, rel_tol=1e-9)
    # one step: a negative cell exists only if the founder divided and the daughter lost
    assert math.isclose(pure_birth_mutants(p, mu, 1)[1], p * mu, rel_tol=1e-12)


def test_ld_fit_recovers_m_from_the_law_itself_and_information_is_positive():
    for m in (0.5, 1.0, 2.5):
        law = ld_distribution(m, 3000)
        assert abs(ld_fit(law, 1.0) - m) < 1e-3 * m
        info = ld_information(m)
        # a Poisson count would carry 1/m; the heavy LD tail carries less about m
        assert 0 < info < 1.0 / m


def test_t_quantile_close_to_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (3, 15, 31, 200):
        for a in (0.05, 1e-3, ALPHA_CHECK):
            assert math.isclose(t_quantile(df, a), stats.t.ppf(1 - a / 2, df), rel_tol=1e-6)


def test_p_encounter_is_the_hypergeometric_probability():
    V_, n = 50, 9
    for T in (0, 1, 7, 30, 45):
        exact = 1 - math.comb(V_ - n, T) / math.comb(V_, T) if T <= V_ - n else 1.0
        assert math.isclose(p_encounter(T, V_, n), exact, rel_tol=1e-12, abs_tol=1e-15)


def test_engine_map_without_interactions_is_the_galton_watson_mean_and_tends_to_euler():
    p = {"pb": 0.004, "pd": 0.0003, "p_phi": 0.002, "p_rho": 0.0001, "p_mem": 0.0, "p_mu": 0.0,
         "p_kill": 0.0, "p_react": 0.0, "p_rec": 1.0}
    mf = cartmath_engine_map(1000, 500, 0, p, 10_000, 50)
    assert math.isclose(mf[-1, 0], 1000 * (1 + 0.004 - 0.0003) ** 50, rel_tol=1e-12)
    assert math.isclose(mf[-1, 1], 500 * ((1 - 0.0001) * (1 + 0.002)) ** 50, rel_tol=1e-12)
    # with every interaction on, the map and CARTmath's Euler differ by terms of first order in
    # the per-step probabilities and in the encounter density T/V: scaling every rate
    # probability and 1/V by s (steps by 1/s, so the same time and the same gamma, theta) scales
    # the gap by s
    def gap(s_):
        q = {"pb": 0.004 * s_, "pd": 0.0003 * s_, "p_phi": 0.002 * s_, "p_rho": 0.0001 * s_,
             "p_mem": 0.003 * s_, "p_mu": 0.001 * s_, "p_kill": 0.2, "p_react": 0.2, "p_rec": 1.0}
        Vv = int(200_000 / s_)
        steps = int(round(200 / s_))
        mf = cartmath_engine_map(1000, 500, 200, q, Vv, steps)
        pars = {"phi": q["p_phi"] / s_, "rho": (q["p_rho"] + q["p_mem"]) / s_,
                "eps": q["p_mem"] / s_, "mu": q["p_mu"] / s_, "alpha": 0.0, "b": 0.0,
                "r": (q["pb"] - q["pd"]) / s_, "gamma": 9 * q["p_kill"] / (Vv * s_),
                "theta": 9 * q["p_react"] / (Vv * s_)}
        ode = cartmath_euler(500, 200, 1000, pars, s_, steps)[:, [2, 0, 1]]
        return np.abs(mf[-1] - ode[-1]).max()

    g1, g2 = gap(1.0), gap(0.5)
    assert g1 > 1.0 and 0.4 * g1 < g2 < 0.6 * g1


def test_stir_keeps_every_cell_with_its_attributes_in_its_block():
    st = lineage_lattice(2, 8, 3, 0)
    R = 3
    rng_ = np.random.default_rng(5)
    # give every cell a distinct attribute signature, add more cells in block (0, 0, 0)
    st.kind[:, 1:4, 1:4, 1:4] = 1
    st.antigen_a[:, 1:4, 1:4, 1:4] = 7
    st.pdl1[st.kind == 1] = rng_.random(int((st.kind == 1).sum())).astype(np.float32)
    before_blocks = per_block(st.kind == 1, 2, 8)
    sig = sorted(zip(st.antigen_a[st.kind == 1].tolist(), st.pdl1[st.kind == 1].tolist()))
    for _ in range(5):
        stir(st, rng_, 8, margin=1)
    assert (per_block(st.kind == 1, 2, 8) == before_blocks).all()
    assert sorted(zip(st.antigen_a[st.kind == 1].tolist(), st.pdl1[st.kind == 1].tolist())) == sig
    assert (st.antigen_a[st.kind == 0] == 0).all() and (st.pdl1[st.kind == 0] == 0).all()
    faces = np.zeros((16, 16, 16), bool)
    for ax in range(3):
        idx = [slice(None)] * 3
        idx[ax] = [0, 7, 8, 15]
        faces[tuple(idx)] = True
    assert not (st.kind[:, faces] == 1).any()  # margin 1: nothing on a block face
    assert R == st.kind.shape[0]


def test_stir_agents_puts_cells_on_distinct_grid_sites():
    st = blank_state((1, 30, 30), 2, capacity=100)
    st.t_count[:] = [100, 40]
    st.t_state[0, :100] = 1
    st.t_state[1, :40] = 1
    stir_agents(st, np.random.default_rng(1))
    for r, n in enumerate((100, 40)):
        pos = st.t_pos[r, :n]
        assert np.unique(pos).size == n
        assert ((pos // 30) % 3 == 1).all() and ((pos % 30) % 3 == 1).all()
    st.t_count[:] = 101
    with pytest.raises(ValueError, match="do not fit"):
        stir_agents(st, np.random.default_rng(1))


# --------------------------------------------------------------------------- cases pass
@pytest.mark.parametrize("name", list(CASES))
def test_quick_case_passes(name):
    res = run_validation([name], quick=True, seed=1)[0]
    assert res.passed, format_case(res)
    assert any(c.kind in ("stat", "exact", "numeric") for c in res.checks)


@pytest.mark.slow
def test_full_suite_passes(tmp_path):
    res = run_validation(None, quick=False, seed=2)
    assert all(r.passed for r in res), "\n".join(format_case(r) for r in res)


# --------------------------------------------------------------------------- planted errors
def test_planted_wrong_philox_constant_fails(monkeypatch):
    monkeypatch.setattr("gpusim.rng.PHILOX_W0", 0x9E3779BA)
    res = case_rng(True, 1)
    assert "known-answer vectors (of 3)" in _failed(res)


def test_planted_wrong_diffusion_fails(monkeypatch):
    orig = fields_mod.FieldSolver.__init__

    def init(self, shape, *, diffusion_um2_per_min, **kw):
        orig(self, shape, diffusion_um2_per_min=diffusion_um2_per_min * 1.05, **kw)

    monkeypatch.setattr(fields_mod.FieldSolver, "__init__", init)
    res = case_fields(True, 1)
    failed = _failed(res)
    assert "slab: engine vs exact discrete (max |dc|, mmHg)" in failed
    assert "spheroid: engine vs exact discrete (max |dc|, mmHg)" in failed


def test_planted_antigen_loss_off_by_25_percent_fails(monkeypatch):
    # expected ~1624 events, +25 % = +406 against a tolerance of ~164 (2.5 tolerances)
    _patch_params(monkeypatch, tumour_mod.TumourParams, p_antigen_loss=1.25)
    res = case_antigen_loss(True, 1)
    failed = _failed(res)
    assert any(n.startswith("antigen A loss events") for n in failed), format_case(res)


def test_planted_persistence_error_fails(monkeypatch):
    # persistence 0.5 -> 0.6: MSD factor (1+rho)/(1-rho) 3 -> 4, i.e. ~ +40 voxel^2 against a
    # tolerance of ~17 (2.5 tolerances)
    _patch_params(monkeypatch, car_t_mod.CarTParams, p_persist=1.2)
    res = case_motility(True, 1)
    assert "MSD after 20 steps (voxel^2)" in _failed(res), format_case(res)


def test_planted_permeability_error_fails(monkeypatch):
    # 1 - permeability 0.99 -> 0.77 (permeability 0.01 -> 0.23): slab entry 0.21 -> 0.38, the
    # crossing time (~180 steps) falls by far more than the tolerance of ~24 steps
    _patch_params(monkeypatch, car_t_mod.CarTParams, one_minus_perm=0.7 / 0.9)
    res = case_motility(True, 1)
    assert any(n.startswith("steps to cross") for n in _failed(res)), format_case(res)


def test_planted_dense_ecm_slowdown_error_fails(monkeypatch):
    # no slowdown in dense ECM (1 - dense_speed_fraction 0.6 -> 0): the move probability in the
    # slab 0.39 -> 0.75, the crossing time falls by several tolerances
    _patch_params(monkeypatch, car_t_mod.CarTParams, one_minus_slow=0.0)
    res = case_motility(True, 1)
    assert any(n.startswith("steps to cross") for n in _failed(res)), format_case(res)


def test_planted_doubled_antigen_loss_fails_the_luria_delbrueck_checks(monkeypatch):
    # m = 1 -> 2 expected loss events per culture: the MLE moves by ~1.0 against a tolerance of
    # ~0.48 (quick), the per-culture law by far more than its chi-square bound
    _patch_params(monkeypatch, tumour_mod.TumourParams, p_antigen_loss=2.0)
    res = case_antigen_loss(True, 1)
    failed = _failed(res)
    assert "Luria-Delbrück MLE of m (MSS) vs mu x divisions" in failed, format_case(res)
    assert any(n.startswith("negatives per culture") for n in failed)
    assert "negative cells per lineage vs exact law (pgf)" in failed


def test_planted_kill_and_memory_conversion_errors_fail_the_well_mixed_map(monkeypatch):
    # kill and conversion probabilities x 1.3: tumour after half a day ~150 cells below the map
    # (tolerance ~56), memory ~70 above (tolerance ~31)
    _patch_params(monkeypatch, car_t_mod.CarTParams, p_kill=1.3, p_mem=1.3)
    res = CaseResult("well_mixed", "", "")
    well_mixed_interacting(NUMPY, True, 1, res)
    failed = _failed(res)
    assert "tumour cells at day 0.5 vs engine mean-field map" in failed, format_case(res)
    assert "memory CAR-T at day 0.5 vs engine mean-field map" in failed


@pytest.mark.slow
def test_planted_reactivation_error_fails_the_well_mixed_checks(monkeypatch):
    # reactivation x 1.5: effector ~+120 (tolerance ~43), memory ~-100 (tolerance ~30)
    _patch_params(monkeypatch, car_t_mod.CarTParams, p_react=1.5)
    res = CaseResult("well_mixed", "", "")
    well_mixed_interacting(NUMPY, True, 1, res)
    failed = _failed(res)
    assert "memory CAR-T at day 0.5 vs engine mean-field map" in failed, format_case(res)


@pytest.mark.slow
def test_planted_division_probability_5_percent_fails_birth_death(monkeypatch):
    # the measured mean after 80 steps moves from 2.96 to 3.70 (seed 1, 4096 lineages) against
    # an exact 3.10 and a tolerance of 0.43
    _patch_params(monkeypatch, tumour_mod.TumourParams, p_division_max=1.05)
    res = case_birth_death(True, 1)
    assert f"mean lineage size after {BD_STEPS} steps" in _failed(res), format_case(res)


@pytest.mark.slow
def test_planted_division_probability_5_percent_fails_well_mixed(monkeypatch):
    # tumour after one day 3130 -> ~3300 against a tolerance of ~110
    _patch_params(monkeypatch, tumour_mod.TumourParams, p_division_max=1.05)
    res = case_well_mixed(True, 1)
    assert any(n.startswith("tumour cells at day") for n in _failed(res)), format_case(res)


# --------------------------------------------------------------------------- command line
def test_cli_validate_prints_table_and_exits_0():
    r = CliRunner().invoke(main, ["validate", "--quick", "--case", "rng", "--case", "fields",
                                  "--backend", "numpy"])
    assert r.exit_code == 0, r.output
    assert "expected" in r.output and "tolerance" in r.output and "verdict" in r.output
    assert "[PASS] rng" in r.output and "[PASS] fields" in r.output
    assert "2/2 cases passed" in r.output


def test_cli_validate_exits_1_on_failure(monkeypatch):
    monkeypatch.setattr("gpusim.rng.PHILOX_M0", np.uint64(0xD2511F55))
    r = CliRunner().invoke(main, ["validate", "--quick", "--case", "rng"])
    assert r.exit_code == 1, r.output
    assert "[FAIL] rng" in r.output and "FAILED: rng" in r.output


def test_cli_validate_bad_case_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(main, ["validate", "--case", "nope"])
    assert r.exit_code == 2
    assert "unknown validation case 'nope'" in r.output and "birth_death" in r.output
    f = tmp_path / "file"
    f.write_text("x")
    r = CliRunner().invoke(main, ["validate", "--case", "rng", "--figures", str(f)])
    assert r.exit_code != 0
    assert f.read_text() == "x"


def test_figures_written_or_skipped_with_message(tmp_path):
    msgs = []
    run_validation(["fields"], quick=True, figures=tmp_path / "figs", log=msgs.append)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert any("matplotlib is not installed" in m for m in msgs)
    else:
        assert (tmp_path / "figs" / "fields.png").stat().st_size > 1000


# --------------------------------------------------------------------------- device backends
@pytest.mark.skipif(__import__("gpusim.backends.emulated", fromlist=["compiler"]).compiler() is None,
                    reason="no host C++ compiler for the emulated device")
def test_device_phases_on_the_emulated_device_equal_the_numpy_path(monkeypatch):
    """DevicePhases (validate --backend cupy) runs the device backend's own phases; on the
    emulated device the cases must give the NumPy path's results bitwise: the motility and fields
    cases, and the stirred lineages of the tumour cases with their events."""
    from gpusim.backends.emulated import EmulatedRuntime

    ref = run_validation(["motility", "fields"], quick=True, seed=3)
    dev = run_validation(["motility", "fields"], quick=True, seed=3, backend="emulated")
    for a, b in zip(ref, dev):
        assert [(c.name, c.measured) for c in a.checks] == [(c.name, c.measured) for c in b.checks]
    sc = tumour_only({"tumour.division_rate_per_min": 0.03, "tumour.apoptosis_rate_per_min": 0.0,
                         "tumour.antigen_loss_per_division": 0.05, "run.seed": 4})
    tp = tumour_mod.TumourParams.from_scenario(sc)
    out = []
    for ph in (Phases(), DevicePhases(EmulatedRuntime())):
        out.append(run_lineages(ph, sc, tp, 4, 6, 2, s=12, batch=2))
    assert out[0]["div"] > 0 and out[0]["loss_a"] > 0
    for k in ("div", "loss_a", "loss_b"):
        assert out[0][k] == out[1][k], k
    assert (out[0]["N"] == out[1]["N"]).all() and (out[0]["neg"] == out[1]["neg"]).all()


def test_run_validation_rejects_an_unknown_backend():
    with pytest.raises(ValidationError, match="backend must be"):
        run_validation(["rng"], quick=True, backend="gpu")


def test_cli_validate_backend_cupy_where_it_cannot_run_is_exit_2(monkeypatch):
    from gpusim import backends

    monkeypatch.setattr(backends, "gpu_device", lambda: (None, "", "no GPU: test"))
    r = CliRunner().invoke(main, ["validate", "--quick", "--case", "rng", "--backend", "cupy"])
    assert r.exit_code == 2, r.output
    assert "cupy" in r.output and "numpy" in r.output  # the reason and what to use instead


# --------------------------------------------------------------------------- biology case
def _fake_arms(values):
    """An Arms stand-in: the 'simulation' of an arm is its overrides; outcomes read them."""
    return lambda scenario, over, steps: over


def test_paired_check_passes_only_in_the_published_direction_beyond_t_se():
    from gpusim.validation.cases.biology import Paired, paired_check

    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, 16)
    outcome = lambda over: over["x"]  # noqa: E731
    up = Paired("up", "ref", {}, {"x": noise + 10.0}, {"x": noise * 0.5}, outcome, +1, 1)
    check, data = paired_check(up, False, 1, _fake_arms(None))
    assert check.passed and check.kind == "paired" and check.measured > check.tol
    assert np.allclose(data["on"] - data["off"], 10.0 + 0.5 * noise)
    # the same data asserted the other way, or a difference within t x SE, fails
    down = dataclasses.replace(up, direction=-1)
    assert not paired_check(down, False, 1, _fake_arms(None))[0].passed
    small = dataclasses.replace(up, on={"x": noise + 0.1 * rng.normal(size=16)})
    c = paired_check(small, False, 1, _fake_arms(None))[0]
    assert not c.passed and c.tol == pytest.approx(t_quantile(15, 2 * ALPHA_CHECK) * c.se)


@pytest.mark.slow
def test_full_biology_case_passes():
    res = run_validation(["biology"], quick=False, seed=2)[0]
    assert res.passed, format_case(res)


@pytest.mark.slow
def test_planted_crowding_off_fails_the_biology_case(monkeypatch):
    # max_per_voxel 4 -> 1 in the engine: both crowding arms are one cell per voxel, the paired
    # difference is exactly 0 against a threshold of 5.5 SE > 0
    _patch_params(monkeypatch, car_t_mod.CarTParams, max_per_voxel=0.25)
    res = run_validation(["biology"], quick=True, seed=1)[0]
    assert any(n.startswith("crowding") for n in _failed(res)), format_case(res)

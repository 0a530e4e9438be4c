"""``gpusim validate``: the cases pass on the engine, and each one fails on a planted error.

A planted error is a monkeypatched engine piece (a parameter object or the field solver); the
references in gpusim.validate are computed from the scenario, not from those objects, so the
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

from gpusim import validate as V
from gpusim.cli import main
from gpusim.model import car_t as car_t_mod
from gpusim.model import fields as fields_mod
from gpusim.model import tumour as tumour_mod


def _failed(res: V.CaseResult) -> list[str]:
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
    p = V.gw_distribution(pb, pd, n)
    k = np.arange(p.size)
    m = 1 + pb - pd
    s2 = pb + pd - (pb - pd) ** 2
    assert math.isclose(p.sum(), 1.0, rel_tol=1e-9)
    assert math.isclose((k * p).sum(), m ** n, rel_tol=1e-9)
    var = ((k - m ** n) ** 2 * p).sum()
    assert math.isclose(var, s2 * m ** (n - 1) * (m ** n - 1) / (m - 1), rel_tol=1e-7)


def test_ld_distribution_is_a_law_with_known_p0_p1():
    m = 1.3
    p = V.ld_distribution(m, 2000)
    assert math.isclose(p[0], math.exp(-m))
    assert math.isclose(p[1], m / 2 * math.exp(-m))  # MSS: p1 = (m/1) p0 / 2
    assert 0.97 < p.sum() <= 1.0  # heavy (1/n^2) tail beyond 2000


def test_walk_moments_without_persistence_is_a_plain_lazy_walk():
    pm = 0.75
    _, msd = V.walk_moments(pm, 0.0, 0.0, 0, 10)
    # uncorrelated moves: E|X_k|^2 = k pm E|e|^2, E|e|^2 = (4 x 1 + 4 x 2)/8 = 1.5
    assert np.allclose(msd, 1.5 * pm * np.arange(11))


def test_chi2_quantile_close_to_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (5, 25, 255):
        assert math.isclose(V._chi2_quantile(df, 1e-4), stats.chi2.ppf(1 - 1e-4, df), rel_tol=1e-6)


# --------------------------------------------------------------------------- cases pass
@pytest.mark.parametrize("name", ["rng", "antigen_loss", "motility", "fields"])
def test_quick_case_passes(name):
    res = V.run_validation([name], quick=True, seed=1)[0]
    assert res.passed, V.format_case(res)
    assert any(c.kind in ("stat", "exact", "numeric") for c in res.checks)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["birth_death", "well_mixed"])
def test_quick_case_passes_slow(name):
    res = V.run_validation([name], quick=True, seed=1)[0]
    assert res.passed, V.format_case(res)


@pytest.mark.slow
def test_full_suite_passes(tmp_path):
    res = V.run_validation(None, quick=False, seed=2)
    assert all(r.passed for r in res), "\n".join(V.format_case(r) for r in res)


# --------------------------------------------------------------------------- planted errors
def test_planted_wrong_philox_constant_fails(monkeypatch):
    monkeypatch.setattr("gpusim.rng.PHILOX_W0", 0x9E3779BA)
    res = V.case_rng(True, 1)
    assert "known-answer vectors (of 3)" in _failed(res)


def test_planted_wrong_diffusion_fails(monkeypatch):
    orig = fields_mod.FieldSolver.__init__

    def init(self, shape, *, diffusion_um2_per_min, **kw):
        orig(self, shape, diffusion_um2_per_min=diffusion_um2_per_min * 1.05, **kw)

    monkeypatch.setattr(fields_mod.FieldSolver, "__init__", init)
    res = V.case_fields(True, 1)
    failed = _failed(res)
    assert "slab: engine vs exact discrete (max |dc|, mmHg)" in failed
    assert "spheroid: engine vs exact discrete (max |dc|, mmHg)" in failed


def test_planted_antigen_loss_off_by_25_percent_fails(monkeypatch):
    # expected ~1624 events, +25 % = +406 against a tolerance of ~164 (2.5 tolerances)
    _patch_params(monkeypatch, tumour_mod.TumourParams, p_antigen_loss=1.25)
    res = V.case_antigen_loss(True, 1)
    failed = _failed(res)
    assert any(n.startswith("antigen A loss events") for n in failed), V.format_case(res)


def test_planted_persistence_error_fails(monkeypatch):
    # persistence 0.5 -> 0.6: MSD factor (1+rho)/(1-rho) 3 -> 4, i.e. ~ +40 voxel^2 against a
    # tolerance of ~17 (2.5 tolerances)
    _patch_params(monkeypatch, car_t_mod.CarTParams, p_persist=1.2)
    res = V.case_motility(True, 1)
    assert "MSD after 20 steps (voxel^2)" in _failed(res), V.format_case(res)


def test_planted_permeability_error_fails(monkeypatch):
    # permeability 0.1 -> 0.3 (1 - permeability 0.9 -> 0.7): slab entry 0.28 -> 0.44, the
    # crossing time falls by far more than the tolerance of ~18 steps (0.1 -> 0.2 already moves
    # it by 1.5 tolerances)
    _patch_params(monkeypatch, car_t_mod.CarTParams, one_minus_perm=0.7 / 0.9)
    res = V.case_motility(True, 1)
    assert any(n.startswith("steps to cross") for n in _failed(res)), V.format_case(res)


@pytest.mark.slow
def test_planted_division_probability_5_percent_fails_birth_death(monkeypatch):
    # the measured mean after 80 steps moves from 2.96 to 3.70 (seed 1, 4096 lineages) against
    # an exact 3.10 and a tolerance of 0.43
    _patch_params(monkeypatch, tumour_mod.TumourParams, p_division_max=1.05)
    res = V.case_birth_death(True, 1)
    assert f"mean lineage size after {V.BD_STEPS} steps" in _failed(res), V.format_case(res)


@pytest.mark.slow
def test_planted_division_probability_5_percent_fails_well_mixed(monkeypatch):
    # tumour after one day 3130 -> ~3300 against a tolerance of ~110
    _patch_params(monkeypatch, tumour_mod.TumourParams, p_division_max=1.05)
    res = V.case_well_mixed(True, 1)
    assert any(n.startswith("tumour cells at day") for n in _failed(res)), V.format_case(res)


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
    V.run_validation(["fields"], quick=True, figures=tmp_path / "figs", log=msgs.append)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert any("matplotlib is not installed" in m for m in msgs)
    else:
        assert (tmp_path / "figs" / "fields.png").stat().st_size > 1000

"""Tests of gpusim.analysis (Wilson, bootstrap medians, Kaplan-Meier, log-rank) and `gpusim compare`.

The estimators are checked against SciPy (test-only dependency) or against exact answers; the
one coverage test states its tolerance derivation.
"""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats as st
from click.testing import CliRunner

from gpusim import analysis as an
from gpusim.cli import _wilson, main
from gpusim.io import ResultWriter


# ---- Wilson ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k,n", [(0, 1), (0, 10), (3, 10), (10, 10), (17, 40), (500, 1000), (1, 7)])
def test_wilson_matches_scipy(k, n):
    ci = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = an.wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


def test_cli_uses_the_one_wilson():
    assert _wilson is an.wilson
    assert an.wilson(0, 0) == (0.0, 1.0)


# ---- chi-square tail ------------------------------------------------------------------------
@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 20])
def test_chi2_sf_matches_scipy(df):
    for x in (0.0, 1e-3, 0.5, 1.0, 3.3, df, 2.0 * df + 1, 30.0, 80.0):
        assert an.chi2_sf(x, df) == pytest.approx(st.chi2.sf(x, df), rel=1e-10, abs=1e-300)


# ---- Kaplan-Meier -----------------------------------------------------------------------------
def _survival_sample(seed, n, scale, cens=0.3):
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(scale, n), 1)  # rounding makes ties
    c = rng.random(n) < cens
    return t, ~c


def test_kaplan_meier_matches_scipy_ecdf():
    t, e = _survival_sample(1, 60, 5.0)
    km = an.kaplan_meier(t, e)
    ref = st.ecdf(st.CensoredData(uncensored=t[e], right=t[~e]))
    np.testing.assert_allclose(km.surv, ref.sf.evaluate(km.time), rtol=0, atol=1e-14)
    ci = ref.sf.confidence_interval(confidence_level=0.95, method="log-log")
    lo, hi = an.km_band(km)
    ok = km.surv > 0
    np.testing.assert_allclose(lo[ok], ci.low.evaluate(km.time)[ok], atol=1e-12)
    np.testing.assert_allclose(hi[ok], ci.high.evaluate(km.time)[ok], atol=1e-12)


def test_kaplan_meier_small_exact():
    # times 1,2,2(censored),3,4(censored): S = 4/5 after 1, 4/5*3/4 = 3/5 after 2, 3/5*1/2 after 3
    km = an.kaplan_meier([1, 2, 2, 3, 4], [True, True, False, True, False])
    np.testing.assert_array_equal(km.time, [1, 2, 3])
    np.testing.assert_allclose(km.surv, [0.8, 0.6, 0.3])
    assert an.km_median(km)[0] == 3.0
    # no event at all: median not reached
    assert all(math.isnan(v) for v in an.km_median(an.kaplan_meier([5.0, 5.0], [False, False])))


def test_km_median_interval_contains_median():
    t, e = _survival_sample(2, 200, 4.0, cens=0.1)
    med, lo, hi = an.km_median(an.kaplan_meier(t, e))
    assert lo <= med <= hi
    # true median of Exp(scale 4) is 4 ln 2 = 2.77 (censoring independent of time)
    assert lo < 4 * math.log(2) < hi


# ---- log-rank ---------------------------------------------------------------------------------
def test_logrank_two_samples_matches_scipy():
    t1, e1 = _survival_sample(3, 40, 5.0)
    t2, e2 = _survival_sample(4, 35, 9.0)
    ref = st.logrank(st.CensoredData(uncensored=t1[e1], right=t1[~e1]),
                     st.CensoredData(uncensored=t2[e2], right=t2[~e2]))
    chi2, df, p = an.logrank(np.r_[t1, t2], np.r_[e1, e2], ["a"] * 40 + ["b"] * 35)
    assert df == 1
    assert chi2 == pytest.approx(ref.statistic ** 2, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_logrank_k_samples_reduces_and_detects():
    # identical groups: statistic 0; very different groups: tiny p
    t, e = _survival_sample(5, 30, 5.0)
    chi2, df, p = an.logrank(np.r_[t, t, t], np.r_[e, e, e], [0] * 30 + [1] * 30 + [2] * 30)
    assert df == 2 and chi2 == pytest.approx(0.0, abs=1e-12) and p == pytest.approx(1.0)
    t2, e2 = _survival_sample(6, 30, 50.0)
    chi2, df, p = an.logrank(np.r_[t, t2], np.r_[e, e2], [0] * 30 + [1] * 30)
    assert p < 1e-3
    assert an.logrank([1.0, 2.0], [False, False], [0, 1]) == (0.0, 0, 1.0)


# ---- bootstrap medians --------------------------------------------------------------------------
def test_bootstrap_median_deterministic_and_brackets():
    x = np.r_[np.arange(25, dtype=float), np.nan]
    a = an.bootstrap_median(x)
    assert a == an.bootstrap_median(x)  # fixed seed
    med, lo, hi = a
    assert med == 12.0 and lo <= med <= hi
    assert all(math.isnan(v) for v in an.bootstrap_median([np.nan]))


def test_bootstrap_median_coverage():
    # 300 samples of n = 51 from Exp(1) (true median ln 2).  If the interval covers with
    # probability c ~ 0.95, the number of hits H ~ Binomial(300, c), SD = sqrt(300*.95*.05) = 3.8.
    # Percentile-bootstrap intervals of a median are known to be slightly liberal or conservative
    # for small n (discreteness), so allow c in [0.90, 0.985]; the acceptance band
    # [0.90*300 - 3.3 SD, 0.985*300 + 3.3 SD] = [258, 300] gives a false-failure rate < 1e-3
    # for any true c in that range (one-sided normal tail at 3.3 SD = 5e-4 per side).
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(300):
        x = rng.exponential(1.0, 51)
        _, lo, hi = an.bootstrap_median(x, resamples=1000, seed=int(rng.integers(2**31)))
        hits += lo <= math.log(2) <= hi
    assert 258 <= hits <= 300


# ---- endpoint table ----------------------------------------------------------------------------
def _arm(cleared, ttc, best, end=10.0):
    return SimpleNamespace(
        endpoints={"cleared": np.array(cleared, np.int8), "time_to_clearance_days": np.array(ttc),
                   "antigen_escape": np.zeros(len(cleared), np.int8), "best_response": np.array(best)},
        time_days=np.array([0.0, end]))


def test_endpoint_table_methods_and_values():
    a = _arm([1, 1, 0, 1], [2.0, 3.0, np.nan, 4.0], [0.0, 0.0, 0.5, 0.0])
    b = _arm([0, 0, 1, 0], [np.nan, np.nan, 6.0, np.nan], [0.4, 0.6, 0.0, 0.8])
    cmp = an.endpoint_table([("A", a), ("B", b)])
    rows = {(r.arm, r.endpoint): r for r in cmp.rows}
    r = rows[("A", "cleared")]
    assert (r.method, r.n, r.estimate, (r.low, r.high)) == ("Wilson", 4, 0.75, an.wilson(3, 4))
    r = rows[("A", "time_to_clearance_days")]
    assert r.method == "Kaplan-Meier median" and r.estimate == 3.0  # S: 3/4, 2/4, 1/4
    assert math.isnan(rows[("B", "time_to_clearance_days")].estimate)  # S never below 3/4
    r = rows[("B", "best_response")]
    assert r.method == "bootstrap median" and r.estimate == 0.5
    t = np.r_[[2.0, 3.0, 10.0, 4.0], [10.0, 10.0, 6.0, 10.0]]
    e = np.r_[[1, 1, 0, 1], [0, 0, 1, 0]].astype(bool)
    assert cmp.logrank == an.logrank(t, e, ["A"] * 4 + ["B"] * 4)
    text = an.format_table(cmp)
    assert "3/4 75%" in text and "log-rank" in text



def test_a_grade_is_not_a_proportion_even_when_all_values_are_0_or_1():
    a = _arm([1, 0, 1, 0], [2.0, np.nan, 3.0, np.nan], [0.0, 0.5, 0.0, 0.4])
    a.endpoints["crs_grade"] = np.array([0, 1, 1, 0], np.int8)
    rows = {(r.arm, r.endpoint): r for r in an.endpoint_table([("A", a)]).rows}
    assert rows[("A", "crs_grade")].method == "bootstrap median"
    assert rows[("A", "cleared")].method == "Wilson"

# ---- CLI ---------------------------------------------------------------------------------------
EP = {"cleared": ("int8", "1", "x"), "time_to_clearance_days": ("float64", "day", "x"),
      "antigen_escape": ("int8", "1", "x"), "best_response": ("float64", "fraction", "x")}


def _file(path, arm, complete=True, schema=None):
    R = len(arm.endpoints["cleared"])
    w = ResultWriter(path, replicates=R, attrs={"seed": 1}, scenario_toml="", endpoints=EP,
                     metrics={"tumour_cells": ("cells", "x")})
    with w:
        for t in arm.time_days:
            w.append(t, {"tumour_cells": np.zeros(R)})
        if complete:
            w.finish(arm.endpoints)
        else:
            w.close("interrupted")
    if schema:
        import h5py
        with h5py.File(path, "r+") as f:
            f.attrs["schema"] = schema


def test_cli_compare_table_and_csv(tmp_path):
    a = _arm([1, 1, 0, 1], [2.0, 3.0, np.nan, 4.0], [0.0, 0.0, 0.5, 0.0])
    b = _arm([0, 0, 1, 0], [np.nan, np.nan, 6.0, np.nan], [0.4, 0.6, 0.0, 0.8])
    _file(tmp_path / "a.h5", a)
    _file(tmp_path / "b.h5", b)
    _file(tmp_path / "c.h5", b, complete=False)
    out = tmp_path / "cmp.csv"
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"),
                                  str(tmp_path / "c.h5"), "--csv", str(out)])
    assert r.exit_code == 0, r.output
    assert "skipping c" in r.output and "3/4 75%" in r.output
    rows = list(csv.DictReader(out.open()))
    got = {(x["arm"], x["endpoint"]): x for x in rows}
    assert float(got[("a", "cleared")]["estimate"]) == 0.75
    assert float(got[("a", "cleared")]["ci_low"]) == an.wilson(3, 4)[0]
    assert got[("all", "time_to_clearance_days")]["method"] == "log-rank"
    assert len(rows) == 2 * 4 + 1


def test_cli_compare_bad_inputs(tmp_path):
    a = _arm([1], [2.0], [0.0])
    _file(tmp_path / "other.h5", a, schema="gpusim/0")
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "other.h5")])
    assert r.exit_code == 2 and "gpusim/0" in r.output and "reads gpusim/1" in r.output
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "missing.h5")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "nosweep") + ":p000"])
    assert r.exit_code == 2 and "not a sweep directory" in r.output
    _file(tmp_path / "run.h5", a, complete=False)
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "run.h5"), "--csv", str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "none of the inputs is a complete result" in r.output
    assert not (tmp_path / "x.csv").exists()

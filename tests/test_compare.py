"""Tests of gpusim.study.stats and gpusim.study.compare (Wilson, bootstrap medians, Kaplan-Meier, log-rank) and `gpusim compare`.

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

from gpusim.study import compare as an, stats as gs, table as tb
from gpusim.cli import main
from gpusim.cli.run import _wilson
from gpusim.io import ResultWriter


# ---- Wilson ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k,n", [(0, 1), (0, 10), (3, 10), (10, 10), (17, 40), (500, 1000), (1, 7)])
def test_wilson_matches_scipy(k, n):
    ci = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = gs.wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


def test_cli_uses_the_one_wilson():
    assert _wilson is gs.wilson
    assert gs.wilson(0, 0) == (0.0, 1.0)


# ---- chi-square tail ------------------------------------------------------------------------
@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 20])
def test_chi2_sf_matches_scipy(df):
    for x in (0.0, 1e-3, 0.5, 1.0, 3.3, df, 2.0 * df + 1, 30.0, 80.0):
        assert gs.chi2_sf(x, df) == pytest.approx(st.chi2.sf(x, df), rel=1e-10, abs=1e-300)


# ---- Kaplan-Meier -----------------------------------------------------------------------------
def _survival_sample(seed, n, scale, cens=0.3):
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(scale, n), 1)  # rounding makes ties
    c = rng.random(n) < cens
    return t, ~c


def test_kaplan_meier_matches_scipy_ecdf():
    t, e = _survival_sample(1, 60, 5.0)
    km = gs.kaplan_meier(t, e)
    ref = st.ecdf(st.CensoredData(uncensored=t[e], right=t[~e]))
    np.testing.assert_allclose(km.surv, ref.sf.evaluate(km.time), rtol=0, atol=1e-14)
    ci = ref.sf.confidence_interval(confidence_level=0.95, method="log-log")
    lo, hi = gs.km_band(km)
    ok = km.surv > 0
    np.testing.assert_allclose(lo[ok], ci.low.evaluate(km.time)[ok], atol=1e-12)
    np.testing.assert_allclose(hi[ok], ci.high.evaluate(km.time)[ok], atol=1e-12)


def test_kaplan_meier_small_exact():
    # times 1,2,2(censored),3,4(censored): S = 4/5 after 1, 4/5*3/4 = 3/5 after 2, 3/5*1/2 after 3
    km = gs.kaplan_meier([1, 2, 2, 3, 4], [True, True, False, True, False])
    np.testing.assert_array_equal(km.time, [1, 2, 3])
    np.testing.assert_allclose(km.surv, [0.8, 0.6, 0.3])
    assert gs.km_median(km)[0] == 3.0
    # no event at all: median not reached
    assert all(math.isnan(v) for v in gs.km_median(gs.kaplan_meier([5.0, 5.0], [False, False])))


def test_km_median_interval_contains_median():
    t, e = _survival_sample(2, 200, 4.0, cens=0.1)
    med, lo, hi = gs.km_median(gs.kaplan_meier(t, e))
    assert lo <= med <= hi
    # true median of Exp(scale 4) is 4 ln 2 = 2.77 (censoring independent of time)
    assert lo < 4 * math.log(2) < hi


# ---- log-rank ---------------------------------------------------------------------------------
def test_logrank_two_samples_matches_scipy():
    t1, e1 = _survival_sample(3, 40, 5.0)
    t2, e2 = _survival_sample(4, 35, 9.0)
    ref = st.logrank(st.CensoredData(uncensored=t1[e1], right=t1[~e1]),
                     st.CensoredData(uncensored=t2[e2], right=t2[~e2]))
    chi2, df, p = gs.logrank(np.r_[t1, t2], np.r_[e1, e2], ["a"] * 40 + ["b"] * 35)
    assert df == 1
    assert chi2 == pytest.approx(ref.statistic ** 2, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_logrank_k_samples_reduces_and_detects():
    # identical groups: statistic 0; very different groups: tiny p
    t, e = _survival_sample(5, 30, 5.0)
    chi2, df, p = gs.logrank(np.r_[t, t, t], np.r_[e, e, e], [0] * 30 + [1] * 30 + [2] * 30)
    assert df == 2 and chi2 == pytest.approx(0.0, abs=1e-12) and p == pytest.approx(1.0)
    t2, e2 = _survival_sample(6, 30, 50.0)
    chi2, df, p = gs.logrank(np.r_[t, t2], np.r_[e, e2], [0] * 30 + [1] * 30)
    assert p < 1e-3
    # no event at all: not computable (NaN), never "chi2 = 0, p = 1"
    s, df, p = gs.logrank([1.0, 2.0], [False, False], [0, 1])
    assert math.isnan(s) and df == 0 and math.isnan(p)


# ---- bootstrap medians --------------------------------------------------------------------------
def test_bootstrap_median_deterministic_and_brackets():
    x = np.r_[np.arange(25, dtype=float), np.nan]
    a = gs.bootstrap_median(x)
    assert a == gs.bootstrap_median(x)  # fixed seed
    med, lo, hi = a
    assert med == 12.0 and lo <= med <= hi
    assert all(math.isnan(v) for v in gs.bootstrap_median([np.nan]))


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
        _, lo, hi = gs.bootstrap_median(x, resamples=1000, seed=int(rng.integers(2**31)))
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
    assert (r.method, r.n, r.estimate, (r.low, r.high)) == ("Wilson", 4, 0.75, gs.wilson(3, 4))
    r = rows[("A", "time_to_clearance_days")]
    assert r.method == "Kaplan-Meier median" and r.estimate == 3.0  # S: 3/4, 2/4, 1/4
    assert math.isnan(rows[("B", "time_to_clearance_days")].estimate)  # S never below 3/4
    r = rows[("B", "best_response")]
    # n = 4: no order-statistic interval reaches 95 %; [min, max] with its true coverage 7/8
    assert r.method == "order-statistic median" and r.estimate == 0.5
    assert (r.low, r.high, r.coverage, r.small) == (0.0, 0.8, 0.875, True)
    t = np.r_[[2.0, 3.0, 10.0, 4.0], [10.0, 10.0, 6.0, 10.0]]
    e = np.r_[[1, 1, 0, 1], [0, 0, 1, 0]].astype(bool)
    assert cmp.logrank == gs.logrank(t, e, ["A"] * 4 + ["B"] * 4)
    text = tb.format_table(cmp)
    assert "3/4 75%" in text and "log-rank" in text
    assert "0.5 [0, 0.8] 88% CI" in text  # never labelled a 95 % interval



def test_a_grade_is_not_a_proportion_even_when_all_values_are_0_or_1():
    a = _arm([1, 0, 1, 0], [2.0, np.nan, 3.0, np.nan], [0.0, 0.5, 0.0, 0.4])
    a.endpoints["crs_grade"] = np.array([0, 1, 1, 0], np.int8)
    rows = {(r.arm, r.endpoint): r for r in an.endpoint_table([("A", a)]).rows}
    assert rows[("A", "crs_grade")].method == "order-statistic median"
    assert rows[("A", "cleared")].method == "Wilson"

# ---- CLI ---------------------------------------------------------------------------------------
EP = {"cleared": ("int8", "1", "x"), "time_to_clearance_days": ("float64", "day", "x"),
      "antigen_escape": ("int8", "1", "x"), "best_response": ("float64", "fraction", "x")}


def _file(path, arm, complete=True, schema=None, attrs=None, tumour=None):
    """A result file holding ``arm`` (endpoints, output times); ``tumour``: (R, T) tumour cells."""
    R = len(arm.endpoints["cleared"])
    w = ResultWriter(path, replicates=R, attrs={"seed": 1} if attrs is None else attrs,
                     scenario_toml="", endpoints=EP, metrics={"tumour_cells": ("cells", "x")})
    with w:
        for i, t in enumerate(arm.time_days):
            w.append(t, {"tumour_cells": np.zeros(R) if tumour is None else tumour[:, i]})
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
    assert float(got[("a", "cleared")]["ci_low"]) == gs.wilson(3, 4)[0]
    assert got[("all", "time_to_clearance_days")]["method"] == "log-rank"
    # 2 arms x 4 endpoints, the log-rank row, and b's 4 differences from the reference a
    assert len(rows) == 2 * 4 + 1 + 4
    d = got[("b", "cleared (difference)")]
    assert d["method"] == "difference of proportions (Agresti-Caffo)" and d["reference"] == "a"
    assert {x["arm"] for x in rows} == {"a", "b", "all"}


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


# ---- exact median intervals, sign test -----------------------------------------------------------
def test_median_ci_order_statistics_by_hand():
    # [min, max] of n values misses the median only if all n fall on one side: 2 * 2^-n
    for n, cov in [(2, 0.5), (3, 0.75), (4, 0.875), (5, 0.9375)]:
        med, lo, hi, c = gs.median_ci(np.arange(n, dtype=float))
        assert (lo, hi, c) == (0.0, n - 1.0, cov)
    # n = 6: [min, max] covers 1 - 2/64 = 96.875 %, the first n with a 95 % interval
    assert gs.median_ci(np.arange(6.0))[1:] == (0.0, 5.0, 0.96875)
    # n = 9: [x(2), x(8)] covers 1 - 2 (1 + 9)/512 = 0.9609375; [x(3), x(7)] only 1 - 2*46/512
    assert gs.median_ci(np.arange(9.0))[1:] == (1.0, 7.0, 0.9609375)
    assert all(math.isnan(v) for v in gs.median_ci([np.nan]))


@pytest.mark.parametrize("n", [6, 7, 12, 25, 60, 101])
def test_median_ci_is_the_largest_k_with_95_percent_coverage(n):
    x = np.arange(n, dtype=float)
    _, lo, hi, cov = gs.median_ci(x)
    k = int(lo) + 1  # interval is [x(k), x(n+1-k)]
    assert hi == n - k
    assert cov == pytest.approx(1 - 2 * st.binom.cdf(k - 1, n, 0.5), abs=1e-12)
    assert cov >= 0.95 and 1 - 2 * st.binom.cdf(k, n, 0.5) < 0.95


@pytest.mark.parametrize("n", [4, 9, 20])
def test_median_ci_true_coverage_by_simulation(n):
    # 20,000 samples from a continuous law (lognormal, median 1): the interval covers the median
    # with exactly the stated probability c.  Hits ~ Binomial(20000, c): accept within 4.4 SD
    # (false-failure rate < 1e-5 per case).
    rng = np.random.default_rng(100 + n)
    sims = 20_000
    x = rng.lognormal(0.0, 1.0, (sims, n))
    _, lo0, _, cov = gs.median_ci(np.arange(n, dtype=float))
    k = int(lo0) + 1
    xs = np.sort(x, axis=1)
    hits = int(np.sum((xs[:, k - 1] <= 1.0) & (1.0 <= xs[:, n - k])))
    sd = math.sqrt(sims * cov * (1 - cov))
    assert abs(hits - sims * cov) < 4.4 * sd, (hits, sims * cov)
    # and the function picks the same interval on each sample (spot check)
    for row in x[:50]:
        _, lo, hi, _ = gs.median_ci(row)
        assert (lo, hi) == (np.sort(row)[k - 1], np.sort(row)[n - k])


def test_median_ci_on_ties_covers_at_least_the_stated_level():
    # discrete law with the median on an atom (P(X=0)=0.3, P(X=1)=0.4, P(X=2)=0.3; median 1):
    # coverage of the closed interval is at least the continuous value (here nearly 1)
    rng = np.random.default_rng(3)
    x = rng.choice([0.0, 1.0, 2.0], p=[0.3, 0.4, 0.3], size=(5000, 12))
    _, lo0, _, cov = gs.median_ci(np.arange(12.0))
    k = int(lo0) + 1
    xs = np.sort(x, axis=1)
    assert np.mean((xs[:, k - 1] <= 1) & (1 <= xs[:, 12 - k])) >= cov


@pytest.mark.parametrize("pos,neg,zeros", [(0, 0, 3), (1, 0, 0), (3, 1, 2), (9, 2, 0), (10, 10, 5), (0, 14, 1)])
def test_sign_test_matches_scipy_binomtest(pos, neg, zeros):
    d = np.r_[np.ones(pos), -2.0 * np.ones(neg), np.zeros(zeros), np.nan]
    p = gs.sign_test(d)
    ref = 1.0 if pos + neg == 0 else st.binomtest(pos, pos + neg, 0.5).pvalue
    assert p == pytest.approx(ref, rel=1e-12)


# ---- differences of proportions: by hand, and exact coverage by enumeration --------------------
def test_paired_proportion_difference_by_hand():
    # Bonett-Price: n = 20 pairs, 3 only in the arm, 1 only in the reference:
    # p10 = 4/22, p01 = 2/22, theta = 2/22, var = (6/22 - (2/22)^2) / 22
    arm = np.r_[np.ones(3), np.zeros(1), np.ones(5), np.zeros(11)]
    ref = np.r_[np.zeros(3), np.ones(1), np.ones(5), np.zeros(11)]
    est, lo, hi = gs.paired_proportion_diff(ref, arm)
    half = gs.Z95 * math.sqrt((6 / 22 - (2 / 22) ** 2) / 22)
    assert est == 2 / 20
    assert lo == pytest.approx(2 / 22 - half, abs=1e-15) and hi == pytest.approx(2 / 22 + half, abs=1e-15)
    assert (round(lo, 4), round(hi, 4)) == (-0.1240, 0.3058)
    # no discordant pair in 10: not [0, 0] but +- z sqrt((2/12) / 12) = +- 0.2310
    est, lo, hi = gs.paired_proportion_diff(np.r_[np.ones(5), np.zeros(5)], np.r_[np.ones(5), np.zeros(5)])
    assert est == 0 and hi == pytest.approx(-lo) and round(hi, 4) == 0.2310


def test_independent_proportion_difference_by_hand():
    # Agresti-Caffo: 3/10 vs 7/10 -> (8/12 - 4/12) +- z sqrt(2 * (4/12)(8/12) / 12)
    est, lo, hi = gs.proportion_diff(3, 10, 7, 10)
    half = gs.Z95 * math.sqrt(2 * (4 / 12) * (8 / 12) / 12)
    assert est == pytest.approx(0.4)
    assert lo == pytest.approx(1 / 3 - half, abs=1e-15) and hi == pytest.approx(1 / 3 + half, abs=1e-15)


def _paired_coverage(n, p10, p01):
    """Exact coverage of the Bonett-Price interval: sum over every (f10, f01) outcome."""
    total = 0.0
    for f10 in range(n + 1):
        for f01 in range(n + 1 - f10):
            pr = st.multinomial.pmf([f10, f01, n - f10 - f01], n, [p10, p01, 1 - p10 - p01])
            arm = np.r_[np.ones(f10), np.zeros(n - f10)]
            ref = np.r_[np.zeros(f10), np.ones(f01), np.zeros(n - f10 - f01)]
            _, lo, hi = gs.paired_proportion_diff(ref, arm)
            total += pr * (lo <= p10 - p01 <= hi)
    return total


@pytest.mark.parametrize("n", [10, 20])
def test_paired_proportion_difference_exact_coverage(n):
    # Not Monte Carlo: the coverage is summed over all outcomes.  An approximate interval; it
    # must stay near 95 % everywhere on the grid (>= 92 %) and reach it on average.
    grid = [(a, b) for a in (0.02, 0.05, 0.1, 0.2, 0.3, 0.45) for b in (0.0, 0.05, 0.1, 0.2, 0.45)]
    cov = [_paired_coverage(n, a, b) for a, b in grid]
    assert min(cov) >= 0.92 and np.mean(cov) >= 0.95


@pytest.mark.parametrize("n", [10, 20])
def test_independent_proportion_difference_exact_coverage(n):
    ps = (0.02, 0.1, 0.3, 0.5, 0.8, 0.95)
    k = np.arange(n + 1)
    cov = []
    for p1 in ps:
        for p2 in ps:
            w = np.outer(st.binom.pmf(k, n, p1), st.binom.pmf(k, n, p2))
            hit = np.array([[lo <= p2 - p1 <= hi for (_, lo, hi) in
                             (gs.proportion_diff(a, n, b, n) for b in k)] for a in k])
            cov.append(float(np.sum(w * hit)))
    assert min(cov) >= 0.92 and np.mean(cov) >= 0.95


@pytest.mark.parametrize("tab", [(3, 10, 7, 10), (0, 5, 5, 5), (2, 8, 2, 8), (1, 12, 9, 15), (0, 4, 0, 4)])
def test_fisher_exact_matches_scipy(tab):
    kr, nr, ka, na = tab
    ref = st.fisher_exact([[ka, na - ka], [kr, nr - kr]]).pvalue
    assert gs.fisher_exact(kr, nr, ka, na) == pytest.approx(ref, rel=1e-9)


# ---- endpoint table: log-rank, follow-up, horizon, pairing, reference --------------------------
def _ns(arm, **attrs):
    arm.attrs = attrs
    return arm


def test_logrank_not_computable_when_no_arm_has_an_event():
    a = _arm([0, 0, 0, 0, 0, 0], [np.nan] * 6, [0.5] * 6)
    b = _arm([0, 0, 0, 0, 0, 0], [np.nan] * 6, [0.6] * 6)
    cmp = an.endpoint_table([("A", a), ("B", b)])
    line = [x for x in tb.format_table(cmp).splitlines() if x.startswith("log-rank")]
    assert line == ["log-rank test, time to clearance across 2 arms: not computable: no arm has "
                    "a clearance before day 10"]
    assert cmp.logrank is not None and math.isnan(cmp.logrank[0])


def test_unequal_follow_up_is_an_error_naming_arms_and_horizons():
    a = _arm([1, 0], [2.0, np.nan], [0.0, 0.5], end=7.0)
    b = _arm([1, 0], [2.0, np.nan], [0.0, 0.5], end=3.0)
    with pytest.raises(an.ComparisonError) as e:
        an.endpoint_table([("A", a), ("B", b)])
    msg = str(e.value)
    assert "\n" not in msg and "A 7 d" in msg and "B 3 d" in msg and "--horizon" in msg
    b.time_days = np.array([])
    with pytest.raises(an.ComparisonError, match="B has no output interval"):
        an.endpoint_table([("A", a), ("B", b)])


def test_paired_arms_get_paired_differences_and_no_logrank():
    # same seed and replicate indices: replicate i of both arms shares its random numbers
    rng = np.random.default_rng(1)
    base = rng.normal(1.0, 1.0, 12)
    a = _ns(_arm([1] * 6 + [0] * 6, [2.0] * 6 + [np.nan] * 6, base), seed=5, first_replicate=0)
    # B: every replicate 0.1 better; a shift far smaller than the spread between replicates
    b = _ns(_arm([1] * 8 + [0] * 4, [1.5] * 6 + [3.0] * 2 + [np.nan] * 4, base - 0.1),
            seed=5, first_replicate=0)
    cmp = an.endpoint_table([("A", a), ("B", b)])
    d = {x.endpoint: x for x in cmp.diffs}
    assert "paired" in cmp.pairing["B"] and cmp.logrank is None and "paired" in cmp.logrank_note
    # median of the pairwise differences: exactly -0.1 on each pair; sign test p = 2 / 2^12
    r = d["best_response"]
    assert r.paired and r.estimate == pytest.approx(-0.1) and r.high == pytest.approx(-0.1)
    assert r.p == pytest.approx(2 / 2 ** 12)
    # the per-arm intervals overlap almost entirely: treated as independent this would be missed
    rows = {(x.arm, x.endpoint): x for x in cmp.rows}
    assert rows[("B", "best_response")].high > rows[("A", "best_response")].low
    # cleared: 2 discordant pairs, both for B: exact McNemar p = 2 * 2^-2 = 0.5
    c = d["cleared"]
    assert c.estimate == pytest.approx(2 / 12) and c.p == 0.5
    assert (c.low, c.high) == pytest.approx(gs.paired_proportion_diff(a.endpoints["cleared"],
                                                                     b.endpoints["cleared"])[1:])
    # time to clearance restricted to the horizon (10): 6 pairs 0.5 sooner, 2 pairs 7 sooner
    t = d["time_to_clearance_days"]
    assert t.n == 12 and t.p == pytest.approx(st.binomtest(8, 8).pvalue)
    text = tb.format_table(cmp)
    assert "B - A" in text and "paired with A (seed 5, replicates 0-11)" in text


def test_different_seeds_or_replicates_are_independent():
    a = _ns(_arm([1, 1, 0, 0, 0, 0], [2.0, 3.0] + [np.nan] * 4, [0.1] * 6), seed=5, first_replicate=0)
    b = _ns(_arm([1, 0, 0, 0, 0, 0], [4.0] + [np.nan] * 5, [0.2] * 6), seed=6, first_replicate=0)
    c = _ns(_arm([1, 0, 0, 0, 0, 0], [4.0] + [np.nan] * 5, [0.2] * 6), seed=5, first_replicate=6)
    cmp = an.endpoint_table([("A", a), ("B", b), ("C", c)])
    assert all("independent" in cmp.pairing[x] for x in "BC")
    assert cmp.logrank is not None and not math.isnan(cmp.logrank[0])
    d = {(x.arm, x.endpoint): x for x in cmp.diffs}
    assert d[("B", "cleared")].p == pytest.approx(st.fisher_exact([[1, 5], [2, 4]]).pvalue)
    assert d[("B", "time_to_clearance_days")].method == "log-rank"


def test_reference_arm_and_unknown_reference():
    a = _arm([1, 0], [2.0, np.nan], [0.0, 0.5])
    b = _arm([0, 0], [np.nan, np.nan], [0.4, 0.5])
    cmp = an.endpoint_table([("A", a), ("B", b)], reference="B")
    assert cmp.reference == "B" and {d.arm for d in cmp.diffs} == {"A"}
    with pytest.raises(an.ComparisonError, match="not one of the arms"):
        an.endpoint_table([("A", a), ("B", b)], reference="Z")


SMALL_RUN = ["domain.x_voxels=20", "domain.y_voxels=20", "tumour.radius_um=60",
             "run.output_interval_hours=2", "run.replicates=6", "delivery.dose_cells=3e7"]


def test_endpoints_at_horizon_equal_those_of_a_run_stopped_there():
    # A replicate's trajectory depends only on (scenario, seed, replicate index), so a 1-day run
    # is the first day of a 1.5-day run: every endpoint re-derived at day 1 must equal the
    # engine's own endpoint of the 1-day run; the rest must say "not computable".
    from gpusim.study.runner import run
    from gpusim.scenario import load_scenario

    long = run(load_scenario("quickstart", SMALL_RUN + ["run.days=1.5"]))
    short = run(load_scenario("quickstart", SMALL_RUN + ["run.days=1"]))
    ep, why = an.at_horizon(long, 1.0)
    assert set(ep) == {"cleared", "time_to_clearance_days", "final_tumour_ratio", "antigen_escape",
                       "kills_tumour", "kills_healthy",
                       # the outputs defined on the output series or as final counts
                       "time_to_progression_days", "progressed", "car_t_persistence_days",
                       "car_t_persistence_censored", *(f"peak_{s}_{k}" for k in ("ifng", "il12", "tgfb")
                                                       for s in ("mean", "max")),
                       "final_tumour_cells", "final_tumour_a_pos_b_pos", "final_tumour_a_pos_b_neg",
                       "final_tumour_a_neg_b_pos", "final_tumour_a_neg_b_neg", "final_necrotic_voxels",
                       "final_car_t_effector", "final_car_t_exhausted", "final_car_t_memory",
                       "final_infiltration_depth_mean_um", "final_infiltration_depth_p50_um"}
    assert set(ep) | set(why) == set(long.endpoints)
    assert short.endpoints["kills_tumour"].any()  # the check is not vacuous
    for k, v in ep.items():
        np.testing.assert_array_equal(v, short.endpoints[k], err_msg=k)
        assert v.dtype == short.endpoints[k].dtype
    # at its own end the recipes give back the stored endpoints
    ep, _ = an.at_horizon(long, 1.5)
    for k, v in ep.items():
        np.testing.assert_array_equal(v, long.endpoints[k], err_msg=k)


def test_time_to_clearance_censored_at_the_horizon():
    a = _arm([1, 1, 1, 0], [2.0, 5.0, 8.0, np.nan], [0.0] * 4)
    tum = np.array([[9, 0, 0, 0], [9, 3, 0, 0], [9, 3, 3, 0], [9, 5, 5, 5]], float)
    a.timeseries = {"tumour_cells": tum}
    a.time_days = np.array([0.0, 3.0, 6.0, 10.0])
    ep, why = an.at_horizon(a, 6.0)
    np.testing.assert_array_equal(ep["time_to_clearance_days"], [2.0, 5.0, np.nan, np.nan])
    np.testing.assert_array_equal(ep["cleared"], [1, 1, 0, 0])
    assert "best_response" in why and "antigen_escape" in why  # no tumour_invisible series
    with pytest.raises(an.ComparisonError, match="no output at day 5"):
        an.at_horizon(a, 5.0)


def test_cli_compare_follow_up_horizon_and_reference(tmp_path):
    R = 6
    long = _arm([1, 1, 0, 0, 0, 0], [2.0, 5.0] + [np.nan] * 4, [0.0, 0.0] + [0.5] * 4, end=7.0)
    long.time_days = np.array([0.0, 3.0, 7.0])
    short = _arm([1, 0, 0, 0, 0, 0], [1.0] + [np.nan] * 5, [0.0] + [0.6] * 5, end=3.0)
    short.time_days = np.array([0.0, 3.0])
    tl = np.array([[4, 0, 0], [4, 2, 0]] + [[4, 3, 3]] * 4, float)
    ts = np.array([[4, 0]] + [[4, 3]] * 5, float)
    pa = {"seed": 3, "first_replicate": 0}
    _file(tmp_path / "week.h5", long, attrs=pa, tumour=tl)
    _file(tmp_path / "days3.h5", short, attrs=pa, tumour=ts)
    w, s = str(tmp_path / "week.h5"), str(tmp_path / "days3.h5")
    r = CliRunner().invoke(main, ["compare", w, s])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "week 7 d" in r.stderr and "days3 3 d" in r.stderr
    r = CliRunner().invoke(main, ["compare", w, s, "--horizon", "5"])
    assert r.exit_code == 2 and "beyond the follow-up of days3 (3 d)" in r.stderr
    r = CliRunner().invoke(main, ["compare", w, s, "--horizon", "2"])
    assert r.exit_code == 2 and "no output at day 2" in r.stderr
    out = tmp_path / "h.csv"
    r = CliRunner().invoke(main, ["compare", w, s, "--horizon", "3", "--reference", "days3",
                                  "--csv", str(out)])
    assert r.exit_code == 0, r.output
    assert "horizon: day 3" in r.output and "not computable" in r.output
    got = {(x["arm"], x["endpoint"]): x for x in csv.DictReader(out.open())}
    # week at day 3: replicate 0 cleared (day 2), replicate 1 not yet (day 5 > 3)
    assert got[("week", "cleared")]["detail"] == "1/6"
    assert got[("week", "best_response")]["method"] == "not computable"
    assert float(got[("week", "cleared")]["horizon_days"]) == 3.0
    assert got[("week", "cleared (difference)")]["method"].startswith("paired difference")
    assert got[("week", "cleared (difference)")]["reference"] == "days3"
    # a reference file that is not among the inputs becomes the reference arm
    r = CliRunner().invoke(main, ["compare", s, "--reference", w, "--horizon", "3"])
    assert r.exit_code == 0 and "reference arm week" in r.output and "days3 - week" in r.output
    r = CliRunner().invoke(main, ["compare", w, s, "--horizon", "3", "--reference", "nope"])
    assert r.exit_code == 2 and "nope" in r.stderr

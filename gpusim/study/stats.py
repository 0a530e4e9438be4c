"""Endpoint statistics for comparing arms: confidence intervals, survival analysis and paired or
independent differences, in NumPy.

* :func:`wilson`: Wilson score interval for a proportion (clearance, antigen escape).
* :func:`median_ci`: the distribution-free order-statistic interval of a median with its exact
  coverage; below n = 6 no such interval reaches 95 %, and [min, max] is returned with its true
  coverage (callers show it, never "95 %").
* :func:`bootstrap_median`: percentile-bootstrap interval for a median (fixed seed; kept for the
  API, no longer used by the comparison table).
* :func:`kaplan_meier`, :func:`km_median`: Kaplan–Meier survival curve with Greenwood variance and
  the median time with a log-log (Brookmeyer–Crowley type) interval; replicates that never
  clear are right-censored at the horizon.
* :func:`logrank`: k-sample log-rank test, p-value from the chi-square distribution
  (:func:`chi2_sf`, regularised upper incomplete gamma); NaN (not computable) without events.
* :func:`sign_test` (exact; the exact McNemar test on paired 0/1 outcomes),
  :func:`paired_proportion_diff` (Bonett–Price), :func:`proportion_diff` (Agresti–Caffo),
  :func:`fisher_exact`: differences between an arm and a reference arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


Z95 = 1.959963984540054
"""Two-sided 95 % standard normal quantile."""
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240601


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (``(0, 1)`` when n == 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def bootstrap_median(x, *, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95,
                     seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(median, low, high): percentile bootstrap interval of the median; NaNs are dropped.

    Deterministic: resampling uses a fixed-seed PCG64 generator.  All NaN for an empty sample.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    meds = np.median(x[idx], axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(meds, [a, 1 - a])
    return float(np.median(x)), float(lo), float(hi)


@dataclass
class KM:
    """A Kaplan–Meier curve: ``S(t)`` just after each distinct event time ``t``."""

    time: np.ndarray  #: distinct event times, increasing
    surv: np.ndarray  #: S(t)
    greenwood: np.ndarray  #: cumulative sum d / (n (n - d)) (Var S = S^2 * greenwood)
    at_risk: np.ndarray
    events: np.ndarray
    n: int


def kaplan_meier(times, observed) -> KM:
    """Kaplan–Meier estimate.  ``times``: event or censoring time per subject; ``observed``:
    True where the event happened at that time, False where the subject was censored then.
    Ties: events happen before censorings at the same time (the usual convention)."""
    t = np.asarray(times, dtype=np.float64)
    e = np.asarray(observed, dtype=bool)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError("times and observed must be 1-d arrays of the same length")
    if np.isnan(t).any():
        raise ValueError("times must not be NaN (give censored subjects their censoring time)")
    ut = np.unique(t[e])
    at_risk = np.array([(t >= u).sum() for u in ut], dtype=np.float64)
    d = np.array([((t == u) & e).sum() for u in ut], dtype=np.float64)
    surv = np.cumprod(1.0 - d / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        gw = np.cumsum(np.where(at_risk > d, d / (at_risk * (at_risk - d)), np.inf))
    return KM(ut, surv, gw, at_risk, d, int(t.size))


def km_band(km: KM, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise (lower, upper) confidence band of S at ``km.time``, log-log transformed:
    S^exp(+-z se), se = sqrt(greenwood) / |log S| (1 and 0 where S is 1 or 0)."""
    s = km.surv
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(km.greenwood) / np.abs(np.log(s))
        upper = s ** np.exp(-z * se)
        lower = s ** np.exp(z * se)
    upper = np.where(s <= 0, 0.0, np.where(np.isfinite(upper), upper, 1.0))
    lower = np.where(s <= 0, 0.0, np.where(np.isfinite(lower), lower, 0.0))
    return lower, upper


def km_median(km: KM, z: float = Z95) -> tuple[float, float, float]:
    """(median, low, high) of the time to event: the first time S(t) <= 1/2 (NaN: not reached);
    interval: the first times the lower and the upper log-log band of S reach 1/2 (NaN: not
    reached)."""
    if km.time.size == 0:
        return math.nan, math.nan, math.nan
    s = km.surv
    lower, upper = km_band(km, z)
    def first(mask):
        i = np.flatnonzero(mask)
        return float(km.time[i[0]]) if i.size else math.nan

    return first(s <= 0.5), first(lower <= 0.5), first(upper <= 0.5)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X ~ chi-square(df): the regularised upper incomplete gamma Q(df/2, x/2)."""
    if x <= 0:
        return 1.0
    a, y = df / 2.0, x / 2.0
    lg = math.lgamma(a)
    if y < a + 1:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= y / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(-y + a * math.log(y) - lg))
    # continued fraction for Q (modified Lentz)
    tiny = 1e-300
    b = y + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(-y + a * math.log(y) - lg) * h)


def logrank(times, observed, groups) -> tuple[float, int, float]:
    """k-sample log-rank test: (chi-square statistic, degrees of freedom k-1, p-value).

    Uses the hypergeometric variance with ties; groups with no subject are ignored.  With fewer
    than two groups, or no event at all, the test is not computable: returns (NaN, 0, NaN)."""
    t = np.asarray(times, dtype=np.float64)
    e = np.asarray(observed, dtype=bool)
    g = np.asarray(groups)
    labels = list(dict.fromkeys(g.tolist()))
    k = len(labels)
    ut = np.unique(t[e])
    if k < 2 or ut.size == 0:
        return math.nan, 0, math.nan
    gi = np.array([labels.index(v) for v in g.tolist()])
    O = np.zeros(k)
    E = np.zeros(k)
    V = np.zeros((k, k))
    for u in ut:
        risk = t >= u
        n_j = np.bincount(gi[risk], minlength=k).astype(np.float64)
        d_j = np.bincount(gi[(t == u) & e], minlength=k).astype(np.float64)
        n, d = n_j.sum(), d_j.sum()
        O += d_j
        E += d * n_j / n
        if n > 1:
            f = d * (n - d) / (n * n * (n - 1))
            V += f * (n * np.diag(n_j) - np.outer(n_j, n_j))
    diff = (O - E)[:-1]
    Vr = V[:-1, :-1]
    stat = float(diff @ np.linalg.pinv(Vr) @ diff)
    df = int(np.linalg.matrix_rank(Vr))
    if df == 0:
        return math.nan, 0, math.nan
    return stat, df, chi2_sf(stat, df)


# ---------------------------------------------------------------------------------------------
# exact, distribution-free intervals and tests (order statistics, sign test)
def binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (exact to rounding)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) - n * math.log(2.0)
            for j in range(k + 1)]
    m = max(logs)
    return min(1.0, math.exp(m) * sum(math.exp(v - m) for v in logs))


MIN_N_MEDIAN = 6
"""Smallest n for which an order-statistic interval of a median reaches 95 %: [min, max] of n
values covers the median with probability 1 - 2^(1-n) (n = 5: 93.75 %, n = 6: 96.9 %)."""


def median_ci(x, level: float = 0.95) -> tuple[float, float, float, float]:
    """(median, low, high, coverage): the distribution-free order-statistic interval of a median.

    ``[x_(k), x_(n+1-k)]`` of the sorted sample covers the population median with probability
    ``1 - 2 P(B <= k-1)``, B ~ Binomial(n, 1/2), exactly for a continuous distribution and at
    least that for a discrete one (ties).  ``k`` is the largest with coverage >= ``level``.  When
    not even ``[min, max]`` reaches ``level`` (n < 6 at 95 %) the interval returned is
    ``[min, max]`` with its true, smaller coverage: callers must show that coverage, not "95 %".
    NaNs are dropped; all NaN for an empty sample.
    """
    x = np.asarray(x, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    med = float(np.median(x))
    best = 1
    for k in range(1, n // 2 + 1):
        if 1.0 - 2.0 * binom_cdf_half(k - 1, n) >= level:
            best = k
        else:
            break
    cov = 1.0 - 2.0 * binom_cdf_half(best - 1, n) if n > 1 else 0.0
    return med, float(x[best - 1]), float(x[n - best]), cov


def sign_test(d) -> float:
    """Exact two-sided sign test of "median of ``d`` is 0": zeros and NaNs dropped,
    p = min(1, 2 P(B <= min(n+, n-))), B ~ Binomial(n+ + n-, 1/2).  1.0 when every d is 0.
    On paired 0/1 outcomes this is the exact McNemar test (only discordant pairs count)."""
    d = np.asarray(d, dtype=np.float64)
    d = d[~np.isnan(d)]
    pos, neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    if pos + neg == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf_half(min(pos, neg), pos + neg))


def paired_proportion_diff(ref, arm, z: float = Z95) -> tuple[float, float, float]:
    """(p_arm - p_ref, low, high) for paired 0/1 outcomes: the Bonett-Price (2012) adjusted Wald
    interval.  With f10 = pairs where only the arm has the outcome, f01 = only the reference,
    p10 = (f10+1)/(n+2), p01 = (f01+1)/(n+2): (p10 - p01) +- z sqrt((p10 + p01 - (p10-p01)^2)/(n+2)),
    clipped to [-1, 1].  The estimate is the plain (f10 - f01)/n."""
    a = np.asarray(arm) != 0
    r = np.asarray(ref) != 0
    n = int(a.size)
    if n == 0:
        return math.nan, math.nan, math.nan
    f10, f01 = int(np.sum(a & ~r)), int(np.sum(~a & r))
    p10, p01 = (f10 + 1) / (n + 2), (f01 + 1) / (n + 2)
    th = p10 - p01
    h = z * math.sqrt(max(p10 + p01 - th * th, 0.0) / (n + 2))
    return (f10 - f01) / n, max(-1.0, th - h), min(1.0, th + h)


def proportion_diff(k_ref: int, n_ref: int, k_arm: int, n_arm: int,
                    z: float = Z95) -> tuple[float, float, float]:
    """(p_arm - p_ref, low, high) for independent samples: the Agresti-Caffo (2000) interval
    (add one event and one non-event to each arm, then Wald), clipped to [-1, 1]."""
    if n_ref == 0 or n_arm == 0:
        return math.nan, math.nan, math.nan
    pa, pr = (k_arm + 1) / (n_arm + 2), (k_ref + 1) / (n_ref + 2)
    h = z * math.sqrt(pa * (1 - pa) / (n_arm + 2) + pr * (1 - pr) / (n_ref + 2))
    return k_arm / n_arm - k_ref / n_ref, max(-1.0, pa - pr - h), min(1.0, pa - pr + h)


def fisher_exact(k_ref: int, n_ref: int, k_arm: int, n_arm: int) -> float:
    """Two-sided Fisher exact test of equal proportions (tables at most as likely as the one
    observed, relative tolerance 1e-7, as in R and SciPy)."""
    K, N = k_ref + k_arm, n_ref + n_arm
    lo, hi = max(0, K - n_ref), min(K, n_arm)
    logp = lambda x: (math.lgamma(n_arm + 1) - math.lgamma(x + 1) - math.lgamma(n_arm - x + 1)
                      + math.lgamma(n_ref + 1) - math.lgamma(K - x + 1) - math.lgamma(n_ref - K + x + 1)
                      - math.lgamma(N + 1) + math.lgamma(K + 1) + math.lgamma(N - K + 1))
    ps = {x: math.exp(logp(x)) for x in range(lo, hi + 1)}
    obs = ps[k_arm]
    return min(1.0, sum(p for p in ps.values() if p <= obs * (1 + 1e-7)))

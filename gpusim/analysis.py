"""Endpoint statistics for comparing arms: confidence intervals and survival analysis, in NumPy.

* :func:`wilson`: Wilson score interval for a proportion (clearance, antigen escape).
* :func:`bootstrap_median`: percentile-bootstrap interval for a median (fixed seed: the same
  input always gives the same interval).
* :func:`kaplan_meier`, :func:`km_median`: Kaplan–Meier survival curve with Greenwood variance and
  the median time with a log-log (Brookmeyer–Crowley type) interval; replicates that never
  clear are right-censored at the end of the run.
* :func:`logrank`: k-sample log-rank test, p-value from the chi-square distribution
  (:func:`chi2_sf`, regularised upper incomplete gamma).
* :func:`endpoint_table`: every endpoint of every arm, as rows ready for printing or CSV.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Sequence

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
    than two groups, or no event at all, returns (0, 0, 1)."""
    t = np.asarray(times, dtype=np.float64)
    e = np.asarray(observed, dtype=bool)
    g = np.asarray(groups)
    labels = list(dict.fromkeys(g.tolist()))
    k = len(labels)
    ut = np.unique(t[e])
    if k < 2 or ut.size == 0:
        return 0.0, 0, 1.0
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
        return 0.0, 0, 1.0
    return stat, df, chi2_sf(stat, df)


# ---------------------------------------------------------------------------------------------
PROPORTIONS = ("cleared", "antigen_escape")
SURVIVAL = "time_to_clearance_days"


@dataclass
class Row:
    arm: str
    endpoint: str
    method: str
    n: int
    estimate: float
    low: float
    high: float
    detail: str = ""


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    logrank: tuple[float, int, float] | None = None
    arms: list[str] = field(default_factory=list)


def _is_proportion(name: str, v: np.ndarray) -> bool:
    """Yes/no endpoints get Wilson intervals; a grade (e.g. ``crs_grade``, 0-4) is not one even
    when every replicate happens to have 0 or 1.  Bool arrays are always proportions."""
    return name in PROPORTIONS or v.dtype.kind == "b"


def endpoint_table(arms: Sequence[tuple[str, object]]) -> Comparison:
    """Rows for every endpoint of every arm.  ``arms``: ``(label, Results)`` pairs with complete
    endpoints.  Proportions get Wilson intervals, time to clearance a Kaplan–Meier median
    (censored at the end of the run) and a log-rank test across arms, everything else a
    bootstrap interval of the median."""
    out = Comparison(arms=[a for a, _ in arms])
    all_t, all_e, all_g = [], [], []
    names: list[str] = []
    for _, res in arms:
        names += [k for k in res.endpoints if k not in names]
    for label, res in arms:
        ep = res.endpoints
        for name in names:
            if name not in ep:
                continue
            v = np.asarray(ep[name])
            if name == SURVIVAL:
                end = float(res.time_days[-1]) if res.time_days.size else 0.0
                obs = ~np.isnan(v)
                t = np.where(obs, v, end)
                med, lo, hi = km_median(kaplan_meier(t, obs))
                out.rows.append(Row(label, name, "Kaplan-Meier median", v.size, med, lo, hi,
                                    f"{int(obs.sum())} events, censored at {end:g} d"))
                all_t.append(t)
                all_e.append(obs)
                all_g += [label] * v.size
            elif _is_proportion(name, v):
                k, n = int(np.sum(v != 0)), int(v.size)
                lo, hi = wilson(k, n)
                out.rows.append(Row(label, name, "Wilson", n, k / n if n else math.nan, lo, hi, f"{k}/{n}"))
            else:
                med, lo, hi = bootstrap_median(v)
                out.rows.append(Row(label, name, "bootstrap median", int(np.sum(~np.isnan(v.astype(float)))),
                                    med, lo, hi))
    if len(arms) >= 2 and all_t:
        out.logrank = logrank(np.concatenate(all_t), np.concatenate(all_e), all_g)
    return out


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n.r."
    return f"{x:.3g}"


def format_table(cmp: Comparison) -> str:
    """An aligned text table: one line per endpoint, one column per arm."""
    endpoints = list(dict.fromkeys(r.endpoint for r in cmp.rows))
    cell = {(r.arm, r.endpoint): r for r in cmp.rows}
    header = ["endpoint"] + cmp.arms
    lines = []
    for e in endpoints:
        row = [e]
        for a in cmp.arms:
            r = cell.get((a, e))
            if r is None:
                row.append("-")
            elif r.method == "Wilson":
                row.append(f"{r.detail} {100 * r.estimate:.0f}% [{100 * r.low:.0f}-{100 * r.high:.0f}]")
            else:
                row.append(f"{_fmt(r.estimate)} [{_fmt(r.low)}, {_fmt(r.high)}]")
        lines.append(row)
    w = [max(len(x[i]) for x in [header] + lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w[i]) for i, c in enumerate(header))]
    text.append("  ".join("-" * n for n in w))
    text += ["  ".join(c.ljust(w[i]) for i, c in enumerate(x)) for x in lines]
    text.append("95 % CI: Wilson for proportions, percentile bootstrap (2000 resamples) for medians, "
                "Kaplan-Meier log-log for time to clearance; n.r. = not reached")
    if cmp.logrank is not None:
        s, df, p = cmp.logrank
        text.append(f"log-rank test, time to clearance across {len(cmp.arms)} arms: "
                    f"chi2 = {s:.3f}, df = {df}, p = {p:.4g}")
    return "\n".join(text)


def write_csv(cmp: Comparison, path) -> None:
    """Long-format CSV: arm, endpoint, method, n, estimate, ci_low, ci_high, detail; plus a
    ``logrank`` row (arm ``all``, estimate = chi-square, ci columns empty, detail df and p)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["arm", "endpoint", "method", "n", "estimate", "ci_low", "ci_high", "detail"])
        for r in cmp.rows:
            w.writerow([r.arm, r.endpoint, r.method, r.n, repr(float(r.estimate)),
                        repr(float(r.low)), repr(float(r.high)), r.detail])
        if cmp.logrank is not None:
            s, df, p = cmp.logrank
            w.writerow(["all", SURVIVAL, "log-rank", sum(r.n for r in cmp.rows if r.endpoint == SURVIVAL),
                        repr(s), "", "", f"df={df} p={p!r}"])

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
* :func:`at_horizon`: endpoints re-derived at an earlier output time from the stored time series.
* :func:`ratio_to_untreated`: tumour size of a therapy run relative to an untreated control run
  at their last common output time (paired per replicate when the runs share seed and replicates).
* :func:`endpoint_table`: every endpoint of every arm, and the differences from a reference arm,
  as rows ready for printing (:func:`format_table`) or CSV (:func:`write_csv`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import GpusimError

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


# ---------------------------------------------------------------------------------------------
PROPORTIONS = ("cleared", "antigen_escape", "progressed", "car_t_persistence_censored")
SURVIVAL = "time_to_clearance_days"
#: censored times (NaN: no event by the horizon) and the verb of their event
SURVIVAL_TIMES = {SURVIVAL: "cleared", "time_to_progression_days": "progressed"}
HORIZON_TOL = 1e-6
"""Two output times closer than this (day) are the same time."""


class ComparisonError(GpusimError):
    """Arms that cannot be compared as given: unequal follow-up, a bad horizon or reference."""


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
    coverage: float = math.nan  #: true coverage of [low, high] where it is known exactly
    small: bool = False  #: n too small for a 95 % interval (see ``coverage`` / ``detail``)


@dataclass
class Diff:
    """One endpoint of one arm against the reference arm (estimate = arm minus reference)."""

    arm: str
    reference: str
    endpoint: str
    method: str
    n: int
    estimate: float
    low: float
    high: float
    p: float = math.nan
    coverage: float = math.nan
    paired: bool = False
    detail: str = ""
    small: bool = False


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    logrank: tuple[float, int, float] | None = None
    arms: list[str] = field(default_factory=list)
    horizon: float = math.nan  #: the common follow-up (day) every endpoint refers to
    follow_up: dict[str, float] = field(default_factory=dict)  #: each arm's own follow-up (day)
    truncated: bool = False  #: --horizon shortened at least one arm
    logrank_note: str = ""  #: why there is no log-rank statistic
    reference: str | None = None
    pairing: dict[str, str] = field(default_factory=dict)  #: arm -> "paired ..." / "independent ..."
    diffs: list[Diff] = field(default_factory=list)
    n: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _is_proportion(name: str, v: np.ndarray) -> bool:
    """Yes/no endpoints get Wilson intervals; a grade (e.g. ``crs_grade``, 0-4) is not one even
    when every replicate happens to have 0 or 1.  Bool arrays are always proportions."""
    return name in PROPORTIONS or v.dtype.kind == "b"


def follow_up(res) -> float:
    """An arm's follow-up: its last output time (day); NaN when it has none."""
    t = np.asarray(res.time_days, dtype=np.float64)
    return float(t[-1]) if t.size else math.nan


def at_horizon(res, horizon: float) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The endpoints of ``res`` as they were at day ``horizon``, re-derived from the stored time
    series, and, for those that cannot be, the reason (``{name: why}``).

    ``horizon`` must be one of the file's output times.  Re-derived: ``time_to_clearance_days``
    (a clearance after the horizon is not observed: censored), ``cleared`` (no tumour cell at
    the horizon), ``final_tumour_ratio`` (tumour cells at the horizon / at day 0),
    ``antigen_escape`` (not cleared and most tumour cells invisible to the CAR at the horizon),
    ``kills_tumour`` and ``kills_healthy`` (cumulative counts), the endpoints defined on the
    output series (``time_to_progression_days``/``progressed``, ``car_t_persistence_*``,
    ``peak_mean_*``/``peak_max_*``: computed from the outputs up to the horizon) and the final
    counts that a time series holds (``final_tumour_*``, ``final_necrotic_voxels``,
    ``final_car_t_*``, ``final_infiltration_depth_*``).  Every other endpoint is a peak,
    a minimum, an area or a last time over every step of the whole run, which the output times
    do not determine: not computable.
    """
    t = np.asarray(res.time_days, dtype=np.float64)
    hit = np.flatnonzero(np.abs(t - horizon) <= HORIZON_TOL)
    if not hit.size:
        raise ComparisonError(f"no output at day {horizon:g}")
    i = int(hit[-1])
    ts = getattr(res, "timeseries", None) or {}
    starts = t.size > 0 and abs(t[0]) <= HORIZON_TOL
    out: dict[str, np.ndarray] = {}
    why: dict[str, str] = {}

    def have(*metrics) -> bool:
        missing = [m for m in metrics if m not in ts]
        if missing:
            why[name] = f"needs the time series {', '.join(missing)}, which the file lacks"
        return not missing

    series_ep = _series_endpoints_at(res, ts, t, i)
    final_from = {"final_tumour_cells": "tumour_cells", "final_necrotic_voxels": "necrotic_voxels",
                  "final_car_t_exhausted": "car_t_exhausted", "final_car_t_memory": "car_t_memory",
                  "final_infiltration_depth_mean_um": "infiltration_depth_mean_um",
                  "final_infiltration_depth_p50_um": "infiltration_depth_p50_um",
                  **{f"final_{c}": c for c in ("tumour_a_pos_b_pos", "tumour_a_pos_b_neg",
                                               "tumour_a_neg_b_pos", "tumour_a_neg_b_neg")}}
    for name, v in res.endpoints.items():
        v = np.asarray(v)
        if name in series_ep:
            out[name] = series_ep[name].astype(v.dtype)
            continue
        if name in final_from:
            if have(final_from[name]):
                out[name] = ts[final_from[name]][:, i].astype(v.dtype)
            continue
        if name == "final_car_t_effector":
            if have("car_t_tissue", "car_t_exhausted", "car_t_memory"):
                out[name] = (ts["car_t_tissue"][:, i] - ts["car_t_exhausted"][:, i]
                             - ts["car_t_memory"][:, i]).astype(v.dtype)
            continue
        if name == SURVIVAL:
            with np.errstate(invalid="ignore"):
                out[name] = np.where(v <= horizon + HORIZON_TOL, v, np.nan)
        elif name == "cleared":
            if have("tumour_cells"):
                out[name] = (ts["tumour_cells"][:, i] == 0).astype(v.dtype)
        elif name == "final_tumour_ratio":
            if have("tumour_cells"):
                if starts:
                    out[name] = ts["tumour_cells"][:, i] / np.maximum(ts["tumour_cells"][:, 0], 1)
                else:
                    why[name] = "needs the tumour size at day 0, which the file lacks"
        elif name == "antigen_escape":
            if have("tumour_cells", "tumour_invisible") and starts:
                # the engine's rule: persists, mostly invisible, and the invisible fraction grew
                # at least half-way from its day-0 value to 1
                tc = ts["tumour_cells"][:, i]
                inv = ts["tumour_invisible"][:, i] / np.maximum(tc, 1)
                inv0 = ts["tumour_invisible"][:, 0] / np.maximum(ts["tumour_cells"][:, 0], 1)
                out[name] = ((tc != 0) & (inv > 0.5) & (inv - inv0 >= 0.5 * (1.0 - inv0))).astype(v.dtype)
            elif not starts:
                why[name] = "needs the tumour composition at day 0, which the file lacks"
        elif name in ("kills_tumour", "kills_healthy"):
            if have(name):
                out[name] = ts[name][:, i].astype(v.dtype)
        else:
            why[name] = ("depends on every step of the whole run (a peak, minimum, area or last "
                         "time), not only on the stored output times")
    return out, why


def _series_endpoints_at(res, ts, t, i) -> dict[str, np.ndarray]:
    """The endpoints defined on the output time series (time to progression, CAR-T persistence,
    signal peaks; gpusim.model.outputs), re-derived from the outputs up to index ``i``; empty when
    the file lacks a series they need."""
    from .engine import SERIES_METRICS
    from .model.outputs import series_endpoints

    if any(m not in ts for m in SERIES_METRICS):
        return {}
    multiple, fraction = _outputs_params(res)
    return series_endpoints(t[: i + 1], {m: ts[m][:, : i + 1] for m in SERIES_METRICS}, multiple, fraction)


def _outputs_params(res) -> tuple[float, float]:
    """``outputs.progression_multiple`` and ``outputs.persistence_fraction`` of a result's
    scenario (the defaults when the stored scenario predates them)."""
    import tomllib

    from .params import BY_KEY

    try:
        sec = tomllib.loads(getattr(res, "scenario_toml", "") or "").get("outputs", {})
    except tomllib.TOMLDecodeError:
        sec = {}
    return (float(sec.get("progression_multiple", BY_KEY["outputs.progression_multiple"].default)),
            float(sec.get("persistence_fraction", BY_KEY["outputs.persistence_fraction"].default)))


@dataclass
class UntreatedRatio:
    """Tumour size of a run relative to an untreated control, at day ``day``."""

    day: float
    ratio_of_means: float  #: mean tumour cells (run) / mean tumour cells (control)
    paired: np.ndarray | None  #: per-replicate ratios when the runs share seed and replicates


def ratio_to_untreated(res, control) -> UntreatedRatio:
    """Tumour cells of ``res`` over those of the untreated ``control`` at the last output time
    the two runs share (within HORIZON_TOL).  Paired per replicate when both record the same
    seed, first replicate and replicate count (paired seeds: the same initial tissue).

    Raises ComparisonError when the runs share no output time or lack ``tumour_cells``."""
    t1 = np.asarray(res.time_days, dtype=np.float64)
    t0 = np.asarray(control.time_days, dtype=np.float64)
    if "tumour_cells" not in res.timeseries or "tumour_cells" not in control.timeseries:
        raise ComparisonError("ratio to untreated: a file lacks the tumour_cells time series")
    common = [(i, int(np.flatnonzero(np.abs(t0 - x) <= HORIZON_TOL)[-1])) for i, x in enumerate(t1)
              if np.any(np.abs(t0 - x) <= HORIZON_TOL)]
    if not common:
        raise ComparisonError("ratio to untreated: the runs share no output time")
    i, j = common[-1]
    a = np.asarray(res.timeseries["tumour_cells"][:, i], dtype=np.float64)
    b = np.asarray(control.timeseries["tumour_cells"][:, j], dtype=np.float64)
    rom = float(a.mean() / b.mean()) if b.mean() > 0 else math.nan
    k1, k0 = _pair_key(res, a.size), _pair_key(control, b.size)
    paired = a / np.maximum(b, 1) if k1 is not None and k1 == k0 else None
    return UntreatedRatio(float(t1[i]), rom, paired)


def _pair_key(res, n: int):
    """(seed, first replicate index, n) when the file records both, else None."""
    attrs = getattr(res, "attrs", None) or {}
    seed, first = attrs.get("seed"), attrs.get("first_replicate")
    if seed is None or first is None:
        return None
    return int(seed), int(first), int(n)


def _n_of(ep: dict) -> int:
    return int(np.asarray(next(iter(ep.values()))).size) if ep else 0


def _common_horizon(arms, horizon: float | None) -> tuple[float, dict[str, float]]:
    fu = {label: follow_up(res) for label, res in arms}
    empty = [a for a, d in fu.items() if math.isnan(d)]
    if empty:
        raise ComparisonError(f"compare: {', '.join(empty)} has no output interval: no follow-up to compare")
    listed = ", ".join(f"{a} {d:g} d" for a, d in fu.items())
    if horizon is None:
        ds = list(fu.values())
        if any(abs(d - ds[0]) > HORIZON_TOL for d in ds):
            raise ComparisonError(
                f"compare: arms have unequal follow-up ({listed}); endpoints at different horizons "
                f"are not comparable: pass --horizon DAYS (at most {min(ds):g}) to compare every "
                "arm up to a common horizon")
        return ds[0], fu
    if not horizon > 0 or not math.isfinite(horizon):
        raise ComparisonError(f"compare: --horizon must be a positive number of days, not {horizon:g}")
    short = [a for a, d in fu.items() if d < horizon - HORIZON_TOL]
    if short:
        raise ComparisonError(
            f"compare: --horizon {horizon:g} is beyond the follow-up of "
            + ", ".join(f"{a} ({fu[a]:g} d)" for a in short) + f"; the longest common horizon is "
            f"{min(fu.values()):g} d")
    for label, res in arms:
        t = np.asarray(res.time_days, dtype=np.float64)
        if not np.any(np.abs(t - horizon) <= HORIZON_TOL):
            below = t[t < horizon]
            above = t[t > horizon]
            near = ", ".join(f"{x:g}" for x in (below[-1:].tolist() + above[:1].tolist()))
            raise ComparisonError(
                f"compare: arm {label} has no output at day {horizon:g} (nearest output times: "
                f"{near}); choose a --horizon that is an output time of every arm")
    return float(horizon), fu


def _median_row(label: str, name: str, v: np.ndarray) -> Row:
    med, lo, hi, cov = median_ci(v)
    n = int(np.sum(~np.isnan(np.asarray(v, dtype=np.float64))))
    small = 0 < n < MIN_N_MEDIAN
    detail = (f"n = {n} < {MIN_N_MEDIAN}: no 95 % interval; [min, max] covers {100 * cov:.0f} %"
              if small else (f"coverage {100 * cov:.1f} %" if n else "no data"))
    return Row(label, name, "order-statistic median", n, med, lo, hi, detail, cov, small)


def endpoint_table(arms: Sequence[tuple[str, object]], *, horizon: float | None = None,
                   reference: str | None = None) -> Comparison:
    """Rows for every endpoint of every arm, and differences from a reference arm.

    ``arms``: ``(label, Results)`` pairs with complete endpoints.  Every arm must have the same
    follow-up (last output time), else ComparisonError, unless ``horizon`` (day) is given: then
    every arm's endpoints are re-derived at that day (:func:`at_horizon`).

    Per arm: proportions get Wilson intervals, time to clearance a Kaplan–Meier median (censored
    at the horizon; no interval below n = 6), everything else the median with its
    order-statistic interval (:func:`median_ci`).  Across arms: a log-rank test of time to
    clearance when the arms are independent.  Differences from ``reference`` (a label; default
    the first arm, when there are two arms or more): for an arm paired with the reference (same
    ``seed``, ``first_replicate`` and replicate count, so replicate i of both arms used the same
    random numbers) the pairwise differences (Bonett–Price for proportions, the order-statistic
    interval of the median difference otherwise, exact sign / McNemar p-values); for an
    independent arm Agresti–Caffo intervals and Fisher exact p-values for proportions and a
    two-arm log-rank test for time to clearance.
    """
    H, fu = _common_horizon(arms, horizon)
    labels = [a for a, _ in arms]
    out = Comparison(arms=labels, horizon=H, follow_up=fu)
    eps: dict[str, dict[str, np.ndarray]] = {}
    why: dict[str, dict[str, str]] = {}
    for label, res in arms:
        if fu[label] > H + HORIZON_TOL:
            eps[label], why[label] = at_horizon(res, H)
            out.truncated = True
        else:
            eps[label], why[label] = dict(res.endpoints), {}
        out.n[label] = _n_of(res.endpoints)
    names: list[str] = []
    for _, res in arms:
        names += [k for k in res.endpoints if k not in names]
    all_t, all_e, all_g = [], [], []
    for label, _ in arms:
        ep = eps[label]
        for name in names:
            if name in why[label]:
                out.rows.append(Row(label, name, "not computable", out.n[label], math.nan, math.nan,
                                    math.nan, f"at day {H:g}: {why[label][name]}"))
                continue
            if name not in ep:
                continue
            v = np.asarray(ep[name])
            if name in SURVIVAL_TIMES:
                obs = ~np.isnan(v)
                t = np.where(obs, v, H)
                med, lo, hi = km_median(kaplan_meier(t, obs))
                small = v.size < MIN_N_MEDIAN
                if small:
                    lo = hi = math.nan
                out.rows.append(Row(label, name, "Kaplan-Meier median", v.size, med, lo, hi,
                                    f"{int(obs.sum())} events, censored at {H:g} d"
                                    + (f"; n = {v.size} < {MIN_N_MEDIAN}: no interval" if small else ""),
                                    small=small))
                if name == SURVIVAL:
                    all_t.append(t)
                    all_e.append(obs)
                    all_g += [label] * v.size
            elif _is_proportion(name, v):
                k, n = int(np.sum(v != 0)), int(v.size)
                lo, hi = wilson(k, n)
                out.rows.append(Row(label, name, "Wilson", n, k / n if n else math.nan, lo, hi, f"{k}/{n}"))
            else:
                out.rows.append(_median_row(label, name, v))
    small = [a for a in labels if 0 < out.n[a] < MIN_N_MEDIAN]
    if small:
        out.notes.append(f"small n: {', '.join(f'{a} (n = {out.n[a]})' for a in small)}: fewer than "
                         f"{MIN_N_MEDIAN} replicates, so medians have no 95 % interval (the true "
                         "coverage of [min, max] is shown) and Kaplan-Meier medians none at all; "
                         "run more replicates (-r)")

    keys = {label: _pair_key(res, out.n[label]) for label, res in arms}
    if len(arms) >= 2:
        ref = labels[0] if reference is None else reference
        if ref not in labels:
            raise ComparisonError(f"compare: reference '{ref}' is not one of the arms: {', '.join(labels)}")
        out.reference = ref
        for label in labels:
            if label == ref:
                continue
            paired = keys[label] is not None and keys[label] == keys[ref]
            if paired:
                s, f, n = keys[label]
                out.pairing[label] = (f"paired with {ref} (seed {s}, replicates {f}-{f + n - 1}): "
                                      "replicate i of both used the same random numbers")
            else:
                out.pairing[label] = (f"independent of {ref} ("
                                      + ("seed or replicate indices differ" if keys[label] and keys[ref]
                                         else "seed or replicate indices not recorded") + ")")
            for name in names:
                out.diffs.append(_diff(label, ref, name, eps, why, paired, H))
        # the k-sample log-rank test assumes independent arms
        pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]
                 if keys[a] is not None and keys[a] == keys[b]]
        if all_t and len(all_t) >= 2:
            if pairs:
                k = len(labels)
                which = ("all arms" if len(pairs) == k * (k - 1) // 2 else
                         "arms " + "; ".join(f"{a} and {b}" for a, b in pairs))
                out.logrank_note = (f"not applicable: {which} share seed and replicate indices "
                                    "(paired), so they are not independent samples; see the paired "
                                    "differences")
            else:
                out.logrank = logrank(np.concatenate(all_t), np.concatenate(all_e), all_g)
                if math.isnan(out.logrank[0]):
                    out.logrank_note = (f"not computable: no arm has a clearance before day {H:g}"
                                        if not np.concatenate(all_e).any()
                                        else "not computable: fewer than two arms with subjects")
    return out


def _diff(label, ref, name, eps, why, paired, H) -> Diff:
    def nc(reason):
        return Diff(label, ref, name, "not computable", 0, math.nan, math.nan, math.nan,
                    paired=paired, detail=reason)

    for a in (label, ref):
        if name in why[a]:
            return nc(f"{a}: at day {H:g}: {why[a][name]}")
        if name not in eps[a]:
            return nc(f"{a} has no {name}")
    x, r = np.asarray(eps[label][name]), np.asarray(eps[ref][name])
    if name in SURVIVAL_TIMES:
        verb = SURVIVAL_TIMES[name]
        xs, rs = np.where(np.isnan(x), H, np.minimum(x, H)), np.where(np.isnan(r), H, np.minimum(r, H))
        if paired:
            d = xs - rs
            med, lo, hi, cov = median_ci(d)
            small = d.size < MIN_N_MEDIAN
            return Diff(label, ref, name, "median paired difference of min(time, horizon)", d.size,
                        med, lo, hi, sign_test(d), cov, True,
                        f"sign test; {int(np.sum(d < 0))} pairs {verb} sooner in {label}, "
                        f"{int(np.sum(d > 0))} in {ref}", small)
        t = np.r_[xs, rs]
        e = np.r_[~np.isnan(x), ~np.isnan(r)]
        s, df, p = logrank(t, e, [label] * x.size + [ref] * r.size)
        return Diff(label, ref, name, "log-rank", x.size + r.size, math.nan, math.nan, math.nan, p,
                    paired=False, detail=(f"chi2 = {s:.3f}, df = {df}" if not math.isnan(s)
                                          else f"not computable: no replicate {verb} in either arm" if name != SURVIVAL
                                          else "not computable: no clearance in either arm"))
    if _is_proportion(name, x) or _is_proportion(name, r):
        if paired:
            est, lo, hi = paired_proportion_diff(r, x)
            d = (x != 0).astype(float) - (r != 0).astype(float)
            return Diff(label, ref, name, "paired difference of proportions (Bonett-Price)", x.size,
                        est, lo, hi, sign_test(d), paired=True,
                        detail=f"exact McNemar; discordant pairs: {int(np.sum(d > 0))} only in "
                               f"{label}, {int(np.sum(d < 0))} only in {ref}")
        kx, kr = int(np.sum(x != 0)), int(np.sum(r != 0))
        est, lo, hi = proportion_diff(kr, r.size, kx, x.size)
        return Diff(label, ref, name, "difference of proportions (Agresti-Caffo)", x.size + r.size,
                    est, lo, hi, fisher_exact(kr, r.size, kx, x.size),
                    detail=f"Fisher exact; {kx}/{x.size} vs {kr}/{r.size}")
    if paired:
        d = x.astype(np.float64) - r.astype(np.float64)
        d = d[~np.isnan(d)]
        med, lo, hi, cov = median_ci(d)
        small = 0 < d.size < MIN_N_MEDIAN
        return Diff(label, ref, name, "median paired difference (sign test)", int(d.size), med, lo,
                    hi, sign_test(d), cov, True,
                    (f"n = {d.size} < {MIN_N_MEDIAN}: [min, max] covers {100 * cov:.0f} %" if small
                     else f"coverage {100 * cov:.1f} %"), small)
    return Diff(label, ref, name, "not computed", x.size + r.size, math.nan, math.nan, math.nan,
                detail="independent arms: compare the per-arm intervals of the medians")


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n.r."
    return f"{x:.3g}"


def _pval(p: float) -> str:
    return "p = n/a" if math.isnan(p) else f"p = {p:.2g}"


def _cell(r: Row) -> str:
    if r.method == "not computable":
        return "not computable"
    if r.method == "Wilson":
        return f"{r.detail} {100 * r.estimate:.0f}% [{100 * r.low:.0f}-{100 * r.high:.0f}]"
    if r.small and r.method == "Kaplan-Meier median":
        return f"{_fmt(r.estimate)} [n too small]"
    if r.small:
        return f"{_fmt(r.estimate)} [{_fmt(r.low)}, {_fmt(r.high)}] {100 * r.coverage:.0f}% CI"
    if r.method == "order-statistic median" and r.n == 0:
        return "no data"
    return f"{_fmt(r.estimate)} [{_fmt(r.low)}, {_fmt(r.high)}]"


def _dcell(d: Diff) -> str:
    if d.method in ("not computable", "not computed"):
        return d.method
    if d.method == "log-rank":
        return f"log-rank {_pval(d.p)}" if not math.isnan(d.p) else "log-rank not computable"
    ci = f"[{d.low:+.3g}, {d.high:+.3g}]"
    if d.small:
        ci += f" {100 * d.coverage:.0f}% CI"
    return f"{d.estimate:+.3g} {ci} {_pval(d.p)}"


def _grid(header: list[str], lines: list[list[str]]) -> list[str]:
    w = [max(len(x[i]) for x in [header] + lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w[i]) for i, c in enumerate(header)).rstrip()]
    text.append("  ".join("-" * n for n in w))
    text += ["  ".join(c.ljust(w[i]) for i, c in enumerate(x)).rstrip() for x in lines]
    return text


def format_table(cmp: Comparison) -> str:
    """An aligned text table (one line per endpoint, one column per arm), the log-rank test,
    and the differences from the reference arm."""
    endpoints = list(dict.fromkeys(r.endpoint for r in cmp.rows))
    cell = {(r.arm, r.endpoint): r for r in cmp.rows}
    text = []
    fu = ", ".join(f"{a} {d:g} d" for a, d in cmp.follow_up.items())
    if cmp.truncated:
        text.append(f"horizon: day {cmp.horizon:g} (--horizon; follow-up {fu}): endpoints "
                    f"re-derived at day {cmp.horizon:g}, 'not computable' where the stored time "
                    "series do not determine them")
    else:
        text.append(f"follow-up: day {cmp.horizon:g} in every arm")
    header = ["endpoint"] + [f"{a} (n={cmp.n.get(a, '?')})" for a in cmp.arms]
    lines = [[e] + [_cell(cell[(a, e)]) if (a, e) in cell else "-" for a in cmp.arms] for e in endpoints]
    text += _grid(header, lines)
    text.append("95 % CI: Wilson for proportions; order-statistic (distribution-free, coverage >= 95 %) "
                "for medians; Kaplan-Meier log-log for time to clearance; n.r. = not reached")
    text += [f"note: {n}" for n in cmp.notes]
    if cmp.logrank is not None and not math.isnan(cmp.logrank[0]):
        s, df, p = cmp.logrank
        text.append(f"log-rank test, time to clearance across {len(cmp.arms)} arms: "
                    f"chi2 = {s:.3f}, df = {df}, p = {p:.4g}")
    elif cmp.logrank_note:
        text.append(f"log-rank test, time to clearance across {len(cmp.arms)} arms: {cmp.logrank_note}")
    if cmp.diffs:
        others = [a for a in cmp.arms if a != cmp.reference]
        text.append("")
        text.append(f"differences from the reference arm {cmp.reference} (arm minus {cmp.reference}), "
                    "95 % CI, two-sided p:")
        text += [f"  {a}: {cmp.pairing[a]}" for a in others]
        dcell = {(d.arm, d.endpoint): d for d in cmp.diffs}
        dl = [[e] + [_dcell(dcell[(a, e)]) if (a, e) in dcell else "-" for a in others]
              for e in endpoints]
        text += _grid(["endpoint"] + [f"{a} - {cmp.reference}" for a in others], dl)
        if any(d.paired for d in cmp.diffs):
            text.append("paired: proportions Bonett-Price interval, exact McNemar p; other endpoints "
                        "median of the pairwise differences, order-statistic interval, exact sign-test "
                        "p; time to clearance as min(time, horizon)")
        if any(not d.paired for d in cmp.diffs):
            text.append("independent: proportions Agresti-Caffo interval, Fisher exact p; time to "
                        "clearance two-arm log-rank p; medians: compare the per-arm intervals")
    return "\n".join(text)


CSV_COLUMNS = ["arm", "endpoint", "method", "n", "estimate", "ci_low", "ci_high", "detail",
               "coverage", "p_value", "horizon_days", "reference"]


def write_csv(cmp: Comparison, path) -> None:
    """Long-format CSV (columns :data:`CSV_COLUMNS`): one row per (arm, endpoint); a ``logrank``
    row (arm ``all``, estimate = chi-square, NaN when not computable, detail df, p or the
    reason); one row per (arm, endpoint) difference from the reference arm, with endpoint
    ``<endpoint> (difference)`` and the reference arm in ``reference`` (empty elsewhere)."""
    f = lambda x: repr(float(x))
    H = f(cmp.horizon)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for r in cmp.rows:
            w.writerow([r.arm, r.endpoint, r.method, r.n, f(r.estimate), f(r.low), f(r.high), r.detail,
                        f(r.coverage), "", H, ""])
        if cmp.logrank is not None or cmp.logrank_note:
            s, df, p = cmp.logrank if cmp.logrank is not None else (math.nan, 0, math.nan)
            w.writerow(["all", SURVIVAL, "log-rank", sum(r.n for r in cmp.rows if r.endpoint == SURVIVAL),
                        f(s), "", "", cmp.logrank_note or f"df={df} p={p!r}", "", f(p), H, ""])
        for d in cmp.diffs:
            w.writerow([d.arm, f"{d.endpoint} (difference)", d.method, d.n, f(d.estimate), f(d.low),
                        f(d.high), d.detail, f(d.coverage), f(d.p), H, d.reference])

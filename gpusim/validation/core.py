"""Checks, case results and the statistics every validation case uses: the suite's false-failure
budget, chi-square and z checks, per-step probabilities, Student t quantiles."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .. import rng
from ..study.stats import chi2_sf
from ..errors import GpusimError


ALPHA_SUITE = 1e-3  #: probability that a correct engine fails any check of the full suite


STAT_CHECKS = 32  #: upper bound on the number of statistical checks in the suite (Bonferroni)


ALPHA_CHECK = ALPHA_SUITE / STAT_CHECKS


Z_CHECK = NormalDist().inv_cdf(1.0 - ALPHA_CHECK / 2.0)  # ~ 4.17


Z95 = NormalDist().inv_cdf(0.975)


TWO32 = rng.TWO32


F32 = np.float32


class ValidationError(GpusimError):
    """Bad arguments to the validation suite (unknown case name, bad figure directory)."""


# ---------------------------------------------------------------------------------------------
# results
@dataclass
class Check:
    """One comparison.  ``kind``: "stat" (tolerance = Z_CHECK x SE, or a chi-square quantile),
    "paired" (a one-sided paired test of a mechanism's direction, ``biology`` case: passes iff
    measured > tol), "exact" (bitwise / integer equality), "numeric" (a stated numerical
    tolerance) or "info" (shown, not part of the verdict)."""

    name: str
    expected: float
    measured: float
    tol: float
    kind: str = "stat"
    se: float = float("nan")  # standard error of measured (the +- shown is 1.96 se)
    passed: bool | None = None
    note: str = ""

    def __post_init__(self):
        if self.passed is None:
            if self.kind == "exact":
                self.passed = bool(self.measured == self.expected)
            else:
                self.passed = bool(abs(self.measured - self.expected) <= self.tol)
        if self.kind == "info":
            self.passed = True


@dataclass
class CaseResult:
    name: str
    title: str
    reference: str
    checks: list[Check] = field(default_factory=list)
    figure: str | None = None
    seconds: float = 0.0
    data: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def chi2_quantile(df: int, alpha: float) -> float:
    """Upper (1 - alpha) quantile of chi-square(df): bisection on Q(df/2, x/2) = alpha."""
    lo, hi = 0.0, df + 10.0 * math.sqrt(2 * df) + 100.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if chi2_sf(mid, df) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def chi2_check(name: str, observed: np.ndarray, expected: np.ndarray, note: str = "") -> Check:
    """Pearson chi-square goodness of fit; bins are merged left to right until each expects >= 5."""
    o, e = merge_bins(np.asarray(observed, float), np.asarray(expected, float), 5.0)
    x2 = float(((o - e) ** 2 / e).sum())
    df = o.size - 1
    q = chi2_quantile(df, ALPHA_CHECK)
    return Check(name, float(df), x2, q - df, "stat", se=math.sqrt(2 * df),
                 passed=bool(x2 <= q), note=note or f"chi-square, {df} df; pass if <= {q:.1f}")


def merge_bins(o, e, emin):
    oo, ee, co, ce = [], [], 0.0, 0.0
    for a, b in zip(o, e):
        co += a
        ce += b
        if ce >= emin:
            oo.append(co)
            ee.append(ce)
            co = ce = 0.0
    if ce > 0 or co > 0:
        if ee:
            oo[-1] += co
            ee[-1] += ce
        else:
            oo.append(co)
            ee.append(ce)
    return np.array(oo), np.array(ee)


def z_check(name: str, expected: float, measured: float, se: float, note: str = "",
             extra_tol: float = 0.0) -> Check:
    return Check(name, float(expected), float(measured), Z_CHECK * se + extra_tol, "stat",
                 se=float(se), note=note)


def p_step(rate_per_min: float, dt_min: float) -> float:
    """The exact per-step probability the engine uses for a rate: threshold(float32(1-exp(-r dt)))
    / 2^32 (gpusim.rng decision rule)."""
    return float(rng.threshold(F32(-np.expm1(-rate_per_min * dt_min)))) / TWO32


def p_exact(p: float) -> float:
    """The exact probability of ``word < threshold(float32(p))``."""
    return float(rng.threshold(F32(p))) / TWO32


def scenario(overrides: dict):
    from ..scenario import load_scenario

    return load_scenario({"scenario": {"name": "validate"}}, overrides)


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - betainc(b, a, 1.0 - x)
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def t_quantile(df: int, alpha: float) -> float:
    """t such that P(|T_df| > t) = alpha for Student's t with df degrees of freedom (bisection on
    P(|T| > t) = I_{df/(df+t^2)}(df/2, 1/2))."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if betainc(df / 2.0, 0.5, df / (df + mid * mid)) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)

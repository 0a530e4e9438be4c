"""Rates as per-step terms: the conversions the parameter classes share (host float64; the
probabilities rounded once to float32).  Each keeps its operation order, so a term is the same
bits wherever it is derived."""

from __future__ import annotations

import numpy as np

MIN_PER_DAY = 1440.0


def per_step(per_day: float, dt_min: float) -> float:
    """A rate per day as an amount per step of ``dt_min`` minutes: ``per_day × dt_min / 1440``."""
    return per_day * dt_min / MIN_PER_DAY


def step_probability(per_day: float, dt_min: float) -> np.float32:
    """Probability (float32) that an event of rate ``per_day`` (1/day) happens within one step of
    ``dt_min`` minutes: ``1 - exp(-per_day × dt_min / 1440)``."""
    return np.float32(-np.expm1(-per_day * dt_min / MIN_PER_DAY))

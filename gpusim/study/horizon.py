"""Endpoints at an earlier horizon: what a run's endpoints were at one of its output times,
re-derived from the stored time series (for comparing arms of unequal follow-up)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import GpusimError

SURVIVAL = "time_to_clearance_days"
HORIZON_TOL = 1e-6
"""Two output times closer than this (day) are the same time."""


class ComparisonError(GpusimError):
    """Arms that cannot be compared as given: unequal follow-up, a bad horizon or reference."""


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
    series_ep = _series_endpoints_at(res, ts, t, i)
    for name, v in res.endpoints.items():
        v = np.asarray(v)
        if name in series_ep:
            value, reason = series_ep[name].astype(v.dtype), None
        else:
            value, reason = _derive_at(name, v, ts, i, horizon, starts)
        if value is not None:
            out[name] = value
        if reason is not None:
            why[name] = reason
    return out, why


#: final counts that a time series holds at the horizon: endpoint -> series
_FINAL_FROM = {"final_tumour_cells": "tumour_cells", "final_necrotic_voxels": "necrotic_voxels",
               "final_car_t_exhausted": "car_t_exhausted", "final_car_t_memory": "car_t_memory",
               "final_infiltration_depth_mean_um": "infiltration_depth_mean_um",
               "final_infiltration_depth_p50_um": "infiltration_depth_p50_um",
               **{f"final_{c}": c for c in ("tumour_a_pos_b_pos", "tumour_a_pos_b_neg",
                                            "tumour_a_neg_b_pos", "tumour_a_neg_b_neg")}}


def _missing(ts, *metrics) -> str | None:
    """Why an endpoint cannot be re-derived when ``ts`` lacks one of ``metrics``, else None."""
    missing = [m for m in metrics if m not in ts]
    return f"needs the time series {', '.join(missing)}, which the file lacks" if missing else None


def _derive_at(name: str, v: np.ndarray, ts, i: int, horizon: float, starts: bool):
    """Endpoint ``name`` (final values ``v``, (R,)) at output index ``i`` (day ``horizon``):
    ``(value or None, why not or None)``; see :func:`at_horizon`."""
    if name in _FINAL_FROM:
        why = _missing(ts, _FINAL_FROM[name])
        return (None, why) if why else (ts[_FINAL_FROM[name]][:, i].astype(v.dtype), None)
    if name == "final_car_t_effector":
        why = _missing(ts, "car_t_tissue", "car_t_exhausted", "car_t_memory")
        return (None, why) if why else ((ts["car_t_tissue"][:, i] - ts["car_t_exhausted"][:, i]
                                         - ts["car_t_memory"][:, i]).astype(v.dtype), None)
    if name == SURVIVAL:
        with np.errstate(invalid="ignore"):
            return np.where(v <= horizon + HORIZON_TOL, v, np.nan), None
    if name in ("cleared", "final_tumour_ratio", "kills_tumour", "kills_healthy"):
        why = _missing(ts, "tumour_cells" if name in ("cleared", "final_tumour_ratio") else name)
        if why:
            return None, why
        if name == "cleared":
            return (ts["tumour_cells"][:, i] == 0).astype(v.dtype), None
        if name != "final_tumour_ratio":
            return ts[name][:, i].astype(v.dtype), None
        if not starts:
            return None, "needs the tumour size at day 0, which the file lacks"
        return ts["tumour_cells"][:, i] / np.maximum(ts["tumour_cells"][:, 0], 1), None
    if name == "antigen_escape":
        return _escape_at(v, ts, i, starts)
    return None, ("depends on every step of the whole run (a peak, minimum, area or last "
                  "time), not only on the stored output times")


def _escape_at(v: np.ndarray, ts, i: int, starts: bool):
    """``antigen_escape`` at output index ``i``, by the engine's rule: persists, mostly invisible,
    and the invisible fraction grew at least half-way from its day-0 value to 1."""
    why = _missing(ts, "tumour_cells", "tumour_invisible")
    if not starts:
        return None, "needs the tumour composition at day 0, which the file lacks"
    if why:
        return None, why
    tc = ts["tumour_cells"][:, i]
    inv = ts["tumour_invisible"][:, i] / np.maximum(tc, 1)
    inv0 = ts["tumour_invisible"][:, 0] / np.maximum(ts["tumour_cells"][:, 0], 1)
    return ((tc != 0) & (inv > 0.5) & (inv - inv0 >= 0.5 * (1.0 - inv0))).astype(v.dtype), None


def _series_endpoints_at(res, ts, t, i) -> dict[str, np.ndarray]:
    """The endpoints defined on the output time series (time to progression, CAR-T persistence,
    signal peaks; gpusim.model.outputs), re-derived from the outputs up to index ``i``; empty when
    the file lacks a series they need."""
    from ..engine import SERIES_METRICS
    from ..model.outputs import series_endpoints

    if any(m not in ts for m in SERIES_METRICS):
        return {}
    multiple, fraction = _outputs_params(res)
    return series_endpoints(t[: i + 1], {m: ts[m][:, : i + 1] for m in SERIES_METRICS}, multiple, fraction)


def _outputs_params(res) -> tuple[float, float]:
    """``outputs.progression_multiple`` and ``outputs.persistence_fraction`` of a result's
    scenario (the defaults when the stored scenario predates them)."""
    import tomllib

    from ..params import BY_KEY

    try:
        sec = tomllib.loads(getattr(res, "scenario_toml", "") or "").get("outputs", {})
    except tomllib.TOMLDecodeError:
        sec = {}
    return (float(sec.get("progression_multiple", BY_KEY["outputs.progression_multiple"].default)),
            float(sec.get("persistence_fraction", BY_KEY["outputs.persistence_fraction"].default)))

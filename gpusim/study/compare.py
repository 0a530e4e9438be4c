"""Comparing arms: endpoints of every arm with their intervals, and the differences from a
reference arm (the statistics themselves are in :mod:`gpusim.study.stats`).

* :func:`at_horizon` (from :mod:`gpusim.study.horizon`): endpoints re-derived at an earlier
  output time from the stored time series.
* :func:`ratio_to_untreated`: tumour size of a therapy run relative to an untreated control run
  at their last common output time (paired per replicate when the runs share seed and replicates).
* :func:`endpoint_table`: every endpoint of every arm, and the differences from a reference arm,
  as rows ready for printing (:func:`format_table`) or CSV (:func:`write_csv`).
* :func:`compare_inputs`: ``gpusim compare``: result files, sweep directories or sweep points
  read as arms (incomplete ones skipped), the reference arm found, and :func:`endpoint_table`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import OutputError
from .horizon import HORIZON_TOL, SURVIVAL, ComparisonError, at_horizon, follow_up  # noqa: F401 (API)
from .stats import (MIN_N_MEDIAN, fisher_exact, kaplan_meier, km_median, logrank, median_ci,
                    paired_proportion_diff, proportion_diff, sign_test, wilson)


# ---------------------------------------------------------------------------------------------
PROPORTIONS = ("cleared", "antigen_escape", "progressed", "car_t_persistence_censored")
#: censored times (NaN: no event by the horizon) and the verb of their event
SURVIVAL_TIMES = {SURVIVAL: "cleared", "time_to_progression_days": "progressed"}


@dataclass
class Row:
    """One endpoint of one arm: estimate and interval (low, high) in the endpoint's units, n."""

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


# Deliberate twin of Row: a difference carries the same estimate/interval fields plus the
# reference arm and a p-value; the two are printed and written to CSV differently (table.py).
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
    """Everything :func:`endpoint_table` found: per-arm rows, differences, log-rank test, notes."""

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
    eps, why, names = _endpoints_at_common_horizon(arms, out)
    survival: list[tuple[str, np.ndarray, np.ndarray]] = []  # (arm, time, observed) of SURVIVAL
    for label, _ in arms:
        for name in names:
            if name in why[label]:
                out.rows.append(Row(label, name, "not computable", out.n[label], math.nan, math.nan,
                                    math.nan, f"at day {H:g}: {why[label][name]}"))
            elif name in eps[label]:
                out.rows.append(_row(label, name, np.asarray(eps[label][name]), H, survival))
    small = [a for a in labels if 0 < out.n[a] < MIN_N_MEDIAN]
    if small:
        out.notes.append(f"small n: {', '.join(f'{a} (n = {out.n[a]})' for a in small)}: fewer than "
                         f"{MIN_N_MEDIAN} replicates, so medians have no 95 % interval (the true "
                         "coverage of [min, max] is shown) and Kaplan-Meier medians none at all; "
                         "run more replicates (-r)")
    keys = {label: _pair_key(res, out.n[label]) for label, res in arms}
    if len(arms) >= 2:
        _differences(out, keys, reference, names, eps, why)
        _logrank_across(out, keys, survival)
    return out


def compare_inputs(inputs: Sequence[str], *, horizon: float | None = None,
                   reference: str | None = None, csv_path: str | None = None, force: bool = False,
                   log: Callable[[str], None] | None = None) -> Comparison:
    """The comparison behind ``gpusim compare``.

    Parameters
    ----------
    inputs : sequence of str
        Result files, sweep directories (every point) or ``DIR:POINT`` (one point); each
        complete one is an arm, labelled by its input (an incomplete one is skipped with a note).
    horizon : float, optional
        Day up to which every arm is compared (see :func:`endpoint_table`).
    reference : str, optional
        The arm the others are compared with: an arm's label or file, or another result file
        (then added as the first arm); default the first arm.
    csv_path : str, optional
        The CSV file the caller will write: checked before any input is read.
    force : bool
        Whether ``csv_path`` may be overwritten.
    log : callable, optional
        Receives one line per skipped input.

    Returns
    -------
    Comparison
        The table of :func:`endpoint_table`.

    Raises
    ------
    OutputError
        No input is a complete result, the reference is neither an arm nor one complete
        result, or ``csv_path`` cannot be written.
    """
    from .runner import _precheck_output

    if csv_path is not None:  # before anything is printed
        _precheck_output(csv_path, force)
    arms, paths = [], []
    for label, path, res in _complete_arms(inputs, log):
        if label in [a for a, _ in arms]:
            label = f"{label} ({path})"
        arms.append((label, res))
        paths.append(Path(path))
    if not arms:
        raise OutputError("compare: none of the inputs is a complete result")
    ref = None if reference is None else _reference_arm(arms, paths, reference, log)
    return endpoint_table(arms, horizon=horizon, reference=ref)


def _complete_arms(items, log):
    """``(label, file, Results)`` of every complete result among ``items``; the others are
    skipped with a note."""
    from .sweep import open_inputs

    log = log or (lambda m: None)
    for label, res, path in open_inputs(items, log):
        if res.status != "complete":
            log(f"note: skipping {label} ('{path}'): status {res.status_now}, endpoints not written")
            continue
        yield label, path, res


def _reference_arm(arms: list, paths: list[Path], reference: str, log) -> str:
    """The label of the reference arm: an arm's label, an arm's file, or another complete
    result (inserted as the first arm of ``arms``)."""
    labels = [a for a, _ in arms]
    by_path = [a for a, p in zip(labels, paths) if Path(reference).exists() and p.resolve() == Path(reference).resolve()]
    if reference in labels:
        return reference
    if by_path:
        return by_path[0]
    try:
        extra = list(_complete_arms([reference], log))
    except OutputError as e:
        raise OutputError(f"compare: --reference '{reference}' is neither an arm "
                          f"({', '.join(labels)}) nor a readable result: {e}") from None
    if len(extra) != 1:
        raise OutputError(f"compare: --reference '{reference}' must be one complete result")
    ref = extra[0][0] if extra[0][0] not in labels else f"{extra[0][0]} ({extra[0][1]})"
    arms.insert(0, (ref, extra[0][2]))
    return ref


def _endpoints_at_common_horizon(arms, out: Comparison):
    """Every arm's endpoints at ``out.horizon`` (re-derived where its follow-up is longer), the
    reasons of those that cannot be, and every endpoint name in order of first appearance."""
    eps: dict[str, dict[str, np.ndarray]] = {}
    why: dict[str, dict[str, str]] = {}
    for label, res in arms:
        if out.follow_up[label] > out.horizon + HORIZON_TOL:
            eps[label], why[label] = at_horizon(res, out.horizon)
            out.truncated = True
        else:
            eps[label], why[label] = dict(res.endpoints), {}
        out.n[label] = _n_of(res.endpoints)
    names: list[str] = []
    for _, res in arms:
        names += [k for k in res.endpoints if k not in names]
    return eps, why, names


def _row(label: str, name: str, v: np.ndarray, H: float, survival: list) -> Row:
    """One arm's row for endpoint ``name`` (values ``v``, (n,)); a time to clearance is also
    added to ``survival`` for the log-rank test."""
    if name in SURVIVAL_TIMES:
        obs = ~np.isnan(v)
        t = np.where(obs, v, H)
        med, lo, hi = km_median(kaplan_meier(t, obs))
        small = v.size < MIN_N_MEDIAN
        if small:
            lo = hi = math.nan
        if name == SURVIVAL:
            survival.append((label, t, obs))
        return Row(label, name, "Kaplan-Meier median", v.size, med, lo, hi,
                   f"{int(obs.sum())} events, censored at {H:g} d"
                   + (f"; n = {v.size} < {MIN_N_MEDIAN}: no interval" if small else ""), small=small)
    if _is_proportion(name, v):
        k, n = int(np.sum(v != 0)), int(v.size)
        lo, hi = wilson(k, n)
        return Row(label, name, "Wilson", n, k / n if n else math.nan, lo, hi, f"{k}/{n}")
    return _median_row(label, name, v)


def _differences(out: Comparison, keys, reference, names, eps, why) -> None:
    """The differences of every arm from the reference arm, paired where they share seed and
    replicate indices."""
    labels = out.arms
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
            out.diffs.append(_diff(label, ref, name, eps, why, paired, out.horizon))


def _logrank_across(out: Comparison, keys, survival: list) -> None:
    """The k-sample log-rank test of time to clearance, which assumes independent arms."""
    labels = out.arms
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]
             if keys[a] is not None and keys[a] == keys[b]]
    if len(survival) < 2:
        return
    if pairs:
        k = len(labels)
        which = ("all arms" if len(pairs) == k * (k - 1) // 2 else
                 "arms " + "; ".join(f"{a} and {b}" for a, b in pairs))
        out.logrank_note = (f"not applicable: {which} share seed and replicate indices "
                            "(paired), so they are not independent samples; see the paired "
                            "differences")
        return
    all_e = np.concatenate([obs for _, _, obs in survival])
    groups = [label for label, t, _ in survival for _ in range(t.size)]
    out.logrank = logrank(np.concatenate([t for _, t, _ in survival]), all_e, groups)
    if math.isnan(out.logrank[0]):
        out.logrank_note = (f"not computable: no arm has a clearance before day {out.horizon:g}"
                            if not all_e.any() else "not computable: fewer than two arms with subjects")


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

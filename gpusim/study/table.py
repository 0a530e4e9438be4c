"""The comparison as text: an aligned table (:func:`format_table`) and long-format CSV
(:func:`write_csv`)."""

from __future__ import annotations

import csv
import math

from ..errors import OutputError
from .compare import SURVIVAL, Comparison, Diff, Row


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
    ``<endpoint> (difference)`` and the reference arm in ``reference`` (empty elsewhere).
    A file that cannot be written is an OutputError."""
    try:
        _write_csv(cmp, path)
    except OSError as e:
        raise OutputError(f"cannot write '{path}': {e.strerror or e}") from None


def _write_csv(cmp: Comparison, path) -> None:
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

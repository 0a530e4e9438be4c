"""Figures (PNG and SVG, matplotlib with the Agg backend) and an HTML page for result files.

:func:`report` takes one or more arms (result files, sweep directories or ``DIR:POINT``) and
writes into an output directory:

* ``index.html``: a *Runs* block (per arm: file, scenario, seed, replicates and their indices,
  follow-up, voxel size, gpusim version, backend and device, start and end time, status); an
  *Endpoints* table (estimate, 95 % CI and n per arm, with the small-n caveats, the log-rank
  test and the differences from the first arm, all from :mod:`gpusim.study.compare`; arms with
  unequal follow-up are compared at the last output time they share); every figure with a
  caption and a link to its SVG;
* one figure per ``gpusim.study.figures`` (tumour burden, antigen classes, CAR-T, IL-6,
  infiltration depth, signals, profiles, lattice snapshots), each as PNG and SVG.

Long arm labels (sweep points) are wrapped in legends and titles, and legends sit outside the
axes.  Needs the optional extra ``gpusim[plot]`` (matplotlib).
"""

from __future__ import annotations

import html
import math
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import OutputError
from .figures import _plt, _save, _voxel_um, figures

def report(inputs: Sequence[str], out_dir: str | os.PathLike, *, force: bool = False,
           warn=None) -> Path:
    """Write the figures and ``index.html`` for ``inputs`` into ``out_dir``; returns the page.

    A missing ``out_dir`` is built under a temporary name and moved into place at the end; an
    existing non-empty one is refused unless ``force``.  An input that cannot be read (damaged,
    truncated) is skipped with a line to ``warn``; OutputError when no input is left,
    MissingExtraError without matplotlib.
    """
    from .sweep import open_inputs

    plt = _plt()
    arms = open_inputs(inputs, warn or (lambda m: None))  # damaged inputs: skipped, warned
    arms = [(lbl, r, p) for lbl, r, p in arms if r.time_days.size]
    if not arms:
        raise OutputError("report: no readable input holds any output interval yet (damaged or unfinished inputs are skipped)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"report output '{out}' exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError(f"report directory '{out}' is not empty; pass --force to write into it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory '{parent}' does not exist")
    work = out if out.exists() else parent / f".{out.name}.partial"
    work.mkdir(exist_ok=True)
    written: list[tuple[str, str]] = []
    try:
        for name, fig, caption in figures(plt, arms):
            _save(fig, work, name, written)
            written[-1] = (name, caption)
            plt.close(fig)
        page = _html(arms, written)
        (work / "index.html").write_text(page, encoding="utf-8")
    except BaseException:
        plt.close("all")
        if work != out:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if work != out:
        os.replace(work, out)
    return out / "index.html"


def _comparison(done, parts: list[str], e):
    """The comparison of the complete arms ``done``; with unequal follow-up, at the longest
    output time every arm has (saying so in ``parts``), or None (said in ``parts``) when they
    share none."""
    from .compare import HORIZON_TOL, ComparisonError, endpoint_table

    try:
        return endpoint_table(done)
    except ComparisonError:
        pass
    common = set(np.round(done[0][1].time_days, 6))
    for _, r in done[1:]:
        common &= set(np.round(r.time_days, 6))
    H = max((t for t in common if t > HORIZON_TOL), default=None)
    fu = ", ".join(f"{lbl} {r.time_days[-1]:g} d" for lbl, r in done)
    if H is None:
        parts.append(f"<p class=warn>Arms have unequal follow-up ({e(fu)}) and no "
                     "common output time: endpoints are not comparable.</p>")
        return None
    cmp = endpoint_table(done, horizon=float(H))
    parts.append(f"<p class=warn>Arms have unequal follow-up ({e(fu)}): every endpoint below is "
                 f"re-derived at day {H:g}, the last output time they share; endpoints that the "
                 "stored time series do not determine say <em>not computable</em>.</p>")
    return cmp


def endpoint_section(arms) -> str:
    """HTML: the endpoint table (estimate, 95 % CI, n) of the complete arms, the log-rank test,
    the differences from the first arm, and every caveat, from :mod:`gpusim.study.compare`."""
    from .table import _cell, _dcell

    e = lambda x: html.escape(x).replace(",", ",<wbr>")
    done = [(lbl, r) for lbl, r, _ in arms if r.status == "complete"]
    skipped = [lbl for lbl, r, _ in arms if r.status != "complete"]
    parts = ["<h2>Endpoints</h2>"]
    if skipped:
        parts.append(f"<p class=warn>Not in the table (endpoints not written yet): {e(', '.join(skipped))}.</p>")
    if not done:
        return "\n".join(parts + ["<p>No complete arm: no endpoint to show.</p>"])
    cmp = _comparison(done, parts, e)
    if cmp is None:
        return "\n".join(parts)
    endpoints = list(dict.fromkeys(r.endpoint for r in cmp.rows))
    cell = {(r.arm, r.endpoint): r for r in cmp.rows}
    head = "".join(f"<th>{e(a)}<br><small>n = {cmp.n[a]}</small></th>" for a in cmp.arms)
    body = "\n".join(
        f"<tr><td>{e(ep)}</td>" + "".join(
            f"<td>{e(_cell(cell[(a, ep)])) if (a, ep) in cell else '-'}</td>" for a in cmp.arms) + "</tr>"
        for ep in endpoints)
    parts.append(f"<p>At day {cmp.horizon:g}. Estimate [95 % CI]: Wilson for proportions (k/n), "
                 "order-statistic (distribution-free) for medians, Kaplan-Meier log-log for time to "
                 "clearance; n.r. = not reached.</p>")
    parts.append(f'<div class=scroll><table class=endpoints><tr><th>endpoint</th>{head}</tr>\n{body}</table></div>')
    for n in cmp.notes:
        parts.append(f"<p class=warn>{e(n)}</p>")
    if cmp.logrank is not None and not math.isnan(cmp.logrank[0]):
        s, df, pv = cmp.logrank
        parts.append(f"<p>Log-rank test, time to clearance: chi2 = {s:.3f}, df = {df}, p = {pv:.4g}.</p>")
    elif cmp.logrank_note:
        parts.append(f"<p>Log-rank test, time to clearance: {e(cmp.logrank_note)}.</p>")
    if cmp.diffs:
        others = [a for a in cmp.arms if a != cmp.reference]
        d = {(x.arm, x.endpoint): x for x in cmp.diffs}
        head = "".join(f"<th>{e(a)} &minus; {e(cmp.reference)}</th>" for a in others)
        body = "\n".join(
            f"<tr><td>{e(ep)}</td>" + "".join(
                f"<td>{e(_dcell(d[(a, ep)])) if (a, ep) in d else '-'}</td>" for a in others) + "</tr>"
            for ep in endpoints)
        parts.append(f"<h3>Differences from {e(cmp.reference)}</h3><ul>"
                     + "".join(f"<li>{e(a)}: {e(cmp.pairing[a])}</li>" for a in others) + "</ul>")
        parts.append(f'<div class=scroll><table class=endpoints><tr><th>endpoint</th>{head}</tr>\n{body}</table></div>')
        parts.append("<p>Estimate [95 % CI], two-sided p. Paired arms: Bonett-Price intervals and exact "
                     "McNemar p for proportions, the median of the pairwise differences with its "
                     "order-statistic interval and exact sign-test p otherwise. Independent arms: "
                     "Agresti-Caffo intervals and Fisher exact p for proportions, log-rank p for time "
                     "to clearance. <code>gpusim compare --reference</code> chooses another reference.</p>")
    return "\n".join(parts)


def _run_block(arms) -> str:
    """HTML: what each arm is (scenario, seed, replicates, version, backend, dates)."""
    e = html.escape
    rows = []
    for lbl, r, p in arms:
        a = r.attrs
        first = a.get("first_replicate")
        reps = (f"{r.replicates} ({first}-{int(first) + r.replicates - 1})" if first is not None
                else str(r.replicates))
        vox = _voxel_um(r)
        cells = [lbl, str(p), a.get("scenario_name", "?"), a.get("seed", "?"), reps,
                 f"{r.time_days[-1]:g}", f"{vox:g}" if vox else "?", a.get("gpusim_version", "?"),
                 f"{a.get('backend', '?')} ({a.get('device', '?')})", a.get("created_utc", "?"),
                 a.get("ended_utc", "-"), r.status]
        rows.append("<tr>" + "".join(f"<td>{e(str(c)).replace(',', ',<wbr>').replace('/', '/<wbr>')}</td>"
                                     for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in (
        "arm", "file", "scenario", "seed", "replicates (indices)", "follow-up (day)", "voxel (µm)",
        "gpusim", "backend (device)", "started (UTC)", "ended (UTC)", "status"))
    return (f"<h2>Runs</h2>\n<div class=scroll><table class=runs><tr>{head}</tr>\n" + "\n".join(rows)
            + "</table></div>")


def _html(arms, figures: list[tuple[str, str]]) -> str:
    from datetime import datetime, timezone

    from ..version import __version__

    e = html.escape
    figs = "\n".join(
        f'<figure id="{e(n)}"><img src="{e(n)}.png" alt="{e(n)}">'
        f'<figcaption><b>{e(n)}</b>: {e(c)} (<a href="{e(n)}.svg">SVG</a>)</figcaption></figure>'
        for n, c in figures)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gpusim report</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1400px}} img{{max-width:100%}}
table{{border-collapse:collapse;margin:0.5em 0}} td,th{{border:1px solid #ccc;padding:2px 8px;vertical-align:top}}
th{{background:#f4f4f4;max-width:18em;overflow-wrap:break-word;font-weight:normal}}
table.endpoints th{{min-width:9em}} div.scroll{{overflow-x:auto}}
td{{white-space:nowrap}} .warn{{color:#8a4b00}}
table.runs td:nth-child(-n+2){{white-space:normal;min-width:12em;max-width:20em;overflow-wrap:break-word}}
figcaption{{font-size:90%;margin-bottom:1.5em}}</style></head>
<body><h1>gpusim report</h1>
<p>Made {e(made)} by gpusim {e(__version__)}.</p>
{_run_block(arms)}
{endpoint_section(arms)}
<h2>Figures</h2>
{figs}
</body></html>
"""

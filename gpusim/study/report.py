"""Figures (PNG and SVG, matplotlib with the Agg backend) and an HTML page for result files.

:func:`report` takes one or more arms (result files, sweep directories or ``DIR:POINT``) and
writes into an output directory:

* ``index.html``: a *Runs* block (per arm: file, scenario, seed, replicates and their indices,
  follow-up, voxel size, gpusim version, backend and device, start and end time, status); an
  *Endpoints* table (estimate, 95 % CI and n per arm, with the small-n caveats, the log-rank
  test and the differences from the first arm, all from :mod:`gpusim.analysis`; arms with
  unequal follow-up are compared at the last output time they share); every figure with a
  caption and a link to its SVG;
* ``tumour_burden``: live tumour cells over time, median line and shaded 5-95 % *replicate
  spread* (not a confidence interval), R in the legend;
* ``antigen_classes``: median tumour cells per antigen class over time, one panel per arm;
* ``car_t``: CAR-T cells in blood and in the tumour (median and replicate spread per arm);
* ``il6``: every ``il6*`` metric, when the files have one (skipped otherwise);
* ``snapshots_<k>``: lattice snapshots of arm k (replicate 0, middle z slice; cell kind,
  CAR-T, oxygen, ECM) at the first, middle and last snapshot time, each panel with a labelled
  colour key (categories, or the field's units) and a scale bar from ``domain.voxel_um``.

Long arm labels (sweep points) are wrapped in legends and titles, and legends sit outside the
axes.  Needs the optional extra ``gpusim[plot]`` (matplotlib).
"""

from __future__ import annotations

import html
import math
import os
import shutil
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MissingExtraError, OutputError

ANTIGEN_CLASSES = (("tumour_a_pos_b_pos", "A+B+"), ("tumour_a_pos_b_neg", "A+B-"),
                   ("tumour_a_neg_b_pos", "A-B+"), ("tumour_a_neg_b_neg", "A-B-"))
KIND_NAMES = ("empty", "tumour", "healthy", "fibroblast", "apoptotic", "necrotic", "vessel")
KIND_COLOURS = ("#ffffff", "#c0392b", "#f5cba7", "#a9cce3", "#f7dc6f", "#566573", "#8e44ad")


def _plt():
    try:
        import matplotlib
    except ImportError as e:
        raise MissingExtraError(f"plots need matplotlib ({e}); install the extra: "
                                "pip install 'gpusim[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


BAND = "5-95 % replicate spread"
BAND_NOTE = ("line: median over replicates; shaded band: 5-95 % replicate spread (where the "
             "middle 90 % of replicates lie), not a confidence interval of the median")
LABEL_WIDTH = 32
"""Legend entries and panel titles are wrapped at this many characters (long sweep labels)."""
SNAPSHOT_FIELDS = {
    # field: (colour key title, category names or None for a continuous field, colours)
    "kind": ("cell kind", KIND_NAMES, KIND_COLOURS),
    "car_t": ("CAR-T cell", ("none", "effector", "exhausted", "memory"),
              ("#ffffff", "#1e8449", "#b7950b", "#2471a3")),
    "o2": ("oxygen", None, None),
    "ecm": ("ECM density", None, None),
}


def _wrap(text: str, width: int = LABEL_WIDTH) -> str:
    """Wrap at spaces and after the commas of sweep labels (``k1=v1,k2=v2``), never inside a
    word unless a word alone is wider than ``width``."""
    text = str(text).replace(",", ", ")
    return "\n".join(textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False)) or text


def _band(ax, t, y, label, colour):
    R = y.shape[0]
    ax.plot(t, np.median(y, axis=0), color=colour, label=_wrap(f"{label} (R={R})"), lw=1.8)
    if R > 1:
        lo, hi = np.quantile(y, [0.05, 0.95], axis=0)
        ax.fill_between(t, lo, hi, color=colour, alpha=0.2, lw=0)


def _nanband(ax, t, y, label, colour):
    """:func:`_band` for series with undefined (NaN) entries: statistics over the defined ones."""
    R = y.shape[0]
    ok = np.isfinite(y).any(axis=0)
    med = np.full(y.shape[1], np.nan)
    med[ok] = np.nanmedian(y[:, ok], axis=0)
    ax.plot(t, med, color=colour, label=_wrap(f"{label} (R={R})"), lw=1.8)
    if R > 1 and ok.any():
        lo, hi = np.full_like(med, np.nan), np.full_like(med, np.nan)
        lo[ok], hi[ok] = np.nanquantile(y[:, ok], [0.05, 0.95], axis=0)
        ax.fill_between(t, lo, hi, color=colour, alpha=0.2, lw=0)


def _legend(ax):
    """Legend outside the axes on the right, so long (wrapped) labels never cover the data."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              title="median; band: 5-95 %\nreplicate spread", title_fontsize=7)


def _nice_length(um: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k µm) close to ``um``."""
    k = 10.0 ** np.floor(np.log10(um))
    return float(max((m * k for m in (1, 2, 5) if m * k <= um), default=k))


def _scale_bar(ax, width_voxels: int, voxel_um: float) -> None:
    from matplotlib.offsetbox import AnchoredOffsetbox, AuxTransformBox, VPacker, TextArea
    from matplotlib.patches import Rectangle

    length_um = _nice_length(width_voxels * voxel_um / 4)
    n = length_um / voxel_um
    box = AuxTransformBox(ax.transData)
    box.add_artist(Rectangle((0, 0), n, max(width_voxels / 60, 0.4), fc="black", ec="white", lw=0.5))
    label = f"{length_um:g} µm" if length_um < 1000 else f"{length_um / 1000:g} mm"
    packed = VPacker(children=[box, TextArea(label, textprops=dict(size=7))], align="center", pad=0, sep=2)
    ax.add_artist(AnchoredOffsetbox(loc="lower right", child=packed, frameon=True, pad=0.2, borderpad=0.3))


def _voxel_um(res) -> float | None:
    import tomllib

    try:
        v = tomllib.loads(res.scenario_toml or "").get("domain", {}).get("voxel_um")
        return float(v) if v is not None else 20.0 if res.scenario_toml else None
    except (tomllib.TOMLDecodeError, TypeError, ValueError):
        return None


def _snapshot_figure(plt, lbl: str, r):
    """Lattice snapshots of arm ``r``: rows = first, middle, last snapshot time; columns = the
    fields; every panel with a labelled colour key (categories or units) and a scale bar."""
    from matplotlib.colors import ListedColormap

    S = r.snapshot_times.size
    picks = sorted({0, S // 2, S - 1})
    fields = [f for f in ("kind", "car_t", "o2", "ecm") if f in r.snapshots]
    vox = _voxel_um(r)
    Z = r.snapshots[fields[0]].shape[2]
    fig, axes = plt.subplots(len(picks), len(fields), figsize=(3.6 * len(fields), 3.1 * len(picks) + 0.8),
                             squeeze=False)
    for row, s in zip(axes, picks):
        for ax, f in zip(row, fields):
            a = r.snapshots[f][s, 0]
            a = a[a.shape[0] // 2]
            title, cats, colours = SNAPSHOT_FIELDS.get(f, (f, None, None))
            unit = r.units.get(f"/snapshots/{f}", "")
            if cats is not None:
                im = ax.imshow(a, cmap=ListedColormap(colours[:len(cats)]), vmin=-0.5,
                               vmax=len(cats) - 0.5, interpolation="nearest")
                cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, ticks=range(len(cats)))
                cb.ax.set_yticklabels(cats, fontsize=7)
                cb.set_label(title, fontsize=8)
            else:
                im = ax.imshow(a, cmap="viridis", interpolation="nearest")
                cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
                cb.ax.tick_params(labelsize=7)
                shown = "fraction, 0-1" if unit in ("1", "fraction") else unit
                cb.set_label(f"{title} ({shown})" if shown else title, fontsize=8)
            ax.set_title(f"{f}, day {r.snapshot_times[s]:.3g}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if vox:
                _scale_bar(ax, a.shape[1], vox)
    z = f", z slice {Z // 2 + 1} of {Z}" if Z > 1 else ""
    fig.suptitle(_wrap(f"{lbl}: replicate 0{z}", 90) + (f"\nvoxel {vox:g} µm" if vox else ""), fontsize=9)
    fig.tight_layout()
    return fig


def _save(fig, out: Path, name: str, written: list) -> None:
    fig.savefig(out / f"{name}.png", dpi=110)
    fig.savefig(out / f"{name}.svg")
    written.append(name)


def figures(plt, arms):
    """Yield ``(name, figure, caption)`` for ``arms`` (``(label, Results, path)``); the caller
    saves and closes each figure."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    col = lambda i: colours[i % len(colours)]
    wide = max(len(lbl) for lbl, _, _ in arms) > LABEL_WIDTH

    # tumour burden
    fig, ax = plt.subplots(figsize=(8.5 if wide else 7.5, 4.2))
    for i, (lbl, r, _) in enumerate(arms):
        _band(ax, r.time_days, r.timeseries["tumour_cells"], lbl, col(i))
    ax.set(xlabel="time (day)", ylabel="live tumour cells (cells)",
           title="Tumour burden: median and 5-95 % replicate spread")
    _legend(ax)
    fig.tight_layout()
    yield "tumour_burden", fig, f"Live tumour cells over time. {BAND_NOTE}; R = replicates per arm."

    # antigen classes: one panel per arm, titles wrapped
    n = len(arms)
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol + 1.6, 3.9 * nrow + 0.4), squeeze=False,
                             sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (lbl, r, _) in zip(axes.flat, arms):
        for j, (m, name) in enumerate(ANTIGEN_CLASSES):
            if m in r.timeseries:
                ax.plot(r.time_days, np.median(r.timeseries[m], axis=0), color=col(j), label=name)
        ax.set_xlabel("time (day)")
        ax.set_title(_wrap(f"{lbl} (R={r.replicates})", 40), fontsize=9)
    for row in axes:
        row[0].set_ylabel("tumour cells (cells, median)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                       title="antigen class", title_fontsize=8)
    fig.suptitle("Tumour cells by antigen class (median over replicates)")
    fig.tight_layout()
    yield "antigen_classes", fig, "Median tumour cells per antigen class over time, one panel per arm."

    # CAR-T in blood and tumour
    fig, axes = plt.subplots(1, 2, figsize=(12 if wide else 11, 4.0))
    for i, (lbl, r, _) in enumerate(arms):
        for ax, m in zip(axes, ("car_t_blood", "car_t_tumour")):
            if m in r.timeseries:
                _band(ax, r.time_days, r.timeseries[m], lbl, col(i))
    axes[0].set(xlabel="time (day)", ylabel="CAR-T cells (cells)", title="CAR-T cells in blood")
    axes[1].set(xlabel="time (day)", ylabel="CAR-T cells (cells)", title="CAR-T cells at tumour cells")
    _legend(axes[1])
    fig.tight_layout()
    yield "car_t", fig, f"CAR-T cells in blood and in or next to tumour cells. {BAND_NOTE}."

    # IL-6 (when the model writes it)
    il6 = sorted({m for _, r, _ in arms for m in r.timeseries if m.startswith("il6")})
    if il6:
        fig, axes = plt.subplots(1, len(il6), figsize=(5.5 * len(il6) + (2 if wide else 1), 4.0), squeeze=False)
        for ax, m in zip(axes[0], il6):
            for i, (lbl, r, _) in enumerate(arms):
                if m in r.timeseries:
                    _band(ax, r.time_days, r.timeseries[m], lbl, col(i))
            unit = arms[0][1].units.get(f"/timeseries/{m}", "")
            ax.set(xlabel="time (day)", ylabel=f"{m} ({unit})" if unit else m, title="IL-6")
        _legend(axes[0][-1])
        fig.tight_layout()
        yield "il6", fig, f"Plasma IL-6. {BAND_NOTE}."

    # infiltration depth and the soluble signals (files written before they existed lack them)
    if any("infiltration_depth_mean_um" in r.timeseries for _, r, _ in arms):
        fig, axes = plt.subplots(1, 2, figsize=(12 if wide else 11, 4.0))
        for i, (lbl, r, _) in enumerate(arms):
            for ax, m in zip(axes, ("infiltration_depth_mean_um", "infiltration_depth_p50_um")):
                if m in r.timeseries:
                    _nanband(ax, r.time_days, r.timeseries[m], lbl, col(i))
        for ax, what in zip(axes, ("mean", "median")):
            ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
            ax.set(xlabel="time (day)", ylabel="depth below the tumour boundary (µm)",
                   title=f"CAR-T infiltration depth: {what} over cells")
        _legend(axes[1])
        fig.tight_layout()
        yield ("infiltration_depth", fig,
               "Signed depth of the CAR-T cells below the tumour boundary (inward positive, µm; 0: the "
               "boundary; docs/io_format.md defines it), mean and median over each replicate's cells. "
               f"{BAND_NOTE}; gaps: no CAR-T cell in the domain.")
    sig = [(k, lbl) for k, lbl in (("ifng", "IFN-γ"), ("il12", "IL-12"), ("tgfb", "TGF-β"))
           if any(f"mean_{k}" in r.timeseries for _, r, _ in arms)]
    if sig:
        fig, axes = plt.subplots(1, len(sig), figsize=(4.6 * len(sig) + (2 if wide else 1), 3.8), squeeze=False)
        for ax, (k, name) in zip(axes[0], sig):
            for i, (lbl, r, _) in enumerate(arms):
                if f"mean_{k}" in r.timeseries:
                    _band(ax, r.time_days, r.timeseries[f"mean_{k}"], lbl, col(i))
            unit = arms[0][1].units.get(f"/timeseries/mean_{k}", "")
            ax.set(xlabel="time (day)", ylabel=f"domain mean ({unit})" if unit else "domain mean", title=name)
        _legend(axes[0][-1])
        fig.tight_layout()
        yield "signals", fig, f"Soluble signals, mean over the domain. {BAND_NOTE}."

    # radial profiles and exhaustion at the last output (median over replicates)
    have = [(lbl, r) for lbl, r, _ in arms if getattr(r, "profiles", None) and r.time_days.size]
    if have:
        fig, axes = plt.subplots(1, 3, figsize=(15 if wide else 14, 4.0))
        for i, (lbl, r) in enumerate(have):
            for ax, m in zip(axes, ("car_t_radial", "tumour_radial", "exhaustion_histogram")):
                if m not in r.profiles or m not in r.profile_edges:
                    continue
                e = r.profile_edges[m]
                y = np.median(r.profiles[m][:, -1, :], axis=0)
                ax.step(0.5 * (e[:-1] + e[1:]), y, where="mid", color=col(i),
                        label=_wrap(f"{lbl} (R={r.replicates})"))
        axes[0].set(xlabel="distance from the tumour centre (µm)", ylabel="cells per shell (median)",
                    title="CAR-T cells by radius")
        axes[1].set(xlabel="distance from the tumour centre (µm)", ylabel="cells per shell (median)",
                    title="Tumour cells by radius")
        axes[2].set(xlabel="exhaustion (fraction)", ylabel="CAR-T cells per bin (median)",
                    title="CAR-T exhaustion")
        axes[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                       title="median over replicates", title_fontsize=7)
        fig.tight_layout()
        yield ("profiles", fig, "At the last output: CAR-T and tumour cells per radial shell from the "
               "initial tumour centre, and CAR-T cells per exhaustion bin (medians over replicates).")

    # lattice snapshots
    for k, (lbl, r, _) in enumerate(arms):
        if not r.snapshot_times.size or "kind" not in r.snapshots:
            continue
        fig = _snapshot_figure(plt, lbl, r)
        yield (f"snapshots_{k}", fig,
               f"{lbl}: lattice of replicate 0 at the first, middle and last snapshot; colour keys "
               "give the cell kinds, CAR-T states and field units; the bar gives the length scale.")


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


def endpoint_section(arms) -> str:
    """HTML: the endpoint table (estimate, 95 % CI, n) of the complete arms, the log-rank test,
    the differences from the first arm, and every caveat, from :mod:`gpusim.analysis`."""
    from .compare import ComparisonError, HORIZON_TOL, endpoint_table
    from .table import _cell, _dcell

    e = lambda x: html.escape(x).replace(",", ",<wbr>")
    done = [(lbl, r) for lbl, r, _ in arms if r.status == "complete"]
    skipped = [lbl for lbl, r, _ in arms if r.status != "complete"]
    parts = ["<h2>Endpoints</h2>"]
    if skipped:
        parts.append(f"<p class=warn>Not in the table (endpoints not written yet): {e(', '.join(skipped))}.</p>")
    if not done:
        return "\n".join(parts + ["<p>No complete arm: no endpoint to show.</p>"])
    try:
        cmp = endpoint_table(done)
    except ComparisonError:
        # unequal follow-up: compare at the longest output time that every arm has
        common = set(np.round(done[0][1].time_days, 6))
        for _, r in done[1:]:
            common &= set(np.round(r.time_days, 6))
        H = max((t for t in common if t > HORIZON_TOL), default=None)
        fu = ", ".join(f"{lbl} {r.time_days[-1]:g} d" for lbl, r in done)
        if H is None:
            return "\n".join(parts + [f"<p class=warn>Arms have unequal follow-up ({e(fu)}) and no "
                                      "common output time: endpoints are not comparable.</p>"])
        cmp = endpoint_table(done, horizon=float(H))
        parts.append(f"<p class=warn>Arms have unequal follow-up ({e(fu)}): every endpoint below is "
                     f"re-derived at day {H:g}, the last output time they share; endpoints that the "
                     "stored time series do not determine say <em>not computable</em>.</p>")
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

    from .. import __version__

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

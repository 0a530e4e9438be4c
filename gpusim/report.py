"""Figures (PNG and SVG, matplotlib with the Agg backend) and an HTML index for result files.

:func:`report` takes one or more arms (result files, sweep directories or ``DIR:POINT``) and
writes into an output directory:

* ``tumour_burden``: live tumour cells over time, median and 5-95 % band per arm;
* ``antigen_classes``: median tumour cells per antigen class over time, one panel per arm;
* ``car_t``: CAR-T cells in blood and in the tumour (median and 5-95 % band per arm);
* ``il6``: every ``il6*`` metric, when the files have one (skipped otherwise);
* ``snapshots_<k>``: lattice snapshots of arm k (replicate 0, middle z slice; cell kind,
  CAR-T, oxygen, ECM) at the first, middle and last snapshot time;
* ``index.html``: a page showing every PNG and linking its SVG.

Needs the optional extra ``gpusim[plot]`` (matplotlib).
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import MissingExtraError, OutputError

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


def _band(ax, t, y, label, colour):
    ax.plot(t, np.median(y, axis=0), color=colour, label=label, lw=1.8)
    if y.shape[0] > 1:
        lo, hi = np.quantile(y, [0.05, 0.95], axis=0)
        ax.fill_between(t, lo, hi, color=colour, alpha=0.2, lw=0)


def _save(fig, out: Path, name: str, written: list) -> None:
    fig.savefig(out / f"{name}.png", dpi=110)
    fig.savefig(out / f"{name}.svg")
    written.append(name)


def report(inputs: Sequence[str], out_dir: str | os.PathLike, *, force: bool = False,
           warn=None) -> Path:
    """Write the figures and ``index.html`` for ``inputs`` into ``out_dir``; returns the page.

    A missing ``out_dir`` is built under a temporary name and moved into place at the end; an
    existing non-empty one is refused unless ``force``.  An input that cannot be read (damaged,
    truncated) is skipped with a line to ``warn``; OutputError when no input is left,
    MissingExtraError without matplotlib.
    """
    from .ensemble import open_inputs

    plt = _plt()
    arms = open_inputs(inputs, warn or (lambda m: None))  # damaged inputs: skipped, warned
    arms = [(lbl, r, p) for lbl, r, p in arms if r.time_days.size]
    if not arms:
        raise OutputError("report: no input holds any output interval yet")
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
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    col = lambda i: colours[i % len(colours)]
    written: list[str] = []
    try:
        # tumour burden
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, (lbl, r, _) in enumerate(arms):
            _band(ax, r.time_days, r.timeseries["tumour_cells"], lbl, col(i))
        ax.set(xlabel="time (day)", ylabel="live tumour cells",
               title="Tumour burden (median, 5-95 % band)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        _save(fig, work, "tumour_burden", written)
        plt.close(fig)

        # antigen classes
        fig, axes = plt.subplots(1, len(arms), figsize=(4.5 * len(arms), 3.8), squeeze=False, sharey=True)
        for ax, (lbl, r, _) in zip(axes[0], arms):
            for j, (m, name) in enumerate(ANTIGEN_CLASSES):
                if m in r.timeseries:
                    ax.plot(r.time_days, np.median(r.timeseries[m], axis=0), color=col(j), label=name)
            ax.set(xlabel="time (day)", title=lbl)
        axes[0][0].set_ylabel("tumour cells (median)")
        axes[0][0].legend(fontsize=8)
        fig.suptitle("Tumour cells by antigen class")
        fig.tight_layout()
        _save(fig, work, "antigen_classes", written)
        plt.close(fig)

        # CAR-T in blood and tumour
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for i, (lbl, r, _) in enumerate(arms):
            for ax, m in zip(axes, ("car_t_blood", "car_t_tumour")):
                if m in r.timeseries:
                    _band(ax, r.time_days, r.timeseries[m], lbl, col(i))
        axes[0].set(xlabel="time (day)", ylabel="cells", title="CAR-T cells in blood")
        axes[1].set(xlabel="time (day)", ylabel="cells", title="CAR-T cells at tumour cells")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        _save(fig, work, "car_t", written)
        plt.close(fig)

        # IL-6 (when the model writes it)
        il6 = sorted({m for _, r, _ in arms for m in r.timeseries if m.startswith("il6")})
        if il6:
            fig, axes = plt.subplots(1, len(il6), figsize=(5 * len(il6), 3.8), squeeze=False)
            for ax, m in zip(axes[0], il6):
                for i, (lbl, r, _) in enumerate(arms):
                    if m in r.timeseries:
                        _band(ax, r.time_days, r.timeseries[m], lbl, col(i))
                unit = arms[0][1].units.get(f"/timeseries/{m}", "")
                ax.set(xlabel="time (day)", ylabel=f"{m} ({unit})" if unit else m, title="IL-6")
                ax.legend(fontsize=8)
            fig.tight_layout()
            _save(fig, work, "il6", written)
            plt.close(fig)

        # lattice snapshots
        for k, (lbl, r, _) in enumerate(arms):
            if not r.snapshot_times.size or "kind" not in r.snapshots:
                continue
            S = r.snapshot_times.size
            picks = sorted({0, S // 2, S - 1})
            fields = [f for f in ("kind", "car_t", "o2", "ecm") if f in r.snapshots]
            fig, axes = plt.subplots(len(picks), len(fields), figsize=(3.2 * len(fields), 3 * len(picks)),
                                     squeeze=False)
            for row, s in zip(axes, picks):
                for ax, f in zip(row, fields):
                    a = r.snapshots[f][s, 0]
                    a = a[a.shape[0] // 2]
                    if f == "kind":
                        from matplotlib.colors import ListedColormap
                        im = ax.imshow(a, cmap=ListedColormap(KIND_COLOURS), vmin=-0.5, vmax=6.5,
                                       interpolation="nearest")
                    elif f == "car_t":
                        from matplotlib.colors import ListedColormap
                        im = ax.imshow(a, cmap=ListedColormap(["#ffffff", "#1e8449", "#b7950b"]),
                                       vmin=-0.5, vmax=2.5, interpolation="nearest")
                    else:
                        im = ax.imshow(a, cmap="viridis", interpolation="nearest")
                        fig.colorbar(im, ax=ax, fraction=0.046)
                    ax.set_title(f"{f}, day {r.snapshot_times[s]:g}", fontsize=9)
                    ax.set_xticks([])
                    ax.set_yticks([])
            fig.suptitle(f"{lbl}: replicate 0 (kind: " + ", ".join(
                f"{i} {n}" for i, n in enumerate(KIND_NAMES)) + "; CAR-T: 1 effector, 2 exhausted)",
                fontsize=8)
            fig.tight_layout()
            _save(fig, work, f"snapshots_{k}", written)
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


def _html(arms, figures: list[str]) -> str:
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(lbl)}</td><td>{e(str(p))}</td><td>{r.replicates}</td><td>{e(r.status)}</td>"
        f"<td>{r.time_days[-1]:g}</td></tr>" for lbl, r, p in arms)
    figs = "\n".join(
        f'<figure id="{e(n)}"><img src="{e(n)}.png" alt="{e(n)}">'
        f'<figcaption>{e(n)} (<a href="{e(n)}.svg">SVG</a>)</figcaption></figure>' for n in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gpusim report</title>
<style>body{{font-family:sans-serif;margin:1.5em}} img{{max-width:100%}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 8px}}</style></head>
<body><h1>gpusim report</h1>
<table><tr><th>arm</th><th>file</th><th>replicates</th><th>status</th><th>last day</th></tr>
{rows}</table>
{figs}
</body></html>
"""

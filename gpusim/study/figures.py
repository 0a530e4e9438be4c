"""The figures of a report (matplotlib with the Agg backend): :func:`figures` yields each one.

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

import textwrap
from pathlib import Path

import numpy as np

from ..errors import MissingExtraError

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


def _fig_tumour_burden(plt, arms, col, wide):
    """Live tumour cells over time, one band per arm."""
    fig, ax = plt.subplots(figsize=(8.5 if wide else 7.5, 4.2))
    for i, (lbl, r, _) in enumerate(arms):
        _band(ax, r.time_days, r.timeseries["tumour_cells"], lbl, col(i))
    ax.set(xlabel="time (day)", ylabel="live tumour cells (cells)",
           title="Tumour burden: median and 5-95 % replicate spread")
    _legend(ax)
    fig.tight_layout()
    yield "tumour_burden", fig, f"Live tumour cells over time. {BAND_NOTE}; R = replicates per arm."


def _fig_antigen_classes(plt, arms, col, wide):
    """Median tumour cells per antigen class, one panel per arm."""
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


def _fig_car_t(plt, arms, col, wide):
    """CAR-T cells in blood and at tumour cells."""
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


def _fig_il6(plt, arms, col, wide):
    """Plasma IL-6 (when the model writes it)."""
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


def _fig_infiltration(plt, arms, col, wide):
    """CAR-T infiltration depth (files written before it existed lack it)."""
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


def _fig_signals(plt, arms, col, wide):
    """Soluble signals, domain means (files written before they existed lack them)."""
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


def _fig_profiles(plt, arms, col, wide):
    """Radial profiles and exhaustion at the last output (median over replicates)."""
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


def _fig_snapshots(plt, arms, col, wide):
    """Lattice snapshots of replicate 0, one figure per arm."""
    for k, (lbl, r, _) in enumerate(arms):
        if not r.snapshot_times.size or "kind" not in r.snapshots:
            continue
        fig = _snapshot_figure(plt, lbl, r)
        yield (f"snapshots_{k}", fig,
               f"{lbl}: lattice of replicate 0 at the first, middle and last snapshot; colour keys "
               "give the cell kinds, CAR-T states and field units; the bar gives the length scale.")


def figures(plt, arms):
    """Yield ``(name, figure, caption)`` for ``arms`` (``(label, Results, path)``); the caller
    saves and closes each figure."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    col = lambda i: colours[i % len(colours)]
    wide = max(len(lbl) for lbl, _, _ in arms) > LABEL_WIDTH
    for make in (_fig_tumour_burden, _fig_antigen_classes, _fig_car_t, _fig_il6,
                 _fig_infiltration, _fig_signals, _fig_profiles, _fig_snapshots):
        yield from make(plt, arms, col, wide)

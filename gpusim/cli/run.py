"""Commands about one run: ``run``, ``summary``, ``resume``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import numpy as np

from ..study.stats import wilson as _wilson  # one implementation, in study/stats.py
from .group import FORCE_MEMORY_HELP, SET_HELP, _errors, _memory_check, main


@main.command()
@click.argument("scenario")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="HDF5 output file [default: results/<scenario>.h5].")
@click.option("-r", "--replicates", type=int, default=None, help="Number of replicates.")
@click.option("--first-replicate", type=int, default=None,
              help="Global index of the first replicate: runs K..K+N-1 (same results as in any batch).")
@click.option("--days", type=float, default=None, help="Simulated days.")
@click.option("--seed", type=int, default=None, help="Random seed (0 .. 2**32-1).")
@click.option("--backend", type=click.Choice(["auto", "numpy", "cupy", "emulated"]), default=None,
              help="Compute backend [default: the scenario's, normally auto].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--workers", type=int, default=None, metavar="N",
              help="Split the replicates over N local Dask worker processes (needs gpusim[dask]).")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Split the replicates over the Dask cluster at ADDRESS (tcp://host:8786).")
@click.option("--force-memory", is_flag=True, help=FORCE_MEMORY_HELP)
@_errors
def run(scenario, out, replicates, first_replicate, days, seed, backend, sets, force, quiet,
        workers, dask_address, force_memory):
    """Run SCENARIO (a bundled name or a .toml path) and stream the results to HDF5."""
    from ..study.runner import resolve, run as run_api

    sc = resolve(scenario, replicates=replicates, first_replicate=first_replicate, seed=seed,
                 days=days, backend=backend, overrides=sets)
    if dask_address is None:  # a remote cluster's memory is not this machine's
        _memory_check(sc, force_memory, quiet)
    if out is None:
        out = Path("results") / f"{sc.name}.h5"
        out.parent.mkdir(exist_ok=True)
    log = None if quiet else (lambda m: click.echo(m, err=True))
    bar = None
    progress = None
    if not quiet and sys.stderr.isatty():
        bar = click.progressbar(length=1, label=f"{sc.name}", file=sys.stderr, show_eta=True)

        def progress(done, total):
            bar.length = total
            bar.update(done - bar.pos)

    try:
        if workers is not None or dask_address is not None:
            res = _run_dask(sc, out, force, workers, dask_address, log)
        else:
            res = run_api(sc, out, force=force, progress=progress, log=log)
    finally:
        if bar is not None:
            bar.render_finish()
    if not quiet:
        click.echo(f"wrote {out}")
        _print_summary(res)


@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("--untreated", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="An untreated control run (e.g. of the same tissue with delivery.dose_cells=0): "
                   "also show the tumour size relative to it.")
@_errors
def summary(results, untreated):
    """Endpoints and ensemble statistics of a result file (also while it is being written)."""
    from ..io import open_results

    res = open_results(results)
    _print_summary(res)
    if untreated is not None:
        _print_untreated_ratio(res, open_results(untreated))


def _print_untreated_ratio(res, control) -> None:
    from ..study.compare import ratio_to_untreated

    u = ratio_to_untreated(res, control)
    s = f"  {'tumour vs untreated':<28} day {u.day:g}: ratio of means {u.ratio_of_means:.3g}"
    if u.paired is not None:
        s += (f"; paired per replicate median {np.median(u.paired):.3g} "
              f"(range {np.min(u.paired):.3g}..{np.max(u.paired):.3g})")
    click.echo(s)


def _status(res) -> str:
    """The status to show: a 'running' file whose writer is gone reads 'interrupted'."""
    now = getattr(res, "status_now", res.status) if res.path is not None else res.status
    return now if now == res.status else f"{now} (writer gone; 'gpusim resume {res.path}' continues it)"


def _named_bins(res, name: str) -> list[str]:
    """Labels of the bins of profile ``name`` ('product 1 (B)'), from its edges' description."""
    desc = res.descriptions.get(f"/profiles/bin_edges/{name}", "")
    names = dict(re.findall(r"(\d+) = '([^']*)'", desc))
    word = name.split("_")[-1]
    return [f"{word} {k}" + (f" ({names[str(k)]})" if str(k) in names else "")
            for k in range(res.profiles[name].shape[-1])]


def _product_rows(res) -> list:
    """Summary rows per CAR-T product and per dose (runs with more than one): cells in the tissue
    and entrants so far, from the ``car_t_product``, ``entered_product`` and ``entered_dose``
    profiles."""
    prof = getattr(res, "profiles", {}) or {}
    rows = []
    if "car_t_product" in prof and prof["car_t_product"].shape[-1] > 1:
        for k, tag in enumerate(_named_bins(res, "car_t_product")):
            rows.append((f"{tag} CAR-T (now)", None, prof["car_t_product"][:, -1, k]))
            if "entered_product" in prof:
                rows.append(("  entered so far", None, prof["entered_product"][:, -1, k]))
    if "entered_dose" in prof and prof["entered_dose"].shape[-1] > 1:
        for k, tag in enumerate(_named_bins(res, "entered_dose")):
            rows.append((f"{tag} entered", None, prof["entered_dose"][:, -1, k]))
    return rows


def _print_summary(res) -> None:
    a = res.attrs
    R = res.replicates
    t = res.time_days[-1] if res.time_days.size else 0.0
    click.echo(f"scenario {a.get('scenario_name', '?')}: {R} replicate(s), seed {a.get('seed')}, "
               f"backend {a.get('backend')}, status {_status(res)}, t = {t:g} days")
    ts = res.timeseries
    if res.time_days.size:
        rows = [("tumour cells (start -> now)", ts["tumour_cells"][:, 0], ts["tumour_cells"][:, -1]),
                ("CAR-T in tissue (now)", None, ts["car_t_tissue"][:, -1]),
                ("tumour cells killed", None, ts["kills_tumour"][:, -1])]
        # memory CAR-T (car_t.memory_*): shown only when the run formed any
        if "car_t_memory" in ts and np.any(ts["car_t_memory"]):
            rows.append(("CAR-T memory cells (now)", None, ts["car_t_memory"][:, -1]))
        rows += _product_rows(res)
        for label, a0, a1 in rows:
            s = f"  {label:<28} mean {np.mean(a1):10.1f}  median {np.median(a1):10.1f}  range {np.min(a1):g}..{np.max(a1):g}"
            if a0 is not None:
                s = (f"  {label:<28} {np.mean(a0):.1f} -> mean {np.mean(a1):.1f}, median "
                     f"{np.median(a1):.1f}, range {np.min(a1):g}..{np.max(a1):g}")
            click.echo(s)
        if "infiltration_depth_mean_um" in ts:  # files written before it existed lack it
            d = ts["infiltration_depth_mean_um"][:, -1]
            if np.isfinite(d).any():
                p50 = ts["infiltration_depth_p50_um"][:, -1]
                click.echo(f"  {'CAR-T depth in tumour (now)':<28} mean {np.nanmedian(d):.3g} µm, median "
                           f"{np.nanmedian(p50):.3g} µm (medians over replicates; inward positive)")
    ep = res.endpoints
    if res.status == "complete" and ep:
        n = len(ep["cleared"])
        k = int(np.sum(ep["cleared"]))
        lo, hi = _wilson(k, n)
        click.echo(f"  cleared                      {k}/{n} ({100 * k / n:.0f} %, 95 % CI {100 * lo:.0f}-{100 * hi:.0f} %)")
        e = int(np.sum(ep["antigen_escape"]))
        lo, hi = _wilson(e, n)
        click.echo(f"  antigen escape               {e}/{n} ({100 * e / n:.0f} %, 95 % CI {100 * lo:.0f}-{100 * hi:.0f} %)")
        for name, label in (("best_response", "best response (ratio)"),
                            ("final_tumour_ratio", "final tumour ratio"),
                            ("car_t_peak", "CAR-T peak in domain"),
                            ("healthy_damage", "healthy antigen+ damage"),
                            ("peak_il6", "peak IL-6 (pg/mL)"),
                            ("crs_grade", "CRS grade"),
                            ("icans_index", "ICANS index")):
            if name not in ep:
                continue
            v = np.asarray(ep[name], dtype=float)
            click.echo(f"  {label:<28} median {np.median(v):.3g}  (range {np.min(v):.3g}..{np.max(v):.3g})")
        _print_outputs(ep, n)
    elif res.status != "complete":
        click.echo(f"  endpoints: not yet written (status {_status(res).split(' ', 1)[0]})")


def _print_outputs(ep, n: int) -> None:
    """The observation endpoints (progression, persistence, signal peaks, final counts), when the
    file has them (files written before they existed lack them)."""
    if "progressed" in ep:
        k = int(np.sum(np.asarray(ep["progressed"]) == 1))
        t = np.asarray(ep["time_to_progression_days"], dtype=float)
        t = t[np.isfinite(t)]
        s = f"  {'progressed':<28} {k}/{n}"
        if t.size:
            s += f", at day {np.median(t):.3g} (median of those; range {t.min():.3g}..{t.max():.3g})"
        click.echo(s)
    if "car_t_persistence_days" in ep:
        v = np.asarray(ep["car_t_persistence_days"], dtype=float)
        s = f"  {'CAR-T persistence (days)':<28} median {np.median(v):.3g}  (range {v.min():.3g}..{v.max():.3g}"
        if "car_t_persistence_censored" in ep:  # older files: the last step with any CAR-T cell
            c = int(np.sum(np.asarray(ep["car_t_persistence_censored"]) == 1))
            s += f"; still persisting at the end: {c}/{n}"
        click.echo(s + ")")
    sig = [(k, lbl) for k, lbl in (("ifng", "IFN-γ"), ("il12", "IL-12"), ("tgfb", "TGF-β"))
           if f"peak_mean_{k}" in ep]
    if sig:
        click.echo(f"  {'peak signal, mean/max (a.u.)':<28} " + ", ".join(
            f"{lbl} {np.median(ep[f'peak_mean_{k}']):.3g}/{np.median(ep[f'peak_max_{k}']):.3g}" for k, lbl in sig))
    if "final_car_t_effector" in ep:
        med = lambda k: f"{np.median(np.asarray(ep[k], dtype=float)):g}"
        click.echo(f"  {'final CAR-T eff/exh/mem':<28} {med('final_car_t_effector')} / "
                   f"{med('final_car_t_exhausted')} / {med('final_car_t_memory')} (medians)")
        cls = ", ".join(f"{lbl} {med('final_tumour_' + k)}" for k, lbl in (
            ("a_pos_b_pos", "A+B+"), ("a_pos_b_neg", "A+B-"), ("a_neg_b_pos", "A-B+"), ("a_neg_b_neg", "A-B-")))
        click.echo(f"  {'final tumour by class':<28} {cls}; healthy {med('final_healthy_cells')}, "
                   f"necrotic {med('final_necrotic_voxels')} (medians)")


def _run_dask(sc, out, force, workers, address, log):
    from ..study.distributed import Cluster, run_distributed
    from ..study.runner import _precheck_output

    _precheck_output(Path(out), force)  # before starting or reaching any cluster
    with Cluster(workers=workers, address=address) as cl:
        return run_distributed(sc, out, cl, force=force, log=log)

@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_errors
def resume(results, quiet):
    """Continue an interrupted run from its last checkpoint (same results as a straight run)."""
    from ..study.runner import resume as resume_api

    log = None if quiet else (lambda m: click.echo(m, err=True))
    res = resume_api(results, log=log)
    if not quiet:
        click.echo(f"wrote {results}")
        _print_summary(res)

"""The ``gpusim`` command line.  Thin: parses, calls the API, prints.

Every user error (bad scenario, existing output, missing backend) ends with one line on stderr
and exit status 2, and creates or changes no file.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__
from .errors import GpusimError

SET_HELP = ("Override one parameter, e.g. --set car_t.targets='A|B' or --set run.days=3 "
            "(repeatable; see 'gpusim params').")


def _errors(fn):
    """Turn a GpusimError into one clear line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GpusimError as e:
            msg = " ".join(line.strip() for line in str(e).splitlines())  # always one line
            click.echo(f"gpusim: error: {msg}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gpusim")
def main():
    """gpusim: stochastic simulations of CAR-T cell therapy in solid tumours.

    \b
    Start here:
      gpusim scenarios                      list the bundled scenarios
      gpusim show quickstart                print a scenario with every parameter
      gpusim run quickstart -o out.h5       run it, streaming results to HDF5
      gpusim summary out.h5                 endpoints and ensemble statistics
    """


@main.command()
def info():
    """Versions, the backends available here, and the device."""
    import h5py

    from .backends import cpu_description, cupy_status

    click.echo(f"gpusim {__version__}")
    from importlib.metadata import version

    click.echo(f"python {sys.version.split()[0]}, numpy {np.__version__}, h5py {h5py.__version__}, "
               f"click {version('click')}")
    click.echo(f"backend numpy: available, {cpu_description()}")
    ok, desc = cupy_status(run_check=False)
    click.echo(f"backend cupy: {'available, ' if ok else 'not available: '}{desc}")
    click.echo(f"backend auto: would use {'cupy' if ok else 'numpy'}")
    # ---- GPU details (backends) ----
    from .backends import gpu_details

    for k, v in gpu_details().items():
        click.echo(f"{k}: {v}")


@main.command()
@click.option("--backend", type=click.Choice(["cupy", "emulated"]), default="cupy", show_default=True,
              help="The device backend to check (emulated: the same step with the kernels compiled "
                   "for this CPU).")
@click.option("--steps", type=int, default=None, help="Steps per scenario (default: the self-check's).")
@_errors
def selftest(backend, steps):
    """Check the device step bitwise against the NumPy engine on several bundled scenarios, now
    (the verdict is cached and decides whether 'auto' uses the GPU).  Exit status 2 on a
    mismatch, naming the first differing array and step and the report file written."""
    from .backends import gpu_device, selfcheck
    from .errors import BackendError

    n = steps if steps is not None else selfcheck.STEPS
    if n < 1:
        raise BackendError(f"--steps must be at least 1, got {n}")
    if backend == "emulated":
        from .testing.emulated import EmulatedRuntime

        m = selfcheck.verify(EmulatedRuntime(order=2), steps=n)
        if m is not None:
            raise BackendError(f"emulated device differs from the NumPy engine: scenario {m.scenario}, "
                               f"{m.what} first at step {m.step} ({m.detail})")
        click.echo(f"emulated device: {len(selfcheck.SCENARIOS)} scenarios x {n} steps bitwise equal "
                   "to the NumPy engine")
        return
    from .backends import nvrtc

    dev, driver, why = gpu_device()
    if dev is None:
        raise BackendError(f"selftest --backend cupy: {why}")
    ok, nv = nvrtc.available()
    if not ok:
        raise BackendError(f"selftest --backend cupy: {nv}")
    from .backends.cupy_backend import runtime

    v = selfcheck.check(runtime(), dev, driver, force=True, steps=n)
    if not v.passed:
        raise BackendError(f"GPU {dev} failed the self-check: {v.detail}; report: {v.report}")
    click.echo(f"GPU {dev}, driver {driver}: passed ({v.detail}, {v.seconds:.1f} s); verdict cached")


@main.command()
@_errors
def scenarios():
    """The bundled scenarios, one line each."""
    from .scenario import bundled

    items = bundled()
    width = max(len(n) for n in items)
    for name, desc in items.items():
        click.echo(f"{name:<{width}}  {desc}")


@main.command()
@click.argument("scenario")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@_errors
def show(scenario, sets):
    """Print SCENARIO (a bundled name or a .toml path) fully resolved, as TOML that runs as is."""
    from .scenario import load_scenario

    click.echo(load_scenario(scenario, sets).to_toml(), nl=False)


@main.command()
@click.option("--markdown", is_flag=True, help="Print the reference as Markdown (docs/parameters.md).")
def params(markdown):
    """Every parameter: key, default, allowed values, description, source."""
    from .params import PARAMS
    from .scenario import _toml_value, parameter_reference_markdown

    if markdown:
        click.echo(parameter_reference_markdown(), nl=False)
        return
    for p in PARAMS:
        click.echo(f"{p.key} = {_toml_value(p.default)}  # {p.doc} [{p.source}]")


# ---- memory estimate before run, sweep, bench (issue 13) ----
FORCE_MEMORY_HELP = ("Run even when the memory estimate exceeds the memory available here "
                     "(host, and the GPU for --backend cupy).")


def _memory_check(sc, force: bool, quiet: bool, replicates=None, backend=None) -> None:
    """Refuse (MemoryLimitError: exit 2, one line) a run whose memory estimate exceeds what is
    available, before anything is allocated or any file exists; else log the estimate."""
    from .backends import select
    from .memory import _fmt, check, host_available

    be = select(backend or sc["run.backend"]).name
    est = check(sc, replicates, be, force=force)
    if not quiet:
        avail = host_available()
        dev = f", GPU about {_fmt(est.device)}" if est.device is not None else ""
        click.echo(f"memory: about {_fmt(est.host)} host{dev}"
                   + (f" ({_fmt(avail)} available)" if avail is not None else ""), err=True)


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
    from .runner import resolve, run as run_api

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
    from .io import open_results

    res = open_results(results)
    _print_summary(res)
    if untreated is not None:
        _print_untreated_ratio(res, open_results(untreated))


def _print_untreated_ratio(res, control) -> None:
    from .analysis import ratio_to_untreated

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


from .analysis import wilson as _wilson  # noqa: E402  (one implementation, in analysis.py)


# ---- ensembles: sweep, compare, report, resume, Dask (begin) ---------------------------------
def _run_dask(sc, out, force, workers, address, log):
    from .ensemble import Cluster, run_distributed
    from .runner import _precheck_output

    _precheck_output(Path(out), force)  # before starting or reaching any cluster
    with Cluster(workers=workers, address=address) as cl:
        return run_distributed(sc, out, cl, force=force, log=log)


@main.command()
@click.argument("scenario")
@click.option("-g", "--grid", "grids", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="A swept parameter and its values (repeatable; the points are the Cartesian product).")
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
              help="Sweep directory (one result file per point + index.json) [default: results/<scenario>_sweep].")
@click.option("-r", "--replicates", type=int, default=None, help="Replicates per point.")
@click.option("--days", type=float, default=None, help="Simulated days.")
@click.option("--seed", type=int, default=None, help="Random seed (0 .. 2**32-1).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Replace a different sweep found in the directory.")
@click.option("--workers", type=int, default=None, metavar="N", help="Run each point on N local Dask workers.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS", help="Run on the Dask cluster at ADDRESS.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--force-memory", is_flag=True, help=FORCE_MEMORY_HELP)
@_errors
def sweep(scenario, grids, out, replicates, days, seed, sets, force, workers, dask_address, quiet,
          force_memory):
    """Run SCENARIO over a parameter grid; run it again to continue an interrupted sweep."""
    import contextlib

    from .ensemble import Cluster, parse_grid, plan_sweep, sweep as sweep_api

    grid = parse_grid(grids)
    base, points = plan_sweep(scenario, grid, replicates=replicates, days=days, seed=seed, overrides=sets)
    if dask_address is None:  # the points run one after another: each must fit on its own
        from .backends import select
        from .memory import check_many

        check_many([(p.scenario, None, select(p.scenario["run.backend"]).name,
                     f"sweep point {p.id} {p.params}") for p in points], force=force_memory)
    if out is None:
        out = Path("results") / f"{base.name}_sweep"
        out.parent.mkdir(exist_ok=True)
    log = None if quiet else (lambda m: click.echo(m, err=True))
    if log:
        log(f"{len(points)} point(s) x {base['run.replicates']} replicate(s) -> {out}")
    ctx = (Cluster(workers=workers, address=dask_address) if workers is not None or dask_address
           else contextlib.nullcontext())
    with ctx as cl:
        sweep_api(base, out, grid, force=force, cluster=cl, log=log)
    if not quiet:
        click.echo(f"wrote {out}")


@main.command()
@click.argument("results", nargs=-1, required=True)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as CSV (long format) to this file.")
@click.option("--horizon", type=float, default=None, metavar="DAYS",
              help="Compare every arm up to day DAYS (an output time of every arm), re-deriving "
                   "endpoints there; needed when the arms ran for different lengths.")
@click.option("--reference", default=None, metavar="FILE_OR_LABEL",
              help="The arm the others are compared with (an input's label or file, or another "
                   "result file) [default: the first arm].")
@click.option("--force", is_flag=True, help="Overwrite an existing --csv file.")
@_errors
def compare(results, csv_path, horizon, reference, force):
    """Endpoints of arms side by side with 95 % confidence intervals, and differences from a
    reference arm (paired when arms share seed and replicate indices).

    RESULTS: result files, sweep directories (every point) or DIR:POINT (one point).
    """
    from .analysis import endpoint_table, format_table, write_csv
    from .ensemble import open_inputs
    from .errors import OutputError
    from .runner import _precheck_output

    def load(items):
        for label, res, path in open_inputs(items, lambda m: click.echo(m, err=True)):
            if res.status != "complete":
                click.echo(f"note: skipping {label} ('{path}'): status {res.status_now}, endpoints not written", err=True)
                continue
            yield label, path, res

    if csv_path is not None:  # before anything is printed
        _precheck_output(csv_path, force)
    arms, paths = [], []
    for label, path, res in load(results):
        if label in [a for a, _ in arms]:
            label = f"{label} ({path})"
        arms.append((label, res))
        paths.append(Path(path))
    if not arms:
        raise OutputError("compare: none of the inputs is a complete result")
    ref = None
    if reference is not None:
        labels = [a for a, _ in arms]
        by_path = [a for a, p in zip(labels, paths) if Path(reference).exists() and p.resolve() == Path(reference).resolve()]
        if reference in labels:
            ref = reference
        elif by_path:
            ref = by_path[0]
        else:
            try:
                extra = list(load([reference]))
            except OutputError as e:
                raise OutputError(f"compare: --reference '{reference}' is neither an arm "
                                  f"({', '.join(labels)}) nor a readable result: {e}") from None
            if len(extra) != 1:
                raise OutputError(f"compare: --reference '{reference}' must be one complete result")
            ref = extra[0][0] if extra[0][0] not in labels else f"{extra[0][0]} ({extra[0][1]})"
            arms.insert(0, (ref, extra[0][2]))
    cmp = endpoint_table(arms, horizon=horizon, reference=ref)
    click.echo(format_table(cmp))
    if csv_path:
        try:
            write_csv(cmp, csv_path)
        except OSError as e:
            raise OutputError(f"cannot write '{csv_path}': {e.strerror or e}") from None
        click.echo(f"wrote {csv_path}")


@main.command()
@click.argument("results", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the figures (PNG, SVG) and index.html [default: <first input>_report].")
@click.option("--force", is_flag=True, help="Write into an existing, non-empty directory.")
@_errors
def report(results, out_dir, force):
    """Figures and an HTML page for result files (each an arm), sweep directories or DIR:POINT."""
    from .report import report as report_api

    if out_dir is None:
        first = Path(results[0].rsplit(":", 1)[0] if not Path(results[0]).exists() else results[0])
        out_dir = first.parent / f"{first.stem}_report"
    page = report_api(results, out_dir, force=force, warn=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {page}")


@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_errors
def resume(results, quiet):
    """Continue an interrupted run from its last checkpoint (same results as a straight run)."""
    from .runner import resume as resume_api

    log = None if quiet else (lambda m: click.echo(m, err=True))
    res = resume_api(results, log=log)
    if not quiet:
        click.echo(f"wrote {results}")
        _print_summary(res)
# ---- ensembles (end) ---------------------------------------------------------------------------


# ---- validation (begin) ------------------------------------------------------------------------
@main.command()
@click.option("--quick", is_flag=True,
              help="Reduced sample sizes (the CI set, about a minute on 2 cores).")
@click.option("--backend", type=click.Choice(["auto", "numpy", "cupy", "emulated"]), default="auto",
              help="Compute backend [default: auto].")
@click.option("--case", "cases", multiple=True, metavar="NAME",
              help="Run only this case (repeatable): rng, birth_death, antigen_loss, motility, "
                   "fields, well_mixed.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option("--figures", type=click.Path(file_okay=False), default=None,
              help="Write one PNG per case into this directory (needs matplotlib).")
@_errors
def validate(quick, backend, cases, seed, figures):
    """Run the validation cases against exact and published results; exit 1 if any fails.

    Per case a table: expected value, measured value ± 95 % CI, tolerance, verdict.
    Tolerances derive from the sample size and a false-failure budget of 1e-3 for the whole
    suite (docs/validation.md).
    """
    from .validation import check_arguments, resolve_backend, run_validation

    check_arguments(cases, seed)
    be = resolve_backend(backend)
    click.echo(f"gpusim validate: backend {be.name}{f' ({be.reason})' if be.reason else ''}, "
               f"seed {seed}, {'quick' if quick else 'full'} sample sizes")
    res = run_validation(cases or None, quick=quick, seed=seed, figures=figures,
                         log=lambda m: click.echo(m), backend=be.name)
    failed = [r.name for r in res if not r.passed]
    click.echo(f"{len(res) - len(failed)}/{len(res)} cases passed"
               + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)
# ---- validation (end) --------------------------------------------------------------------------


# ---- performance harness: bench (begin) -----------------------------------------------------
@main.command()
@click.argument("scenarios", nargs=-1)
@click.option("--size", "sizes", type=int, multiple=True, metavar="N",
              help="Lattice edge in voxels (x and y; repeatable). Default: the scenario's own.")
@click.option("-r", "--replicates", type=int, default=None, help="Batch size (default: the scenario's).")
@click.option("--steps", type=int, default=20, show_default=True, help="Timed steps per row.")
@click.option("--warmup", type=int, default=2, show_default=True, help="Untimed steps before timing.")
@click.option("--backend", "backends", type=click.Choice(["auto", "numpy", "cupy"]), multiple=True,
              help="Backend to time (repeatable; auto: the one 'run' would take). "
                   "Default: every backend that can run here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the full record (device, commit, date, per-phase times) as JSON.")
@click.option("--force", is_flag=True, help="Overwrite an existing --json file.")
@click.option("--force-memory", is_flag=True, help=FORCE_MEMORY_HELP)
@click.option("--fields", "fields_cases", default=None, metavar="CASES",
              help="Instead: the field-solver benchmark (sweeps and error against the float64 "
                   "converged solve per field, time per voxel-sweep, device bytes per voxel-step) "
                   "on NumPy for comma-separated cases N (2D N^2) or Nx3 (3D N^3); 'default' is "
                   "100,400,75x3 (docs/fields.md).")
@_errors
def bench(scenarios, sizes, replicates, steps, warmup, backends, json_path, force, force_memory,
          fields_cases):
    """Time SCENARIOS (default: quickstart) on each backend, side by side: steps/s,
    voxel-steps/s, set-up time apart from stepping, and the ratio between backends."""
    from pathlib import Path as _P

    if fields_cases is not None:
        if sizes or set(backends) - {"numpy"}:
            from .errors import ScenarioError
            raise ScenarioError("bench --fields runs on the NumPy backend at its own sizes; choose them "
                                "with --fields 100,400,75x3 (no --size, --backend numpy only)")
        return _bench_fields(fields_cases, scenarios, replicates, steps, warmup, json_path, force)

    from .backends import select
    from .bench import format_table, run_bench, write_json
    from .errors import OutputError, ScenarioError
    from .params import BY_KEY

    lo, hi = BY_KEY["domain.x_voxels"].lo, BY_KEY["domain.x_voxels"].hi
    for n in sizes:
        if not lo <= n <= hi:
            raise ScenarioError(f"--size {n}: out of range; allowed: {lo:g} .. {hi:g} voxels (domain.x_voxels)")
    backends = tuple(dict.fromkeys(select("auto").name if b == "auto" else b for b in backends))
    if json_path and _P(json_path).exists() and not force:
        raise OutputError(f"{json_path} exists; pass --force to overwrite it")
    rec = run_bench(scenarios or ("quickstart",), sizes or (None,), backends or None, replicates,
                    steps, warmup, log=lambda m: click.echo(m, err=True) if sys.stderr.isatty() else None,
                    force_memory=force_memory)
    click.echo(format_table(rec))
    if json_path:
        click.echo(f"wrote {write_json(rec, json_path, force)}")


def _bench_fields(cases, scenarios, replicates, steps, warmup, json_path, force):
    """``bench --fields``: gpusim.fieldbench on this checkout (steps and warm-up as given)."""
    from .bench import write_json
    from .errors import OutputError, ScenarioError
    from .fieldbench import DEFAULT_CASES, format_table, run_field_bench

    if scenarios:
        raise ScenarioError("bench --fields takes no SCENARIOS (its cases are iv_baseline 2D and "
                            "large_3d 3D); choose sizes with --fields 100,400,75x3")
    if json_path and Path(json_path).exists() and not force:
        raise OutputError(f"{json_path} exists; pass --force to overwrite it")
    names = DEFAULT_CASES if cases.strip() in ("", "default") else cases.split(",")
    try:
        rec = run_field_bench(names, replicates, steps, warmup,
                              log=lambda m: click.echo(m, err=True) if sys.stderr.isatty() else None)
    except ValueError as e:
        raise ScenarioError(str(e)) from None
    click.echo(format_table(rec))
    if json_path:
        click.echo(f"wrote {write_json(rec, json_path, force)}")
# ---- performance harness: bench (end) -------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover  (last: every command is registered above)
    main()

"""Commands about ensembles of runs: ``sweep``, ``compare``, ``report``, ``bench``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .group import FORCE_MEMORY_HELP, SET_HELP, _errors, main


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

    from ..study.distributed import Cluster
    from ..study.sweep import parse_grid, plan_sweep, sweep as sweep_api

    grid = parse_grid(grids)
    base, points = plan_sweep(scenario, grid, replicates=replicates, days=days, seed=seed, overrides=sets)
    if dask_address is None:  # the points run one after another: each must fit on its own
        from ..backends import select
        from ..memory import check_many

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
    from ..study.compare import compare_inputs
    from ..study.table import format_table, write_csv

    cmp = compare_inputs(results, horizon=horizon, reference=reference, csv_path=csv_path,
                         force=force, log=lambda m: click.echo(m, err=True))
    click.echo(format_table(cmp))
    if csv_path:
        write_csv(cmp, csv_path)
        click.echo(f"wrote {csv_path}")


@main.command()
@click.argument("results", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the figures (PNG, SVG) and index.html [default: <first input>_report].")
@click.option("--force", is_flag=True, help="Write into an existing, non-empty directory.")
@_errors
def report(results, out_dir, force):
    """Figures and an HTML page for result files (each an arm), sweep directories or DIR:POINT."""
    from ..study.report import report as report_api

    if out_dir is None:
        first = Path(results[0].rsplit(":", 1)[0] if not Path(results[0]).exists() else results[0])
        out_dir = first.parent / f"{first.stem}_report"
    page = report_api(results, out_dir, force=force, warn=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {page}")


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
            from ..errors import ScenarioError
            raise ScenarioError("bench --fields runs on the NumPy backend at its own sizes; choose them "
                                "with --fields 100,400,75x3 (no --size, --backend numpy only)")
        return _bench_fields(fields_cases, scenarios, replicates, steps, warmup, json_path, force)

    from ..backends import select
    from ..study.bench import format_table, run_bench, write_json
    from ..errors import OutputError, ScenarioError
    from ..params import BY_KEY

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
    """``bench --fields``: gpusim.study.fieldbench on this checkout (steps and warm-up as given)."""
    from ..errors import OutputError, ScenarioError
    from ..study.bench import write_json
    from ..study.fieldbench import DEFAULT_CASES, format_table, run_field_bench

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

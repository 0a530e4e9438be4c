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
            click.echo(f"gpusim: error: {e}", err=True)
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
    ok, desc = cupy_status()
    click.echo(f"backend cupy: {'available, ' if ok else 'not available: '}{desc}")
    click.echo(f"backend auto: would use {'cupy' if ok else 'numpy'}")


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


@main.command()
@click.argument("scenario")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="HDF5 output file [default: results/<scenario>.h5].")
@click.option("-r", "--replicates", type=int, default=None, help="Number of replicates.")
@click.option("--first-replicate", type=int, default=None,
              help="Global index of the first replicate: runs K..K+N-1 (same results as in any batch).")
@click.option("--days", type=float, default=None, help="Simulated days.")
@click.option("--seed", type=int, default=None, help="Random seed (0 .. 2**32-1).")
@click.option("--backend", type=click.Choice(["auto", "numpy", "cupy"]), default=None,
              help="Compute backend [default: the scenario's, normally auto].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_errors
def run(scenario, out, replicates, first_replicate, days, seed, backend, sets, force, quiet):
    """Run SCENARIO (a bundled name or a .toml path) and stream the results to HDF5."""
    from .runner import resolve, run as run_api

    sc = resolve(scenario, replicates=replicates, first_replicate=first_replicate, seed=seed,
                 days=days, backend=backend, overrides=sets)
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
        res = run_api(sc, out, force=force, progress=progress, log=log)
    finally:
        if bar is not None:
            bar.render_finish()
    if not quiet:
        click.echo(f"wrote {out}")
        _print_summary(res)


@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
@_errors
def summary(results):
    """Endpoints and ensemble statistics of a result file (also while it is being written)."""
    from .io import open_results

    _print_summary(open_results(results))


def _print_summary(res) -> None:
    a = res.attrs
    R = res.replicates
    t = res.time_days[-1] if res.time_days.size else 0.0
    click.echo(f"scenario {a.get('scenario_name', '?')}: {R} replicate(s), seed {a.get('seed')}, "
               f"backend {a.get('backend')}, status {res.status}, t = {t:g} days")
    ts = res.timeseries
    if res.time_days.size:
        rows = [("tumour cells (start -> now)", ts["tumour_cells"][:, 0], ts["tumour_cells"][:, -1]),
                ("CAR-T in tissue (now)", None, ts["car_t_tissue"][:, -1]),
                ("tumour cells killed", None, ts["kills_tumour"][:, -1])]
        for label, a0, a1 in rows:
            s = f"  {label:<28} mean {np.mean(a1):10.1f}  median {np.median(a1):10.1f}  range {np.min(a1):g}..{np.max(a1):g}"
            if a0 is not None:
                s = (f"  {label:<28} {np.mean(a0):.1f} -> mean {np.mean(a1):.1f}, median "
                     f"{np.median(a1):.1f}, range {np.min(a1):g}..{np.max(a1):g}")
            click.echo(s)
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
                            ("healthy_damage", "healthy antigen+ damage")):
            v = np.asarray(ep[name], dtype=float)
            click.echo(f"  {label:<28} median {np.median(v):.3g}  (range {np.min(v):.3g}..{np.max(v):.3g})")
    elif res.status != "complete":
        click.echo(f"  endpoints: not yet written (status {res.status})")


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


if __name__ == "__main__":  # pragma: no cover
    main()

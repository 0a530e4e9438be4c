"""Commands about the installation and the inputs: ``info``, ``selftest``, ``scenarios``,
``show``, ``params``, ``validate``."""

from __future__ import annotations

import sys

import click
import numpy as np

from ..version import __version__
from .group import SET_HELP, _errors, main


@main.command()
def info():
    """Versions, the backends available here, and the device."""
    import h5py

    from ..backends import cpu_description, cupy_status

    click.echo(f"gpusim {__version__}")
    from importlib.metadata import version

    click.echo(f"python {sys.version.split()[0]}, numpy {np.__version__}, h5py {h5py.__version__}, "
               f"click {version('click')}")
    click.echo(f"backend numpy: available, {cpu_description()}")
    ok, desc = cupy_status(run_check=False)
    click.echo(f"backend cupy: {'available, ' if ok else 'not available: '}{desc}")
    click.echo(f"backend auto: would use {'cupy' if ok else 'numpy'}")
    # ---- GPU details (backends) ----
    from ..backends import gpu_details

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
    from ..backends import gpu_device, selfcheck
    from ..errors import BackendError

    n = steps if steps is not None else selfcheck.STEPS
    if n < 1:
        raise BackendError(f"--steps must be at least 1, got {n}")
    if backend == "emulated":
        from ..backends.emulated import EmulatedRuntime

        m = selfcheck.verify(EmulatedRuntime(order=2), steps=n)
        if m is not None:
            raise BackendError(f"emulated device differs from the NumPy engine: scenario {m.scenario}, "
                               f"{m.what} first at step {m.step} ({m.detail})")
        click.echo(f"emulated device: {len(selfcheck.SCENARIOS)} scenarios x {n} steps bitwise equal "
                   "to the NumPy engine")
        return
    from ..backends import nvrtc

    dev, driver, why = gpu_device()
    if dev is None:
        raise BackendError(f"selftest --backend cupy: {why}")
    ok, nv = nvrtc.available()
    if not ok:
        raise BackendError(f"selftest --backend cupy: {nv}")
    from ..backends.cupy_backend import runtime

    v = selfcheck.check(runtime(), dev, driver, force=True, steps=n)
    if not v.passed:
        raise BackendError(f"GPU {dev} failed the self-check: {v.detail}; report: {v.report}")
    click.echo(f"GPU {dev}, driver {driver}: passed ({v.detail}, {v.seconds:.1f} s); verdict cached")


@main.command()
@_errors
def scenarios():
    """The bundled scenarios, one line each."""
    from ..scenario import bundled

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
    from ..scenario import load_scenario

    click.echo(load_scenario(scenario, sets).to_toml(), nl=False)


@main.command()
@click.option("--markdown", is_flag=True, help="Print the reference as Markdown (docs/parameters.md).")
def params(markdown):
    """Every parameter: key, default, allowed values, description, source."""
    from ..params import PARAMS
    from ..scenario import _toml_value, parameter_reference_markdown

    if markdown:
        click.echo(parameter_reference_markdown(), nl=False)
        return
    for p in PARAMS:
        click.echo(f"{p.key} = {_toml_value(p.default)}  # {p.doc} [{p.source}]")


@main.command()
@click.option("--quick", is_flag=True,
              help="Reduced sample sizes (the CI set, about a minute on 2 cores).")
@click.option("--backend", type=click.Choice(["auto", "numpy", "cupy", "emulated"]), default="auto",
              help="Compute backend [default: auto].")
@click.option("--case", "cases", multiple=True, metavar="NAME",
              help="Run only this case (repeatable): rng, birth_death, antigen_loss, motility, "
                   "fields, well_mixed (the default set), or biology (mechanisms on/off with "
                   "paired seeds, growth and heterogeneity against data; minutes).")
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
    from ..validation import check_arguments, resolve_backend, run_validation

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

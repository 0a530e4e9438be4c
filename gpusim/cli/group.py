"""The ``gpusim`` command group, the one-line error handling every command shares, and the help
texts and memory check several commands use.

Every user error (bad scenario, existing output, missing backend) ends with one line on stderr
and exit status 2, and creates or changes no file.
"""

from __future__ import annotations

import functools
import sys

import click

from ..version import __version__
from ..errors import GpusimError

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


# ---- memory estimate before run, sweep, bench (issue 13) ----
FORCE_MEMORY_HELP = ("Run even when the memory estimate exceeds the memory available here "
                     "(host, and the GPU for --backend cupy).")


def _memory_check(sc, force: bool, quiet: bool, replicates=None, backend=None) -> None:
    """Refuse (MemoryLimitError: exit 2, one line) a run whose memory estimate exceeds what is
    available, before anything is allocated or any file exists; else log the estimate."""
    from ..backends import select
    from ..memory import _fmt, check, host_available

    be = select(backend or sc["run.backend"]).name
    est = check(sc, replicates, be, force=force)
    if not quiet:
        avail = host_available()
        dev = f", GPU about {_fmt(est.device)}" if est.device is not None else ""
        click.echo(f"memory: about {_fmt(est.host)} host{dev}"
                   + (f" ({_fmt(avail)} available)" if avail is not None else ""), err=True)


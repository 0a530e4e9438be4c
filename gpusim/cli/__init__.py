"""The ``gpusim`` command line.  Thin: every command parses its options, calls the library, prints.

``group`` holds the click group and the shared error handling; the commands live in ``tools``
(installation and inputs), ``run`` (one run) and ``study`` (ensembles of runs).
"""

from .group import main
from . import run, study, tools  # noqa: F401,E402  (registers the commands on ``main``)

__all__ = ["main"]

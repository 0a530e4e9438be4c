"""Exceptions raised by gpusim.

Every error a user can cause (bad scenario, bad output path, unavailable backend) is a
:class:`GpusimError`; the CLI turns it into one clear line on stderr and exit status 2.
"""


class GpusimError(Exception):
    """Base class of all user-facing gpusim errors."""


class ScenarioError(GpusimError):
    """A scenario is invalid: unknown key, wrong type, value out of range, missing file."""


class OutputError(GpusimError):
    """An output file cannot be created, would be overwritten, or cannot be read."""


class BackendError(GpusimError):
    """A requested compute backend is not available on this machine."""


class CapacityError(GpusimError):
    """A fixed-capacity agent table would overflow; no agent is ever dropped silently."""


class ClusterError(GpusimError):
    """A distributed run cannot start: Dask missing, scheduler unreachable, bad worker count."""


class MissingExtraError(GpusimError):
    """A feature needs an optional extra that is not installed (gpusim[plot], gpusim[dask])."""

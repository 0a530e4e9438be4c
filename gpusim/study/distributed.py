"""Ensembles at scale: replicate chunks run as Dask tasks and merged into one file.

Chunks
    A run of ``R`` replicates ``K .. K+R-1`` is split into chunks ``(first, n)``; each chunk is an
    ordinary run with ``run.first_replicate = first`` and ``run.replicates = n``, written to its
    own part file.  A replicate's trajectory depends only on (scenario, seed, global replicate
    index), so the parts joined along the replicate axis (:func:`merge`) hold exactly the
    datasets of a single-process run, bit for bit.

Dask (optional extra ``gpusim[dask]``)
    ``workers=N`` starts a local cluster (N processes, one thread each); ``dask=ADDRESS``
    connects to a running scheduler.  Part files are written next to the output, in the hidden
    directory ``.<out name>.parts/``, which every worker must be able to reach (a shared file
    system on a cluster); it is removed after the merge.  If a distributed run is interrupted,
    running it again with the same options reuses the finished parts and resumes the others
    from their checkpoints.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ClusterError, MissingExtraError
from ..io import Results
from ..io.merge import merge_parts
from ..scenario import Scenario, load_scenario
from .runner import _precheck_output, run_or_continue

CONNECT_TIMEOUT_S = 3.0
"""How long ``--dask ADDRESS`` waits for the scheduler before giving up (seconds)."""

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# chunks and part files
def chunks(first: int, replicates: int, n_chunks: int) -> list[tuple[int, int]]:
    """Split replicates ``first .. first+replicates-1`` into at most ``n_chunks`` contiguous
    chunks ``(first, n)`` of near-equal size (the first ones one larger)."""
    if replicates < 1 or n_chunks < 1:
        raise ValueError("replicates and n_chunks must be positive")
    n_chunks = min(n_chunks, replicates)
    base, extra = divmod(replicates, n_chunks)
    out, k = [], first
    for i in range(n_chunks):
        n = base + (1 if i < extra else 0)
        out.append((k, n))
        k += n
    return out


def run_part(scenario_toml: str, first: int, n: int, path: str) -> str:
    """Run (or finish) one chunk into ``path``: skip it if complete, resume it from its
    checkpoint if it has one, else run it from the start.  Runs in a Dask worker."""
    sc = load_scenario(tomllib.loads(scenario_toml)).replace(run__replicates=n,
                                                             run__first_replicate=first)
    if sc["run.backend"] != "numpy":
        _pin_gpu()
    run_or_continue(sc, Path(path))
    return path


def _pin_gpu() -> None:
    """In a Dask worker of a local cluster on a multi-GPU machine, use GPU (worker number mod
    GPU count), so that N workers on N GPUs run one chunk per GPU.  No-op elsewhere."""
    try:
        import cupy
        from distributed import get_worker

        n = cupy.cuda.runtime.getDeviceCount()
        name = get_worker().name
        if n > 1 and isinstance(name, int):
            cupy.cuda.Device(name % n).use()
    except Exception:  # no CuPy, no GPU, not in a worker: nothing to pin
        return



def merge(parts: Sequence[str | Path], out: str | Path, scenario_toml: str, *,
          force: bool = False) -> Results:
    """Join part files (consecutive replicate chunks of one run, in order) into ``out``.

    The result holds the datasets a single-process run of all replicates writes, bitwise (see
    :func:`gpusim.io.merge.merge_parts`).  ``scenario_toml``: the resolved scenario of the whole
    run.  Raises OutputError if the parts do not fit together (other times, gaps in replicates).
    """
    sc = load_scenario(tomllib.loads(scenario_toml))
    return merge_parts(parts, out, scenario_toml, snapshot_replicates=int(sc["run.snapshot_replicates"]),
                       force=force)


# ---------------------------------------------------------------------------------------------
# Dask
class Cluster:
    """A Dask client for ``workers=N`` (a new local cluster) or ``address`` (a running scheduler).

    Use as a context manager; closes what it started.  Raises ClusterError when Dask is not
    installed, N < 1, or the scheduler cannot be reached within :data:`CONNECT_TIMEOUT_S`.
    """

    def __init__(self, *, workers: int | None = None, address: str | None = None,
                 timeout_s: float = CONNECT_TIMEOUT_S):
        if (workers is None) == (address is None):
            raise ClusterError("give either --workers N or --dask ADDRESS, not both")
        try:
            import dask  # noqa: F401
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise MissingExtraError(f"Dask is not installed ({e}); install the extra: "
                               "pip install 'gpusim[dask]'") from None
        self._cluster = None
        if workers is not None:
            if isinstance(workers, bool) or int(workers) < 1:
                raise ClusterError(f"--workers must be a positive integer, got {workers!r}")
            self._cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1,
                                         processes=True, dashboard_address=None)
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(address, timeout=f"{timeout_s}s")
            except (OSError, TimeoutError, ValueError) as e:
                raise ClusterError(f"cannot reach the Dask scheduler at '{address}' within "
                                   f"{timeout_s:g} s ({type(e).__name__}: {e})") from None

    @property
    def n_workers(self) -> int:
        """Number of Dask workers (at least 1)."""
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def run_distributed(sc: Scenario, out: str | Path, cluster: Cluster, *, force: bool = False,
                    n_chunks: int | None = None, log: Log | None = None) -> Results:
    """Run scenario ``sc`` (``run.*`` resolved) as replicate chunks on ``cluster``, merge into
    ``out``.  ``n_chunks`` defaults to the number of workers.  Bitwise equal to a single run."""
    out = Path(out)
    _precheck_output(out, force)
    R, first = int(sc["run.replicates"]), int(sc["run.first_replicate"])
    plan = chunks(first, R, n_chunks or cluster.n_workers)
    parts_dir = out.parent / f".{out.name}.parts"
    parts_dir.mkdir(exist_ok=True)
    toml = sc.to_toml()
    paths = [str(parts_dir / f"part_{k:010d}_{n}.h5") for k, n in plan]
    if log:
        log(f"{R} replicate(s) in {len(plan)} chunk(s) on {cluster.n_workers} Dask worker(s)")
    futures = [cluster.client.submit(run_part, toml, k, n, p, pure=False)
               for (k, n), p in zip(plan, paths)]
    done = cluster.client.gather(futures)
    res = merge(done, out, toml, force=force)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return res


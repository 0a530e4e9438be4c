"""Ensembles at scale: replicate chunks run as Dask tasks and merged, and parameter sweeps.

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

Sweeps
    :func:`sweep` runs the Cartesian product of parameter values, each point an ordinary result
    file in one output directory with an ``index.json`` (layout in ``docs/io_format.md``).
    Running the same sweep again skips finished points and resumes a partial one.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np

from .errors import ClusterError, MissingExtraError, OutputError, ScenarioError
from .io import ResultWriter, Results, open_results
from .io.writer import RESERVED_ATTRS
from .scenario import Scenario, _split_set, load_scenario

SWEEP_SCHEMA = "gpusim-sweep/1"
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
    _run_or_continue(sc, Path(path))
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


def _run_or_continue(sc: Scenario, path: Path, progress=None, extra_attrs=None) -> str:
    """Bring ``path`` to ``complete``: skip / resume / (re)run.  Returns what it did."""
    from .runner import resume, run

    if path.exists():
        try:
            res = open_results(path)
        except OutputError:
            res = None
        if res is not None and res.status == "complete":
            return "skipped"
        if res is not None and res.checkpoint() is not None:
            resume(path, progress=progress)
            return "resumed"
    run(sc, path, force=True, progress=progress, extra_attrs=extra_attrs)
    return "ran"


def merge(parts: Sequence[str | Path], out: str | Path, scenario_toml: str, *,
          force: bool = False) -> Results:
    """Join part files (consecutive replicate chunks of one run, in order) into ``out``.

    The result holds the datasets a single-process run of all replicates writes, bitwise.
    Raises OutputError if the parts do not fit together (other times, gaps in replicates).
    """
    res = [open_results(p) for p in parts]
    if not res:
        raise OutputError("merge: no part files")
    for r, p in zip(res, parts):
        if r.status != "complete":
            raise OutputError(f"merge: part '{p}' is not complete (status {r.status})")
    a0 = res[0]
    nxt = int(a0.attrs["first_replicate"])
    for r, p in zip(res, parts):
        if int(r.attrs["first_replicate"]) != nxt:
            raise OutputError(f"merge: part '{p}' starts at replicate {r.attrs['first_replicate']}, expected {nxt}")
        nxt += r.replicates
        if not (np.array_equal(r.time_days, a0.time_days)
                and np.array_equal(r.snapshot_times, a0.snapshot_times)):
            raise OutputError(f"merge: part '{p}' has other output times than '{parts[0]}'")
    sc = load_scenario(tomllib.loads(scenario_toml))
    R = sum(r.replicates for r in res)
    rs = min(sc["run.snapshot_replicates"], R)
    with h5py.File(parts[0], "r", swmr=True) as f:
        ck_spec = {n: ((R, *ds.shape[1:]), ds.dtype.str, *_meta(ds)) for n, ds in f["checkpoint/state"].items()}
        backup = "previous" in f["checkpoint"]
    attrs = {k: v for k, v in a0.attrs.items() if k not in RESERVED_ATTRS}
    attrs["setup_seconds"] = max(float(r.attrs.get("setup_seconds", 0.0)) for r in res)
    ts = {k: np.concatenate([r.timeseries[k] for r in res]) for k in a0.timeseries}
    evs = {k: np.concatenate([r.events[k] for r in res]) for k in a0.events}
    profs = {k: np.concatenate([r.profiles[k] for r in res]) for k in a0.profiles}
    snaps = {k: np.concatenate([r.snapshots[k] for r in res if k in r.snapshots], axis=1)[:, :rs]
             for k in a0.snapshots} if rs else {}
    u, d = a0.units, a0.descriptions
    ckpts = [r.checkpoint() for r in res]
    if any((c is None) != (ckpts[0] is None) for c in ckpts) or (
            ckpts[0] is not None and any(c[0] != ckpts[0][0] for c in ckpts)):
        raise OutputError("merge: the parts' checkpoints are at different steps")
    w = ResultWriter(
        out, replicates=R, attrs=attrs, scenario_toml=scenario_toml,
        metrics={k: (u[f"/timeseries/{k}"], d[f"/timeseries/{k}"]) for k in a0.timeseries},
        endpoints={k: (v.dtype.str, u[f"/endpoints/{k}"], d[f"/endpoints/{k}"]) for k, v in a0.endpoints.items()},
        snapshot_fields={k: (v.dtype.str, u[f"/snapshots/{k}"], d[f"/snapshots/{k}"]) for k, v in snaps.items()},
        snapshot_shape=(rs, *next(iter(snaps.values())).shape[2:]) if snaps else None,
        checkpoint_spec=ck_spec, force=force, checkpoint_backup=backup,
        events={k: (u[f"/events/{k}"], d[f"/events/{k}"]) for k in evs},
        profiles={k: (a0.profile_edges[k], u[f"/profiles/bin_edges/{k}"], d[f"/profiles/bin_edges/{k}"],
                      u[f"/profiles/{k}"], d[f"/profiles/{k}"]) for k in profs})
    with w:
        for i, t in enumerate(a0.time_days):
            w.append(float(t), {k: v[:, i] for k, v in ts.items()},
                     events={k: v[:, i] for k, v in evs.items()},
                     profiles={k: v[:, i] for k, v in profs.items()})
        for i, t in enumerate(a0.snapshot_times if snaps else ()):
            w.snapshot(float(t), {k: v[i] for k, v in snaps.items()})
        if ckpts[0] is not None:
            step, t_ck, _ = ckpts[0]
            w.checkpoint(step, t_ck, {k: np.concatenate([c[2][k] for c in ckpts]) for k in ck_spec})
        w.finish({k: np.concatenate([r.endpoints[k] for r in res]) for k in a0.endpoints})
    return open_results(out)


def _meta(ds: h5py.Dataset) -> tuple[str, str]:
    g = lambda k: (lambda v: v.decode() if isinstance(v, bytes) else str(v))(ds.attrs.get(k, ""))
    return g("units"), g("description")


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
    from .runner import _precheck_output

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


# ---------------------------------------------------------------------------------------------
# sweeps
def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["key=v1,v2", ...]`` -> ``{key: ["v1", "v2"]}`` (raw value strings, parsed per point as
    ``--set`` values).  Raises ScenarioError on a malformed item, an empty value, a repeated
    value or key, or an unknown key."""
    from .scenario import _param

    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ScenarioError(f"--grid '{item}': expected section.key=v1,v2,... (e.g. run.seed=1,2,3)")
        key, raw = (s.strip() for s in item.split("=", 1))
        _param(key, "--grid")  # unknown key: clear error with did-you-mean
        if key in grid:
            raise ScenarioError(f"--grid: key '{key}' given twice; give all its values in one --grid")
        vals = [v.strip() for v in _split_values(raw)]
        if not raw.strip() or any(v == "" for v in vals):
            raise ScenarioError(f"--grid '{item}': empty value in the list; expected "
                                f"{key}=v1,v2,... with no empty entries")
        if len(set(vals)) != len(vals):
            raise ScenarioError(f"--grid '{item}': repeated value")
        grid[key] = vals
    if not grid:
        raise ScenarioError("sweep: give at least one --grid key=v1,v2,...")
    return grid


def _split_values(raw: str) -> list[str]:
    """Split on commas outside quotes and brackets (so ``'A|B',[1,2]`` stays two values)."""
    out, cur, depth, quote = [], "", 0, ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    if quote or depth:
        raise ScenarioError(f"--grid value list '{raw}': unbalanced quotes or brackets")
    out.append(cur)
    return out


@dataclass
class SweepPoint:
    id: str
    file: str
    params: dict[str, Any]  #: key -> value as the scenario holds it
    scenario: Scenario


def plan_sweep(scenario: str | Scenario, grid: dict[str, list[str]], *, replicates=None,
               days=None, seed=None, overrides=()) -> tuple[Scenario, list[SweepPoint]]:
    """The base scenario and every point, all validated (a bad value fails here, before any file)."""
    from .runner import resolve

    base = resolve(scenario, replicates=replicates, days=days, seed=seed, overrides=overrides)
    points = []
    keys = list(grid)
    set_keys = set(overrides) if isinstance(overrides, dict) else {_split_set(o)[0] for o in overrides}
    for k in keys:
        if k in set_keys:
            raise ScenarioError(f"-g/--grid {k}=... and --set {k}=... both set {k}; give only one of them")
        flag = {"run.replicates": "-r/--replicates", "run.days": "--days", "run.seed": "--seed"}.get(k)
        if flag and {"run.replicates": replicates, "run.days": days, "run.seed": seed}[k] is not None:
            raise ScenarioError(f"-g/--grid {k}=... and {flag} both set {k}; give only one of them")
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        sets = [f"{k}={v}" for k, v in zip(keys, combo)]
        try:
            sc = load_scenario(tomllib.loads(base.to_toml()), sets)
        except ScenarioError as e:
            raise ScenarioError(f"sweep point {dict(zip(keys, combo))}: {e}") from None
        pid = f"p{i:03d}"
        points.append(SweepPoint(pid, f"{pid}.h5", {k: sc[k] for k in keys}, sc))
    return base, points


def sweep(scenario: str | Scenario, out_dir: str | Path, grid: dict[str, list[str]], *,
          replicates=None, days=None, seed=None, overrides=(), force: bool = False,
          cluster: Cluster | None = None, log: Log | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run (or continue) a sweep into ``out_dir``; returns the index (see docs/io_format.md).

    A new ``out_dir`` must not exist or be empty; an ``out_dir`` holding the index of the same
    sweep (same base scenario, same grid) is continued: finished points are skipped, a partial
    one is resumed from its checkpoint.  Another sweep's directory is an OutputError unless
    ``force`` (which deletes the files its index lists, and nothing else).
    """
    base, points = plan_sweep(scenario, grid, replicates=replicates, days=days, seed=seed,
                              overrides=overrides)
    out_dir = Path(out_dir)
    index = {"schema": SWEEP_SCHEMA, "scenario": base.to_toml(), "grid": grid,
             "points": [{"id": p.id, "file": p.file, "params": p.params} for p in points]}
    ipath = out_dir / "index.json"
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"sweep output '{out_dir}' exists and is not a directory")
    if ipath.exists():
        old = read_index(out_dir)
        same = old.get("scenario") == index["scenario"] and old.get("grid") == grid
        if not same and not force:
            raise OutputError(f"'{out_dir}' holds another sweep (other scenario or grid); "
                              "pass --force to replace it or choose another directory")
        if not same:
            for f in _own_point_files(out_dir, old):
                f.unlink(missing_ok=True)
            ipath.unlink()
        elif log:
            log(f"continuing the sweep in '{out_dir}'")
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise OutputError(f"sweep directory '{out_dir}' exists, is not empty and holds no "
                          "index.json; choose another directory")
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory '{parent}' does not exist")
    out_dir.mkdir(exist_ok=True)
    if not ipath.exists():
        tmp = out_dir / ".index.json.partial"
        tmp.write_text(json.dumps(index, indent=1, default=_jsonable) + "\n", encoding="utf-8")
        os.replace(tmp, ipath)
    for p in points:
        path = out_dir / p.file
        extra = {"sweep_point": p.id, "sweep_params": json.dumps(p.params, default=_jsonable)}
        prog = (lambda d, n, _id=p.id: progress(_id, d, n)) if progress else None
        if cluster is not None:
            if path.exists() and open_results(path).status == "complete":
                what = "skipped"
            else:
                sc = p.scenario  # the part files carry the sweep attributes into the merge
                run_distributed(sc, path, cluster, force=True, log=None)
                what = "ran"
        else:
            what = _run_or_continue(p.scenario, path, progress=prog, extra_attrs=extra)
        if cluster is not None and what == "ran":
            _set_attrs(path, extra)
        if log:
            log(f"{p.id} {p.params}: {what}")
    return index


_POINT_FILE = re.compile(r"^p[0-9]{3,}\.h5$")


def _own_point_files(out_dir: Path, index: dict) -> list[Path]:
    """The point files an old ``index.json`` lists, checked to be ones a sweep creates: a plain
    name ``pNNN.h5`` directly inside ``out_dir`` (not absolute, no ``..``, no link leading
    out).  Raises OutputError, deleting nothing, when any entry is something else."""
    root = out_dir.resolve()
    files = []
    points = index.get("points", [])
    for p in points if isinstance(points, list) else [points]:
        name = p.get("file") if isinstance(p, dict) else p
        f = out_dir / name if isinstance(name, str) else None
        if (f is None or not _POINT_FILE.match(name) or Path(name).name != name
                or f.resolve().parent != root):
            raise OutputError(f"'{out_dir / 'index.json'}' lists {name!r}, which is not a point file "
                              "of this sweep directory (pNNN.h5); nothing was deleted")
        files.append(f)
    return files


def _set_attrs(path: Path, attrs: dict) -> None:
    with h5py.File(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot store {type(v).__name__} in index.json")


def read_index(out_dir: str | Path) -> dict:
    """The ``index.json`` of a sweep directory; OutputError if missing or of another schema."""
    ipath = Path(out_dir) / "index.json"
    try:
        index = json.loads(ipath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"'{out_dir}' is not a sweep directory (no index.json)") from None
    except (OSError, ValueError) as e:
        raise OutputError(f"cannot read '{ipath}': {e}") from None
    if index.get("schema") != SWEEP_SCHEMA:
        raise OutputError(f"'{ipath}' is a {index.get('schema')!r} index; this gpusim reads {SWEEP_SCHEMA}")
    return index


def open_inputs(items: Sequence[str], warn: Log) -> list[tuple[str, Results, Path]]:
    """:func:`expand_inputs`, each file read with :func:`open_results`: ``[(label, results,
    file)]``.  A sweep point not run yet and a file that cannot be read (damaged, truncated, not
    a result) are skipped with one ``warn`` line each, so one bad input never stops the rest."""
    out = []
    for label, path in expand_inputs(items):
        if not path.exists() and path.parent.joinpath("index.json").exists():
            warn(f"note: skipping {label}: sweep point not run yet")
            continue
        try:
            res = open_results(path)
        except OutputError as e:
            warn(f"warning: skipping {label}: {e}")
            continue
        out.append((label, res, path))
    return out


def expand_inputs(items: Sequence[str]) -> list[tuple[str, Path]]:
    """Result arguments -> ``[(label, file)]``: ``FILE.h5``, a sweep directory (each point),
    or ``DIR:POINT`` (one point).  Raises OutputError for anything else."""
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            for pt in read_index(p)["points"]:
                out.append((f"{pt['id']} " + ",".join(f"{k}={v}" for k, v in pt["params"].items()),
                            p / pt["file"]))
            continue
        if not p.exists() and ":" in item:
            d, pid = item.rsplit(":", 1)
            pts = {pt["id"]: pt for pt in read_index(d)["points"]}
            if pid not in pts:
                raise OutputError(f"sweep '{d}' has no point '{pid}'; points: {', '.join(pts)}")
            pt = pts[pid]
            out.append((f"{pid} " + ",".join(f"{k}={v}" for k, v in pt["params"].items()),
                        Path(d) / pt["file"]))
            continue
        out.append((p.stem, p))
    return out

"""Parameter sweeps, and the result arguments (files, sweep directories, points) of the
study commands.

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
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import OutputError, ScenarioError
from ..io import Results, open_results
from ..io.merge import add_root_attrs
from ..scenario import Scenario, _split_set, load_scenario
from .distributed import Cluster, Log, run_distributed
from .runner import resolve, run_or_continue

SWEEP_SCHEMA = "gpusim-sweep/1"


# ---------------------------------------------------------------------------------------------
# sweeps
def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["key=v1,v2", ...]`` -> ``{key: ["v1", "v2"]}`` (raw value strings, parsed per point as
    ``--set`` values).  Raises ScenarioError on a malformed item, an empty value, a repeated
    value or key, or an unknown key."""
    from ..scenario import _param

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
    """One point of a sweep: its id (``pNNN``), file name, swept values and full scenario."""

    id: str
    file: str
    params: dict[str, Any]  #: key -> value as the scenario holds it
    scenario: Scenario


def plan_sweep(scenario: str | Scenario, grid: dict[str, list[str]], *, replicates=None,
               days=None, seed=None, overrides=()) -> tuple[Scenario, list[SweepPoint]]:
    """The base scenario and every point, all validated (a bad value fails here, before any file)."""
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
    _prepare_directory(out_dir, index, force, log)
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
            what = run_or_continue(p.scenario, path, progress=prog, extra_attrs=extra)
        if cluster is not None and what == "ran":
            add_root_attrs(path, extra)
        if log:
            log(f"{p.id} {p.params}: {what}")
    return index


def _prepare_directory(out_dir: Path, index: dict, force: bool, log: Log | None) -> None:
    """Make ``out_dir`` the directory of the sweep ``index``: new (absent or empty), or holding
    the same sweep (continued), or, with ``force``, another sweep's (its point files removed).
    Writes ``index.json`` atomically when it is not there."""
    grid = index["grid"]
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

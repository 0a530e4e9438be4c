"""Performance harness behind ``gpusim bench``: chosen scenarios and sizes on each backend.

For every (scenario, size, backend) it builds a batch (set-up time, which includes kernel
compilation on the CuPy backend, reported apart), warms up, then times ``steps`` steps and
reports steps/s, voxel-steps/s (replicates × voxels × steps per second) and CAR-T-steps/s (live
CAR-T cells summed over the timed steps, per second).  On the NumPy backend the step time is also
split by phase (every ``*_phase`` function the engine calls, and the fields solve).  Timing on the
GPU synchronises the device around the timed loop.  ``run_bench`` returns a JSON-ready record
with the device, the gpusim commit and the date.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from ..errors import BackendError, OutputError, ScenarioError


def git_commit() -> str:
    """The commit of the source tree gpusim runs from ("unknown" outside a git checkout)."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                               timeout=10)
        if res.returncode == 0:
            return res.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def timed(times: dict[str, float], name: str, fn):
    """``fn`` wrapped so that each call adds its wall time (s) to ``times[name]``."""

    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


@contextlib.contextmanager
def phase_timer(sim):
    """Time every phase of a NumPy-engine step: wraps the engine's ``*_phase`` functions and the
    fields solve while the block runs.  Yields the dict phase -> seconds (accumulated)."""
    from .. import engine

    times: dict[str, float] = {}
    saved = []
    for name in dir(engine):
        fn = getattr(engine, name)
        if name.endswith("_phase") and callable(fn):
            saved.append((engine, name, fn))
            setattr(engine, name, timed(times, name[:-len("_phase")], fn))
    fields = getattr(sim, "fields", None)
    if fields is not None and hasattr(fields, "solve"):
        saved.append((fields, "solve", fields.solve))
        fields.solve = timed(times, "fields", fields.solve)
    try:
        yield times
    finally:
        for obj, name, fn in saved:
            if obj is fields:
                del obj.solve  # back to the class method
            else:
                setattr(obj, name, fn)


def _sync(backend: str) -> None:
    if backend == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def bench_one(sc, backend: str, replicates: int, steps: int, warmup: int) -> dict:
    """Time one batch; returns the record of one row."""
    from ..backends import make_simulation, select

    be = select(backend)
    t0 = time.perf_counter()
    sim = make_simulation(be, sc, replicates=replicates)
    _sync(be.name)
    setup_s = time.perf_counter() - t0
    for _ in range(warmup):
        sim.step()
    _sync(be.name)
    car_t = 0
    phases: dict[str, float] = {}
    ctx = phase_timer(sim) if be.name == "numpy" else contextlib.nullcontext({})
    with ctx as phases:
        t0 = time.perf_counter()
        for _ in range(steps):
            sim.step()
            if be.name == "numpy":
                car_t += int(sim.state.t_count.sum())
        _sync(be.name)
        step_s = time.perf_counter() - t0
    if be.name != "numpy":  # the table's sum over the timed steps is not tracked on the device
        car_t = None
    nvox = int(np.prod(sc.shape))
    rate = steps / step_s if step_s > 0 else float("inf")
    return {
        "scenario": sc.name, "backend": be.name, "device": be.device, "shape": list(sc.shape),
        "replicates": replicates, "voxels": nvox, "steps": steps, "warmup_steps": warmup,
        "setup_s": setup_s, "step_s": step_s, "steps_per_s": rate,
        "voxel_steps_per_s": rate * nvox * replicates,
        "car_t_steps_per_s": (car_t / step_s if step_s > 0 else None) if car_t is not None else None,
        "phase_s": {k: v for k, v in sorted(phases.items())},
    }


def available_backends() -> list[str]:
    """The backends that can run here: numpy, and cupy where a usable GPU is present."""
    from ..backends import cupy_status

    return ["numpy"] + (["cupy"] if cupy_status()[0] else [])


def run_bench(scenarios=("quickstart",), sizes=(None,), backends=None, replicates: int | None = None,
              steps: int = 20, warmup: int = 2, log=None, force_memory: bool = False) -> dict:
    """Benchmark every (scenario, size) on each backend.

    Parameters
    ----------
    scenarios:
        Bundled names or TOML paths.
    sizes:
        Lattice edge in voxels (sets x and y; z is kept), or None for the scenario's own.
    backends:
        Names; default every backend that can run here.
    replicates:
        Batch size (default the scenario's ``run.replicates``).
    steps, warmup:
        Timed steps and untimed warm-up steps per row.
    force_memory:
        Run rows whose memory estimate exceeds what is available (else every row is checked
        before the first runs: :class:`gpusim.memory.MemoryLimitError`).

    Returns
    -------
    dict
        The record (schema ``gpusim-bench/1``): version, commit, UTC date, host, the device of
        each backend, ``results`` (one row per (scenario, size, backend), from :func:`bench_one`)
        and ``ratios`` between backends.
    """
    from ..backends import NAMES
    from ..scenario import load_scenario

    if steps < 1 or warmup < 0:
        raise ScenarioError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    backends = list(backends) if backends else available_backends()
    for b in backends:
        if b not in NAMES or b == "auto":
            raise BackendError(f"unknown backend '{b}' for bench; allowed: numpy, cupy")
    plan = []
    for name in scenarios:
        for size in sizes:
            sets = [f"domain.x_voxels={size}", f"domain.y_voxels={size}"] if size else []
            sc = load_scenario(name, sets)
            R = int(replicates if replicates is not None else sc["run.replicates"])
            plan += [(sc, R, b) for b in backends]
    from ..memory import check_many  # every row must fit, checked before the first runs

    check_many([(sc, R, b, f"bench {sc.name} {sc.shape} x{R} on {b}") for sc, R, b in plan],
               force=force_memory)
    rows = []
    for sc, R, b in plan:
        if log:
            log(f"bench {sc.name} {sc.shape} x{R} on {b} ...")
        rows.append(bench_one(sc, b, R, steps, warmup))
    return _record(rows)


def _record(rows: list[dict]) -> dict:
    """The bench record around its rows: schema, version, commit, date, host, devices, ratios."""
    return {
        "schema": "gpusim-bench/1",
        "gpusim_version": _version(),
        "commit": git_commit(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"machine": platform.machine(), "processor": platform.processor(),
                 "cpus": os.cpu_count(), "python": platform.python_version(),
                 "numpy": np.__version__},
        "devices": {r["backend"]: r["device"] for r in rows},
        "results": rows,
        "ratios": ratios(rows),
    }


def ratios(rows: list[dict]) -> list[dict]:
    """steps/s of every backend relative to NumPy, per (scenario, shape, replicates)."""
    out = []
    key = lambda r: (r["scenario"], tuple(r["shape"]), r["replicates"])
    ref = {key(r): r["steps_per_s"] for r in rows if r["backend"] == "numpy"}
    for r in rows:
        if r["backend"] != "numpy" and key(r) in ref:
            out.append({"scenario": r["scenario"], "shape": r["shape"], "replicates": r["replicates"],
                        "backend": r["backend"], "speedup_vs_numpy": r["steps_per_s"] / ref[key(r)]})
    return out


def format_table(record: dict) -> str:
    """The record as a text table: one line per (scenario, size), backends side by side."""
    rows = record["results"]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["scenario"], tuple(r["shape"]), r["replicates"]), {})[r["backend"]] = r
    head = f"{'scenario':<18} {'shape (Z,Y,X) x R':<20}"
    for b in backends:
        head += f" | {b + ' steps/s':>14} {'voxel-steps/s':>13} {'setup s':>8}"
    if len(backends) > 1:
        head += " | ratio"
    lines = [head, "-" * len(head)]
    for (name, shape, R), per in groups.items():
        line = f"{name:<18} {str(shape) + ' x' + str(R):<20}"
        for b in backends:
            r = per.get(b)
            line += (f" | {r['steps_per_s']:14.2f} {r['voxel_steps_per_s']:13.3e} {r['setup_s']:8.2f}"
                     if r else f" | {'-':>14} {'-':>13} {'-':>8}")
        if len(backends) > 1 and "numpy" in per:
            line += " | " + ", ".join(f"{b}/numpy {per[b]['steps_per_s'] / per['numpy']['steps_per_s']:.1f}x"
                                      for b in backends if b != "numpy" and b in per)
        lines.append(line)
    phase_rows = [r for r in rows if r["phase_s"]]
    if phase_rows:
        lines.append("")
        lines.append("time per phase (s, timed steps):")
        for r in phase_rows:
            parts = ", ".join(f"{k} {v:.3f}" for k, v in r["phase_s"].items())
            lines.append(f"  {r['scenario']} {tuple(r['shape'])} {r['backend']}: {parts}")
    return "\n".join(lines)


def write_json(record: dict, path, force: bool = False) -> Path:
    """Write the record; never overwrites without ``force``, never leaves a half-written file."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise OutputError(f"directory {path.parent} does not exist")
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _version() -> str:
    from ..version import __version__

    return __version__

"""Run a scenario: build the simulation, step it, stream metrics, snapshots and checkpoints to
HDF5, write endpoints.  The CLI and the Python API both come through :func:`run`; :func:`resume`
continues an unfinished file from its last checkpoint, in place, with the same results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..version import __version__
from .. import backends
from ..backends import make_simulation, select
from ..engine import ENDPOINTS, EVENT_INFO, EVENTS, METRICS, SERIES_METRICS, SNAPSHOTS, Simulation, steps_for
from ..errors import OutputError, ScenarioError
from ..io import ResultWriter, Results, open_results
from ..io.resume import reopen
from ..scenario import Scenario, _split_set, load_scenario

Progress = Callable[[int, int], None]


def resolve(scenario: Scenario | str, *, replicates=None, first_replicate=None, seed=None,
            days=None, backend=None, overrides=()) -> Scenario:
    """Apply run options to a scenario so that the stored scenario re-runs the same run."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, overrides)
    if isinstance(scenario, Scenario) and overrides:
        raise TypeError("pass overrides to load_scenario, not with a Scenario object")
    set_keys = set(overrides) if isinstance(overrides, dict) else {_split_set(o)[0] for o in overrides}
    upd = {}
    for key, val, opt in (("run__replicates", replicates, "-r/--replicates"),
                          ("run__first_replicate", first_replicate, "--first-replicate"),
                          ("run__seed", seed, "--seed"), ("run__days", days, "--days"),
                          ("run__backend", backend, "--backend")):
        if val is not None:
            dotted = key.replace("__", ".")
            if dotted in set_keys:
                raise ScenarioError(f"{opt} and --set {dotted}=... both set {dotted}; give only one of them")
            upd[key] = val
    return sc.replace(**upd) if upd else sc


def run(scenario: Scenario | str = "quickstart", out: str | Path | None = None, *,
        replicates: int | None = None, first_replicate: int | None = None, seed: int | None = None,
        days: float | None = None, backend: str | None = None, force: bool = False,
        overrides=(), progress: Progress | None = None, log: Callable[[str], None] | None = None,
        extra_attrs: dict | None = None) -> Results:
    """Run a scenario and return its results.

    Parameters
    ----------
    scenario:
        A :class:`Scenario`, a bundled name or a TOML path.
    out:
        HDF5 file to stream to (``None``: keep the results in memory only).
    replicates, first_replicate, seed, days, backend:
        Override the scenario's ``run.*`` (``days`` in day).
    force:
        Replace an existing output file.
    overrides:
        ``"section.key=value"`` strings, when ``scenario`` is a name or path.
    progress:
        Called as ``progress(steps_done, steps_total)`` after every output interval.
    log:
        Called with one-line messages (backend choice).
    extra_attrs:
        More root attributes for the result file (e.g. a sweep point's parameters).

    Returns
    -------
    Results
        ``timeseries`` (R, T), ``endpoints`` (R,), ``snapshots`` (S, Rs, Z, Y, X), ``time_days`` (T,) day.

    Raises
    ------
    GpusimError
        ScenarioError, OutputError, BackendError or CapacityError, one line each.
    """
    sc = resolve(scenario, replicates=replicates, first_replicate=first_replicate, seed=seed,
                 days=days, backend=backend, overrides=overrides)
    be = select(sc["run.backend"])
    if log:
        log(f"backend: {be.name} on {be.device}" + (f" ({be.reason})" if be.reason else ""))
    if out is not None:
        _precheck_output(out, force)
    t0 = time.perf_counter()
    sim = backends.make_simulation(be, sc)
    setup_s = time.perf_counter() - t0
    n_snap = min(sc["run.snapshot_replicates"], len(sim.replicates))
    attrs = {"gpusim_version": __version__, "backend": be.name, "device": be.device,
             "seed": sc["run.seed"], "first_replicate": int(sim.replicates[0]),
             "scenario_name": sc.name, "dt_min": sc["run.dt_min"],
             "steps_total": steps_for(sc["run.days"], sc["run.dt_min"]), "setup_seconds": setup_s}
    attrs.update(extra_attrs or {})
    sink = _Writer(out, sc, sim, attrs, n_snap, force) if out is not None else _Memory(sc, sim, attrs)
    with sink:
        _loop(sc, sim, sink, progress)
    return sink.results()


#: name of the checkpointed array that holds the events counted since the last output
#: (int64 (R, len(EVENTS)), replicate axis first like every checkpointed array); it is not part
#: of the engine state
INTERVAL_EVENTS = "interval_events"


def _loop(sc: Scenario, sim: Simulation, sink, progress: Progress | None,
          tally: np.ndarray | None = None) -> None:
    """Step ``sim`` from its current step to the end, writing to ``sink`` as a straight run does.

    A straight run starts at step 0 and writes the initial interval and snapshot; a resumed run
    starts at its checkpoint's step, whose outputs are already in the file, with ``tally`` (the
    events counted since the last output before the checkpoint).  The events of every step
    (``sim.last_events``) are summed over each output interval and written with it.
    """
    R = len(sim.replicates)
    dt = sc["run.dt_min"]
    n_steps = steps_for(sc["run.days"], dt)
    every = lambda hours: max(1, round(hours * 60.0 / dt)) if hours > 0 else 0
    out_every = every(sc["run.output_interval_hours"])
    snap_every = every(sc["run.snapshot_interval_hours"])
    ckpt_every = every(sc["run.checkpoint_interval_hours"])
    n_snap = min(sc["run.snapshot_replicates"], R)
    start = sim.state.step
    # the sink reads the tally (updated in place) when it appends or checkpoints
    acc = sink.acc = np.zeros((len(EVENTS), R), np.int64) if tally is None else np.array(tally, dtype=np.int64)
    if start == 0:
        sink.append(sim)
        if snap_every and n_snap:
            sink.snapshot(sim, n_snap)
    for s in range(start + 1, n_steps + 1):
        sim.step()
        for i, k in enumerate(EVENTS):
            acc[i] += sim.last_events[k]
        if s % out_every == 0 or s == n_steps:
            sink.append(sim)
            acc[:] = 0
            if progress:
                progress(s, n_steps)
        if snap_every and n_snap and s % snap_every == 0:
            sink.snapshot(sim, n_snap)
        if ckpt_every and s % ckpt_every == 0 and s != n_steps:
            sink.checkpoint(sim)
    sink.finish(sim)


def _checkpoints_expected(sc: Scenario) -> bool:
    """Whether a run of ``sc`` writes at least one checkpoint (as :func:`_loop` decides)."""
    dt = sc["run.dt_min"]
    hours = sc["run.checkpoint_interval_hours"]
    return hours > 0 and max(1, round(hours * 60.0 / dt)) < steps_for(sc["run.days"], dt)


def resume(path: str | Path, *, progress: Progress | None = None,
           log: Callable[[str], None] | None = None) -> Results:
    """Continue an unfinished result file from its last checkpoint, in place.

    The resumed file holds exactly the datasets a straight, uninterrupted run writes (bitwise;
    only timing attributes such as ``created_utc``/``setup_seconds``/``resumed_utc`` differ).

    Raises
    ------
    OutputError
        The file is missing, of another schema, complete, or has no checkpoint.
    ScenarioError
        The stored scenario does not load in this gpusim.
    """
    import tomllib

    path = Path(path)
    res = open_results(path)  # schema check, clear errors on a bad file
    if res.status == "complete":
        raise OutputError(f"'{path}' is already complete; nothing to resume")
    try:
        sc = load_scenario(tomllib.loads(res.scenario_toml))
    except tomllib.TOMLDecodeError as e:
        raise OutputError(f"cannot resume '{path}': its stored scenario is not valid TOML ({e})") from None
    be = select(sc["run.backend"])
    if log:
        log(f"backend: {be.name} on {be.device}" + (f" ({be.reason})" if be.reason else ""))
    ckpt = res.checkpoint()
    # Rebuild the simulation before the file is touched: a resume that cannot run refuses with
    # the file unchanged (docs/io_format.md).  No checkpoint: io.resume.reopen says so.
    sim = _simulation_at(path, res, sc, be, ckpt) if ckpt is not None else None
    arrays = ckpt[2] if ckpt is not None else {}
    w = reopen(path)  # rebuilds the file up to the checkpoint
    try:
        step, t_ck = w.resumed_from
        if step != ckpt[0]:  # pragma: no cover - only if another process changed the file
            raise OutputError(f"the checkpoint in '{path}' changed while resuming")
        # files of older writers checkpoint no event tally: count from the checkpoint on
        tally = arrays[INTERVAL_EVENTS].T if INTERVAL_EVENTS in arrays else None
        if log:
            log(f"resuming '{path}' at day {t_ck:g} (step {step})")
    except BaseException:
        w.close("failed", "resume could not rebuild the simulation")
        raise
    sink = _Writer.__new__(_Writer)
    sink.path, sink.w = path, w
    with sink:
        _loop(sc, sim, sink, progress, tally)
    return sink.results()


def _simulation_at(path: Path, res: Results, sc: Scenario, be, ckpt) -> Simulation:
    """The simulation of ``res`` (scenario ``sc``, backend ``be``) at its checkpoint ``ckpt``
    (``(step, time_days, state)``); OutputError when the checkpoint does not fit this gpusim's
    engine state or the scenario."""
    from ..engine import STATE_ARRAYS, State

    step, arrays = ckpt[0], ckpt[2]
    missing = sorted(set(STATE_ARRAYS) - set(arrays))
    unknown = sorted(set(arrays) - set(STATE_ARRAYS) - {INTERVAL_EVENTS})
    if missing or unknown:
        raise OutputError(f"the checkpoint in '{path}' does not match this gpusim's engine state "
                          f"(missing {missing}, unknown {unknown}); it was written by another "
                          "gpusim version and cannot be resumed")
    first = int(res.attrs.get("first_replicate", sc["run.first_replicate"]))
    reps = np.arange(first, first + res.replicates, dtype=np.int64)
    try:
        sim = make_simulation(be, sc, res.replicates, first,
                              state=State({k: arrays[k] for k in STATE_ARRAYS}, reps, step))
        _check_state_shapes(sim, arrays)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise OutputError(f"cannot resume '{path}': its checkpoint does not fit its stored scenario "
                          f"({msg}); run it again with --force") from None
    return sim


def _check_state_shapes(sim, arrays) -> None:
    """ValueError if a checkpointed state array does not have the shape the scenario gives
    (lattice arrays (R, Z, Y, X), the agent table (R, capacity), per-replicate values (R,), and
    (R, products) and (R, doses) for the per-product and per-dose pools and counts)."""
    from ..engine import AGENTS, LATTICE, PER_DOSE, PER_PRODUCT

    R, shape, cap = len(sim.replicates), tuple(sim.shape), int(sim.capacity)
    P, D = len(sim.products), sim.systemic_params.n_doses
    for k, a in arrays.items():
        if k == INTERVAL_EVENTS:  # the output interval's event tally, not engine state
            continue
        want = ((R, *shape) if k in LATTICE else (R, cap) if k in AGENTS
                else (R, P) if k in PER_PRODUCT else (R, D) if k in PER_DOSE else (R,))
        if tuple(a.shape) != want:
            raise ValueError(f"state array '{k}' has shape {tuple(a.shape)}, the scenario needs {want}")


def _precheck_output(path: str | Path, force: bool) -> None:
    """Fail on an unusable output path before any work (the writer checks again when it opens)."""
    from ..errors import OutputError
    from ..io.paths import check_new_output, check_output_path, lock_path, writer_active

    check_output_path(path)
    path = Path(path)
    if writer_active(path):
        raise OutputError(f"output file '{path}' is being written by another gpusim process "
                          f"(lock '{lock_path(path)}'); wait for it or choose another output")
    check_new_output(path, force)


def _event_decl() -> dict[str, tuple[str, str]]:
    """``/events`` declarations: every engine event, counted per output interval."""
    return {k: (m.units, f"{m.description}, per output interval (summed over the steps since the "
                         "previous output; 0 at the first output)") for k, m in EVENT_INFO.items()}


class _Writer:
    def __init__(self, out, sc: Scenario, sim: Simulation, attrs, n_snap: int, force: bool):
        self.path = Path(out)
        spec = {k: (v.shape, v.dtype.str) for k, v in sim.state.arrays().items()}
        spec["step"] = ((), "<i8")
        spec[INTERVAL_EVENTS] = ((len(sim.replicates), len(EVENTS)), "<i8", "events",
                                 "events counted since the last output (columns: engine.EVENTS), to resume mid-interval")
        if not _checkpoints_expected(sc):  # no storage for a checkpoint that is never written
            spec = {}
        self.w = ResultWriter(
            self.path, replicates=len(sim.replicates), attrs=attrs, scenario_toml=sc.to_toml(),
            metrics={k: (m.units, m.description) for k, m in METRICS.items()},
            endpoints=ENDPOINTS,
            snapshot_fields=SNAPSHOTS if n_snap else {},
            snapshot_shape=(n_snap,) + sim.shape if n_snap else None,
            checkpoint_spec={k: v for k, v in spec.items() if k != "step"},
            force=force, checkpoint_backup=bool(spec),
            events=_event_decl(), profiles=sim.profile_bins())

    def __enter__(self):
        self.w.__enter__()
        return self

    def __exit__(self, *exc):
        return self.w.__exit__(*exc)

    def append(self, sim):
        acc = self.acc
        self.w.append(sim.time_days, {k: np.asarray(v, dtype=np.float64) for k, v in sim.metrics().items()},
                      events={k: acc[i] for i, k in enumerate(EVENTS)}, profiles=sim.profiles())

    def snapshot(self, sim, n):
        self.w.snapshot(sim.time_days, sim.snapshot(n))

    def checkpoint(self, sim):
        self.w.checkpoint(sim.state.step, sim.time_days, {**sim.state.arrays(), INTERVAL_EVENTS: self.acc.T})

    def finish(self, sim):
        series = (self.w.timeseries("time_days"), {k: self.w.timeseries(k) for k in SERIES_METRICS})
        self.w.finish(sim.endpoints(series))

    def results(self) -> Results:
        return open_results(self.path)


class _Memory:
    def __init__(self, sc: Scenario, sim: Simulation, attrs):
        self.sc = sc
        self.attrs = dict(attrs, schema="gpusim/1", status="running", replicates=len(sim.replicates))
        self.times: list[float] = []
        self.rows: list[dict] = []
        self.snap_t: list[float] = []
        self.snaps: list[dict] = []
        self.ev: list[np.ndarray] = []
        self.prof: list[dict] = []
        self.bins = sim.profile_bins()
        self.ep: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, et, *exc):
        if et is not None:
            self.attrs["status"] = "interrupted" if et is KeyboardInterrupt else "failed"
        return False

    def append(self, sim):
        self.times.append(sim.time_days)
        self.rows.append(sim.metrics())
        self.ev.append(self.acc.copy())
        self.prof.append(sim.profiles())

    def snapshot(self, sim, n):
        self.snap_t.append(sim.time_days)
        self.snaps.append(sim.snapshot(n))

    def checkpoint(self, sim):
        pass

    def _series(self, k):
        return np.stack([np.asarray(r[k], dtype=np.float64) for r in self.rows], axis=1)

    def finish(self, sim):
        self.ep = sim.endpoints((np.array(self.times), {k: self._series(k) for k in SERIES_METRICS}))
        self.attrs["status"] = "complete"

    def results(self) -> Results:
        ts = {k: self._series(k) for k in METRICS}
        snaps = {k: np.stack([s[k] for s in self.snaps]) for k in SNAPSHOTS} if self.snaps else {}
        ev = np.stack(self.ev, axis=2) if self.ev else np.zeros((len(EVENTS), 0, 0), np.int64)
        units = {f"/timeseries/{k}": m.units for k, m in METRICS.items()}
        units.update({f"/events/{k}": m.units for k, m in EVENT_INFO.items()})
        units.update({f"/profiles/{k}": v[3] for k, v in self.bins.items()})
        units.update({f"/profiles/bin_edges/{k}": v[1] for k, v in self.bins.items()})
        units.update({f"/endpoints/{k}": v[1] for k, v in ENDPOINTS.items()})
        return Results(path=None, attrs=self.attrs, status=self.attrs["status"], schema="gpusim/1",
                       scenario_toml=self.sc.to_toml(), time_days=np.array(self.times),
                       timeseries=ts, snapshot_times=np.array(self.snap_t), snapshots=snaps,
                       endpoints=self.ep, units=units,
                       events={k: ev[i] for i, k in enumerate(EVENTS)},
                       profiles={k: np.stack([p[k] for p in self.prof], axis=1).astype(np.float64)
                                 for k in self.bins} if self.prof else {},
                       profile_edges={k: v[0] for k, v in self.bins.items()})


def run_or_continue(sc: Scenario, path: Path, progress=None, extra_attrs=None) -> str:
    """Bring ``path`` to ``complete``: skip / resume / (re)run.  Returns what it did."""
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

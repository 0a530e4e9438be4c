"""Read gpusim result files (schema ``gpusim/1``) into plain NumPy arrays.

:func:`open_results` works on finished files, on files still being written (it opens them in
SWMR read mode) and on files left by a killed run.  Everything except the checkpoint is loaded
eagerly and the file is closed again before it returns; :meth:`Results.checkpoint` reopens the
file when called, because the engine state can be large.  The layout is documented in
``docs/io_format.md``.

Usage::

    from gpusim.io import open_results
    res = open_results("run.h5")
    res.status                         # "running", "complete", "failed" or "interrupted"
    res.time_days                      # (T,) day
    res.timeseries["tumor_cells"]      # (R, T)
    res.units["/timeseries/tumor_cells"]
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gpusim.errors import OutputError
from gpusim.io.writer import SCHEMA

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# How long to keep retrying an open that fails while the writer briefly holds an exclusive
# lock (when it records the final status).
_OPEN_WAIT_S = 3.0


def _looks_like_hdf5(path: Path) -> bool:
    """True if the HDF5 signature is at byte 0, 512, 1024, 2048, ... (HDF5 spec, superblock)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            offset = 0
            while offset + 8 <= size:
                fh.seek(offset)
                if fh.read(8) == _HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def _open_h5(path: Path) -> h5py.File:
    """Open ``path`` read-only: SWMR read mode first, plain read mode as fallback."""
    if not path.exists():
        raise OutputError(f"cannot read results '{path}': no such file")
    if path.is_dir():
        raise OutputError(f"cannot read results '{path}': it is a directory")
    if not _looks_like_hdf5(path):
        raise OutputError(f"cannot read results '{path}': not an HDF5 file")
    deadline = time.monotonic() + _OPEN_WAIT_S
    while True:
        try:
            return h5py.File(path, "r", swmr=True)
        except OSError:
            pass
        try:  # files not written in SWMR mode (older superblock) refuse SWMR read in some HDF5s
            return h5py.File(path, "r")
        except OSError as exc:
            err = exc
        if "lock" not in str(err).lower() or time.monotonic() > deadline:
            raise OutputError(f"cannot read results '{path}': {err}") from err
        time.sleep(0.05)


def _py(value: Any) -> Any:
    """Attribute value as a plain Python object (str, int, float, bool) or a NumPy array."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_schema(f: h5py.File, path: Path) -> str:
    schema = _py(f.attrs.get("schema"))
    if schema != SCHEMA:
        what = "a non-gpusim HDF5" if schema is None else f"a {schema}"
        raise OutputError(f"'{path}' is {what} file; this gpusim reads {SCHEMA}")
    return schema


def _read(ds: h5py.Dataset, swmr: bool) -> np.ndarray:
    if swmr:
        ds.refresh()
    return np.asarray(ds[...])  # a 0-d array (not a NumPy scalar) for scalar datasets


@dataclass
class Results:
    """The content of one gpusim result file, as NumPy arrays.

    Attributes
    ----------
    path: the file.
    attrs: every root attribute (``schema``, ``status``, ``created_utc``, ``replicates``,
        ``gpusim_version``, ``backend``, ``device``, ``seed``, ..., and ``ended_utc``/``error``
        once the run has ended).
    status: ``"running"`` (being written, or killed), ``"complete"``, ``"failed"`` or
        ``"interrupted"``.
    schema: ``"gpusim/1"``.
    scenario_toml: the fully resolved scenario as TOML text.
    time_days: (T,) float64, day — output times.
    timeseries: name -> (R, T) float64 — one row per replicate.  ``T`` is the number of
        complete intervals (a partly written last interval is dropped).
    snapshot_times: (S,) float64, day.
    snapshots: name -> (S, Rs, Z, Y, X) lattice snapshots of the first ``Rs`` replicates.
    endpoints: name -> (R,) per-replicate outcomes (NaN / -1 until the run completes).
    units: dataset path (``"/timeseries/tumor_cells"``) -> units string.
    descriptions: dataset path -> description string.
    events: name -> (R, T) int64 — event counts per output interval (``/events``; empty for
        files written before it existed).
    profiles: name -> (R, T, nbins) float64 — per-interval profiles and histograms
        (``/profiles``; empty for older files).
    profile_edges: name -> (nbins + 1,) float64 — the bin edges of each profile.
    """

    path: Path
    attrs: dict[str, Any]
    status: str
    schema: str
    scenario_toml: str
    time_days: np.ndarray
    timeseries: dict[str, np.ndarray]
    snapshot_times: np.ndarray
    snapshots: dict[str, np.ndarray]
    endpoints: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    events: dict[str, np.ndarray] = field(default_factory=dict)
    profiles: dict[str, np.ndarray] = field(default_factory=dict)
    profile_edges: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def replicates(self) -> int:
        """Number of replicates ``R``."""
        return int(self.attrs["replicates"])

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def checkpoint(self) -> tuple[int, float, dict[str, np.ndarray]] | None:
        """The last valid checkpoint as ``(step, time_days, state)``, or None if there is none.

        Reads ``/checkpoint`` from the file now, or ``/checkpoint/previous`` when a kill left
        ``/checkpoint`` half written.  ``state`` maps each engine-state name to its array.  If a
        writer is still running and replaces the checkpoint while it is read, the read is
        repeated; the header (slot, valid, step, time) is re-read from a fresh open to check.
        """
        for _ in range(5):
            with _open_h5(self.path) as f:
                head = _checkpoint_head(f)
                if head is None:
                    return None
                swmr = f.swmr_mode
                g = _checkpoint_slot(f, head)
                state = {name: _read(ds, swmr) for name, ds in g["state"].items()}
            with _open_h5(self.path) as f:
                if _checkpoint_head(f) == head:
                    return head[0], head[1], state
        raise OutputError(f"the checkpoint in '{self.path}' kept changing while being read")


def _checkpoint_slot(f: h5py.File, head) -> h5py.Group:
    return f["checkpoint/previous"] if len(head) > 2 and head[2] else f["checkpoint"]


def _checkpoint_head(f: h5py.File) -> tuple | None:
    """``(step, time_days)`` of a valid ``/checkpoint``, else ``(step, time_days, "previous")``
    of a valid ``/checkpoint/previous`` (files of older writers have none), else None."""
    g = f.get("checkpoint")
    if g is None:
        return None
    swmr = f.swmr_mode
    if int(_read(g["valid"], swmr)) == 1:
        return int(_read(g["step"], swmr)), float(_read(g["time_days"], swmr))
    p = g.get("previous")
    if p is not None and int(_read(p["valid"], swmr)) == 1:
        return int(_read(p["step"], swmr)), float(_read(p["time_days"], swmr)), "previous"
    return None


def open_results(path: str | os.PathLike) -> Results:
    """Load a gpusim result file (finished, still being written, or left by a killed run).

    Raises OutputError if the file is missing, not HDF5, or not of schema ``gpusim/1``.
    """
    path = Path(path)
    with _open_h5(path) as f:
        schema = _check_schema(f, path)
        swmr = f.swmr_mode
        units: dict[str, str] = {}
        descriptions: dict[str, str] = {}

        def load(ds: h5py.Dataset) -> np.ndarray:
            units[ds.name] = _py(ds.attrs.get("units", ""))
            descriptions[ds.name] = _py(ds.attrs.get("description", ""))
            return _read(ds, swmr)

        attrs = {k: _py(v) for k, v in f.attrs.items()}
        scenario = f["scenario"]
        units[scenario.name] = _py(scenario.attrs.get("units", ""))
        descriptions[scenario.name] = _py(scenario.attrs.get("description", ""))
        scenario_toml = scenario.asstr()[()]

        # Time series: the writer grows time_days last, so T = len(time_days) normally; the
        # minimum over all datasets also covers files written by other means.
        g = f["timeseries"]
        time_days = load(g["time_days"])
        timeseries = {name: load(ds) for name, ds in g.items() if name != "time_days"}
        # /events and /profiles: absent in files of older writers (read as empty)
        events = {name: load(ds) for name, ds in f["events"].items()} if "events" in f else {}
        profiles, profile_edges = {}, {}
        if "profiles" in f:
            for name, ds in f["profiles"].items():
                if isinstance(ds, h5py.Dataset):
                    profiles[name] = load(ds)
            for name, ds in f["profiles"].get("bin_edges", {}).items():
                profile_edges[name] = load(ds)
        T = min([len(time_days), *(a.shape[1] for a in (*timeseries.values(), *events.values(),
                                                        *profiles.values()))])
        time_days = time_days[:T]
        timeseries = {k: a[:, :T] for k, a in timeseries.items()}
        events = {k: a[:, :T] for k, a in events.items()}
        profiles = {k: a[:, :T] for k, a in profiles.items()}

        g = f["snapshots"]
        snapshot_times = load(g["time_days"])
        snapshots = {name: load(ds) for name, ds in g.items() if name != "time_days"}
        S = min([len(snapshot_times), *(a.shape[0] for a in snapshots.values())])
        snapshot_times = snapshot_times[:S]
        snapshots = {k: a[:S] for k, a in snapshots.items()}

        endpoints = {name: load(ds) for name, ds in f["endpoints"].items()}

        g = f["checkpoint"]
        slots = [g] + ([g["previous"]] if "previous" in g else [])
        for ds in (d for s in slots for d in (s["valid"], s["step"], s["time_days"], *s["state"].values())):
            units[ds.name] = _py(ds.attrs.get("units", ""))
            descriptions[ds.name] = _py(ds.attrs.get("description", ""))

    return Results(
        path=path,
        attrs=attrs,
        status=str(attrs.get("status", "unknown")),
        schema=schema,
        scenario_toml=scenario_toml,
        time_days=time_days,
        timeseries=timeseries,
        snapshot_times=snapshot_times,
        snapshots=snapshots,
        endpoints=endpoints,
        units=units,
        descriptions=descriptions,
        events=events,
        profiles=profiles,
        profile_edges=profile_edges,
    )

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
    res.timeseries["tumour_cells"]      # (R, T)
    res.units["/timeseries/tumour_cells"]
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gpusim.errors import OutputError
from gpusim.io.paths import writer_active, writer_alive
from gpusim.io.schema import SCHEMA, py_value as _py

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


def _marked_swmr_writing(path: Path) -> bool:
    """True if the superblock (version 3, at byte 0) has the SWMR-write consistency flag."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[:8] == _HDF5_SIGNATURE and head[8] >= 3 and bool(head[11] & 0x04)


# Metadata read attempts of an SWMR reader.  HDF5's default (100, with growing sleeps) makes a
# damaged file take minutes to fail; a live writer's update in progress needs only a few.
_SWMR_READ_ATTEMPTS = 10
_swmr_fapl_cache: list = []


def _swmr_fapl():
    """A file-access property list with :data:`_SWMR_READ_ATTEMPTS` (``H5Pset_metadata_read_attempts``,
    which h5py does not wrap, called in h5py's own HDF5 library), or None where that fails."""
    if not _swmr_fapl_cache:
        fapl = None
        try:
            import ctypes
            import glob

            libs = glob.glob(os.path.join(os.path.dirname(h5py.__file__), os.pardir, "h5py.libs", "libhdf5-*.so*"))
            lib = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL(None)
            fn = lib.H5Pset_metadata_read_attempts
            fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
            fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
            fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
            if fn(fapl.id, _SWMR_READ_ATTEMPTS) < 0:
                fapl = None
        except Exception:  # pragma: no cover - another HDF5 build: keep HDF5's default
            fapl = None
        _swmr_fapl_cache.append(fapl)
    return _swmr_fapl_cache[0]


def _open_swmr(path: Path) -> h5py.File:
    fapl = _swmr_fapl()
    if fapl is None:
        return h5py.File(path, "r", swmr=True)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


def _open_h5(path: Path) -> h5py.File:
    """Open ``path`` read-only: SWMR read mode first, plain read mode as fallback."""
    if not path.exists():
        raise OutputError(f"cannot read results '{path}': no such file")
    if path.is_dir():
        raise OutputError(f"cannot read results '{path}': it is a directory")
    if not _looks_like_hdf5(path):
        raise OutputError(f"cannot read results '{path}': not an HDF5 file")
    # A file still marked as being written in SWMR mode (live, or its writer was killed) opens
    # in SWMR read mode.  Any other file opens in plain read mode first: HDF5 then checks its
    # length, so a truncated file fails at once (an SWMR reader retries damaged metadata reads
    # for minutes, taking them for a writer's update in progress).
    swmr_first = _marked_swmr_writing(path)
    deadline = time.monotonic() + _OPEN_WAIT_S
    while True:
        if swmr_first:
            try:
                return _open_swmr(path)
            except OSError:
                pass
        try:  # files not written in SWMR mode (older superblock) refuse SWMR read in some HDF5s
            return h5py.File(path, "r")
        except OSError as exc:
            err = exc
        locked = re.search(r"\block", str(err).lower()) is not None  # not "sblock"
        if not locked:
            raise _damaged(path, err) from None
        if time.monotonic() > deadline:
            raise OutputError(f"cannot read results '{path}': {' '.join(str(err).split())}") from None
        time.sleep(0.05)


def _check_schema(f: h5py.File, path: Path) -> str:
    schema = _py(f.attrs.get("schema"))
    if schema != SCHEMA:
        what = "a non-gpusim HDF5" if schema is None else f"a {schema}"
        raise OutputError(f"'{path}' is {what} file; this gpusim reads {SCHEMA}")
    return schema


def _read(ds: h5py.Dataset, swmr: bool, sel: Any = ...) -> np.ndarray:
    if swmr:
        ds.refresh()
    return np.asarray(ds[sel])  # a 0-d array (not a NumPy scalar) for scalar datasets


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
    units: dataset path (``"/timeseries/tumour_cells"``) -> units string.
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

    def to_xarray(self):
        """The file as an ``xarray.Dataset``: dims ``replicate``, ``time``, ``z``, ``y``, ``x``
        (snapshots: ``snapshot_time``, ``snapshot_replicate``), units and descriptions in each
        variable's attrs.  Needs the extra ``gpusim[xarray]`` (MissingExtraError, one line,
        without it); see :mod:`gpusim.io.dataset`."""
        from gpusim.io.dataset import to_xarray  # optional dependency, imported on use

        return to_xarray(self)

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
        try:
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
        except OutputError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise _damaged(self.path, exc) from None
        raise OutputError(f"the checkpoint in '{self.path}' kept changing while being read")

    @property
    def status_now(self) -> str:
        """``status``, except that a ``running`` file whose writer is gone (killed, or stopped by
        a write error before it could record one) reads ``interrupted``."""
        if self.status == "running" and self.path is not None:
            if not writer_active(self.path) and not writer_alive(self.attrs):
                return "interrupted"
        return self.status


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
    for attempt in range(4):
        try:
            return _load(path)
        except OutputError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            # a file being written may be caught mid-update: read it again before giving up
            if attempt == 3 or not _marked_swmr_writing(path):
                raise _damaged(path, exc) from None
            time.sleep(0.2)
    raise AssertionError("unreachable")  # pragma: no cover


def _damaged(path: Path, exc: BaseException) -> OutputError:
    """The one-line error for a result file that opens but cannot be read (cut short, corrupt)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 160:
        text = text[:157] + "..."
    return OutputError(f"cannot read results '{path}': the file is damaged or truncated ({text})")


class _Loader:
    """Reads the datasets of one open file, recording each one's units and description."""

    def __init__(self, f: h5py.File):
        self.f, self.swmr = f, f.swmr_mode
        self.units: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}

    def meta(self, ds: h5py.Dataset) -> None:
        self.units[ds.name], self.descriptions[ds.name] = (_py(ds.attrs.get("units", "")),
                                                           _py(ds.attrs.get("description", "")))

    def load(self, ds: h5py.Dataset, sel: Any = ...) -> np.ndarray:
        self.meta(ds)
        return _read(ds, self.swmr, sel)

    def series(self) -> dict[str, Any]:
        """``/timeseries``, ``/events``, ``/profiles``: the first T intervals of each.

        The writer grows time_days last, so T = len(time_days) normally; the minimum over all
        datasets also covers files written by other means.  Only the first T entries are read:
        data past them may be a write that never completed (a kill or a full disk in the middle
        of an interval).  ``/events`` and ``/profiles`` are absent in files of older writers
        (read as empty).
        """
        f = self.f
        groups = {"timeseries": f["timeseries"], "events": f.get("events"), "profiles": f.get("profiles")}
        time_days = self.load(groups["timeseries"]["time_days"])
        names = {k: ([n for n in g if n != "time_days" and isinstance(g[n], h5py.Dataset)] if g is not None else [])
                 for k, g in groups.items()}
        if self.swmr:
            for k, g in groups.items():
                for name in names[k]:
                    g[name].refresh()
        T = min([len(time_days), *(groups[k][n].shape[1] for k in groups for n in names[k])])
        out = {k: {n: self.load(groups[k][n], np.s_[:, :T]) for n in names[k]} for k in groups}
        pr_g = groups["profiles"]
        out["profile_edges"] = ({name: self.load(ds) for name, ds in pr_g["bin_edges"].items()}
                                if pr_g is not None and "bin_edges" in pr_g else {})
        out["time_days"] = time_days[:T]
        return out

    def snapshots(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``/snapshots``: the times and the first S snapshots of each field."""
        g = self.f["snapshots"]
        snapshot_times = self.load(g["time_days"])
        names = [name for name in g if name != "time_days"]
        if self.swmr:
            for name in names:
                g[name].refresh()
        S = min([len(snapshot_times), *(g[name].shape[0] for name in names)])
        return snapshot_times[:S], {name: self.load(g[name], np.s_[:S]) for name in names}

    def checkpoint_meta(self) -> None:
        """Units and descriptions of the checkpoint datasets (their data are read on demand)."""
        g = self.f["checkpoint"]
        slots = [g] + ([g["previous"]] if "previous" in g else [])
        for ds in (d for s in slots for d in (s["valid"], s["step"], s["time_days"], *s["state"].values())):
            self.meta(ds)


def _load(path: Path) -> Results:
    with _open_h5(path) as f:
        schema = _check_schema(f, path)
        ld = _Loader(f)
        attrs = {k: _py(v) for k, v in f.attrs.items()}
        ld.meta(f["scenario"])
        scenario_toml = f["scenario"].asstr()[()]
        series = ld.series()
        snapshot_times, snapshots = ld.snapshots()
        endpoints = {name: ld.load(ds) for name, ds in f["endpoints"].items()}
        ld.checkpoint_meta()
    return Results(
        path=path, attrs=attrs, status=str(attrs.get("status", "unknown")), schema=schema,
        scenario_toml=scenario_toml, time_days=series["time_days"], timeseries=series["timeseries"],
        snapshot_times=snapshot_times, snapshots=snapshots, endpoints=endpoints, units=ld.units,
        descriptions=ld.descriptions, events=series["events"] or {}, profiles=series["profiles"],
        profile_edges=series["profile_edges"])

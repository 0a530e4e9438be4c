"""The layout of a result file (schema ``gpusim/1``): what a file declares, how the writer
checks a declaration, creates the groups and datasets, and how a declaration is read back.

A file's *declarations* are its datasets' names, dtypes, shapes, units and descriptions: the
metrics (``/timeseries``), events, profiles, endpoints, snapshot fields and checkpoint arrays.
:class:`Declarations` holds them; :func:`normalize` checks the ones a caller gives the writer,
:func:`read_declarations` reads them back from an existing file (for a resume, or a merge of
part files), and :func:`create_layout` creates every dataset of a new file.  The layout is
documented in ``docs/io_format.md``.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from gpusim.errors import OutputError

SCHEMA = "gpusim/1"
"""Value of the root ``schema`` attribute of every file gpusim writes."""

STATUSES = ("running", "complete", "failed", "interrupted")
"""Possible values of the root ``status`` attribute."""

#: Root attributes set by the writer itself; ``attrs`` passed by the caller may not use them.
RESERVED_ATTRS = frozenset({"schema", "status", "created_utc", "ended_utc", "error", "replicates",
                            "writer_host", "writer_pid"})

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_NAMES = frozenset({"time_days"})

# Target size of one timeseries / snapshot chunk (bytes).  Small files, frequent appends.
_CHUNK_BYTES = 1 << 20


def utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds, e.g. ``2026-01-31T12:00:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def py_value(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python object (str, int, float, bool) or a NumPy array."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def units_and_description(ds: h5py.Dataset | h5py.Group) -> tuple[str, str]:
    """The ``units`` and ``description`` attributes of a dataset (``""`` where absent)."""
    return str(py_value(ds.attrs.get("units", ""))), str(py_value(ds.attrs.get("description", "")))


def carried_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The root attributes of a file that a rebuilt copy (resume, merge) carries over: all but
    the ones the writer sets itself (:data:`RESERVED_ATTRS`)."""
    return {k: v for k, v in attrs.items() if k not in RESERVED_ATTRS}


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise OutputError(f"{kind} name {name!r} is not a valid dataset name (use snake_case)")
    if name in _RESERVED_NAMES:
        raise OutputError(f"{kind} name {name!r} is reserved")
    return name


def _check_dtype(kind: str, name: str, dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise OutputError(f"{kind} {name!r}: {dtype!r} is not a numpy dtype") from exc
    if dt.kind not in "biuf":
        raise OutputError(f"{kind} {name!r}: dtype {dt} is not a bool, integer or float dtype")
    return dt


def fill_value(dt: np.dtype) -> Any:
    """Fill value of a not-yet-written endpoint: NaN (float), -1 (signed), max (unsigned), False."""
    if dt.kind == "f":
        return dt.type(np.nan)
    if dt.kind == "i":
        return dt.type(-1)
    if dt.kind == "u":
        return np.iinfo(dt).max
    return np.False_


def _check_attr_value(name: str, value: Any) -> Any:
    """Return ``value`` in a form h5py stores as an attribute, or raise OutputError."""
    if isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if isinstance(value, Path):
        return str(value)
    arr = np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if arr is None or arr.dtype.kind not in "biufU":
        raise OutputError(f"root attribute {name!r}: cannot store {type(value).__name__} {value!r}")
    return arr


def check_root_attrs(attrs: Mapping[str, Any], replicates: int) -> dict[str, Any]:
    """The caller's root attributes, checked: non-empty string names, none reserved (except a
    ``replicates`` equal to the writer's), values h5py can store.  OutputError otherwise."""
    root_attrs: dict[str, Any] = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise OutputError(f"root attribute name {key!r} is not a non-empty string")
        if key in RESERVED_ATTRS:
            if key == "replicates" and value == replicates:
                continue
            raise OutputError(f"root attribute {key!r} is set by the writer itself")
        root_attrs[key] = _check_attr_value(key, value)
    return root_attrs


def check_time(what: str, time_days: float, last: float) -> float:
    """``time_days`` as a float, checked to be finite and after ``last`` (day)."""
    t = float(time_days)
    if not np.isfinite(t) or t <= last:
        raise OutputError(f"{what} time {t} day is not finite and after the previous one ({last} day)")
    return t


def check_arrays(what: str, arrays: Mapping[str, Any], shapes: Mapping[str, tuple],
                 one: str | None = None) -> dict[str, np.ndarray]:
    """``arrays`` as NumPy arrays, checked to hold every name of ``shapes`` and no other, each of
    its shape there; OutputError naming ``what`` (``one``: the word for one array) otherwise."""
    missing = sorted(set(shapes) - set(arrays))
    unknown = sorted(set(arrays) - set(shapes))
    if missing or unknown:
        raise OutputError(f"{what}: missing {missing}, undeclared {unknown}")
    out = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.shape != shapes[name]:
            raise OutputError(f"{one or what} {name!r}: shape {arr.shape}, expected {shapes[name]}")
        out[name] = arr
    return out


@dataclass
class Declarations:
    """Every dataset a result file declares besides ``/scenario`` and the time axes.

    Attributes
    ----------
    metrics, events:
        name -> (units, description).
    profiles:
        name -> (bin edges (nbins + 1,) float64, edge units, edge description, units, description).
    endpoints, snapshot_fields:
        name -> (dtype, units, description).
    snapshot_shape:
        (Rs, Z, Y, X), or None without snapshot fields.
    checkpoint_spec:
        name -> (shape, dtype, units, description).
    checkpoint_backup:
        whether ``/checkpoint/previous`` exists.
    """

    metrics: dict[str, tuple] = field(default_factory=dict)
    endpoints: dict[str, tuple] = field(default_factory=dict)
    snapshot_fields: dict[str, tuple] = field(default_factory=dict)
    snapshot_shape: tuple[int, int, int, int] | None = None
    checkpoint_spec: dict[str, tuple] = field(default_factory=dict)
    events: dict[str, tuple] = field(default_factory=dict)
    profiles: dict[str, tuple] = field(default_factory=dict)
    checkpoint_backup: bool = False

    def writer_kwargs(self) -> dict[str, Any]:
        """The declarations as keyword arguments of :class:`gpusim.io.ResultWriter`."""
        return dict(metrics=self.metrics, endpoints=self.endpoints, snapshot_fields=self.snapshot_fields,
                    snapshot_shape=self.snapshot_shape, checkpoint_spec=self.checkpoint_spec,
                    events=self.events, profiles=self.profiles, checkpoint_backup=self.checkpoint_backup)


def _normalize_profiles(profiles: Mapping[str, tuple]) -> dict[str, tuple]:
    out = {}
    for name, (edges, eunits, edesc, units, description) in profiles.items():
        _check_name("profile", name)
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise OutputError(f"profile {name!r}: bin edges must be increasing, at least 2")
        out[name] = (edges, str(eunits), str(edesc), str(units), str(description))
    return out


def _normalize_snapshot_shape(snapshot_shape, replicates: int) -> tuple[int, int, int, int]:
    if snapshot_shape is None:
        raise OutputError("snapshot_fields given without snapshot_shape (Rs, Z, Y, X)")
    shape = tuple(int(n) for n in snapshot_shape)
    if len(shape) != 4 or min(shape) < 1 or shape[0] > replicates:
        raise OutputError(f"snapshot_shape must be (Rs, Z, Y, X) with 1 <= Rs <= {replicates}, "
                          f"got {snapshot_shape!r}")
    return shape  # type: ignore[return-value]


def _normalize_checkpoint(checkpoint_spec: Mapping[str, tuple]) -> dict[str, tuple]:
    out = {}
    for name, spec in checkpoint_spec.items():
        _check_name("checkpoint array", name)
        if len(spec) == 2:
            (shape, dtype), units, description = spec, "", f"engine state array {name!r}"
        elif len(spec) == 4:
            shape, dtype, units, description = spec
        else:
            raise OutputError(f"checkpoint array {name!r}: spec must be (shape, dtype[, units, description])")
        shape = tuple(int(n) for n in shape)
        out[name] = (shape, _check_dtype("checkpoint array", name, dtype), str(units), str(description))
    return out


def normalize(replicates: int, *, metrics, endpoints, snapshot_fields=None, snapshot_shape=None,
              checkpoint_spec=None, events=None, profiles=None, checkpoint_backup=False) -> Declarations:
    """Check the declarations given to the writer (names, dtypes, shapes; see
    :class:`gpusim.io.ResultWriter`) and return them with str units and NumPy dtypes.

    Raises OutputError naming the first invalid declaration.
    """
    d = Declarations(checkpoint_backup=bool(checkpoint_backup))
    for kind, given, out in (("metric", metrics, d.metrics), ("event", events or {}, d.events)):
        for name, (units, description) in given.items():
            out[_check_name(kind, name)] = (str(units), str(description))
    d.profiles = _normalize_profiles(profiles or {})
    for kind, given, out in (("endpoint", endpoints, d.endpoints),
                             ("snapshot field", snapshot_fields or {}, d.snapshot_fields)):
        for name, (dtype, units, description) in given.items():
            _check_name(kind, name)
            out[name] = (_check_dtype(kind, name, dtype), str(units), str(description))
    if d.snapshot_fields:
        d.snapshot_shape = _normalize_snapshot_shape(snapshot_shape, replicates)
    d.checkpoint_spec = _normalize_checkpoint(checkpoint_spec or {})
    return d


def read_declarations(f: h5py.File) -> Declarations:
    """Every declaration of an open result file, in the file's order (``/events`` and
    ``/profiles`` read as empty in files of older writers)."""
    meta = units_and_description
    snap = {n: (ds.dtype.str, *meta(ds)) for n, ds in f["snapshots"].items() if n != "time_days"}
    profiles = {}
    if "profiles" in f:
        edges = f["profiles/bin_edges"]
        profiles = {n: (np.asarray(edges[n][...]), *meta(edges[n]), *meta(ds))
                    for n, ds in f["profiles"].items() if isinstance(ds, h5py.Dataset)}
    return Declarations(
        metrics={n: meta(ds) for n, ds in f["timeseries"].items() if n != "time_days"},
        endpoints={n: (ds.dtype.str, *meta(ds)) for n, ds in f["endpoints"].items()},
        snapshot_fields=snap,
        snapshot_shape=tuple(f["snapshots"][next(iter(snap))].shape[1:]) if snap else None,
        checkpoint_spec={n: (ds.shape, ds.dtype.str, *meta(ds)) for n, ds in f["checkpoint/state"].items()},
        events={n: meta(ds) for n, ds in f["events"].items()} if "events" in f else {},
        profiles=profiles,
        checkpoint_backup="previous" in f["checkpoint"])


# ---- creating the layout of a new file ------------------------------------------------------
def _set_common(ds: h5py.Dataset, units: str, description: str) -> None:
    ds.attrs["units"] = str(units)
    ds.attrs["description"] = str(description)


def _create_root(f: h5py.File, R: int, root_attrs: dict[str, Any], scenario_toml: str) -> None:
    f.attrs["schema"] = SCHEMA
    f.attrs["status"] = "running"
    f.attrs["created_utc"] = utc_now()
    f.attrs["writer_host"] = socket.gethostname()
    f.attrs["writer_pid"] = np.int64(os.getpid())
    f.attrs["replicates"] = np.int64(R)
    for key, value in root_attrs.items():
        try:
            f.attrs[key] = value
        except (TypeError, ValueError, OverflowError) as exc:
            raise OutputError(f"root attribute {key!r}: cannot store {value!r} ({exc})") from exc
    ds = f.create_dataset("scenario", data=scenario_toml, dtype=h5py.string_dtype("utf-8"))
    _set_common(ds, "", "fully resolved scenario as TOML (re-runnable as is)")


def _create_series(f: h5py.File, R: int, d: Declarations, ct: int) -> None:
    """``/timeseries``, ``/events`` and ``/profiles``: (R, T[, nbins]), growing along T."""
    g = f.create_group("timeseries")
    ds = g.create_dataset("time_days", shape=(0,), maxshape=(None,), chunks=(ct,), dtype="f8")
    _set_common(ds, "day", "simulated time of each output interval")
    for name, (units, description) in d.metrics.items():
        ds = g.create_dataset(name, shape=(R, 0), maxshape=(R, None), chunks=(R, ct),
                              dtype="f8", fillvalue=np.nan)
        _set_common(ds, units, description)
    if d.events:
        g = f.create_group("events")
        for name, (units, description) in d.events.items():
            ds = g.create_dataset(name, shape=(R, 0), maxshape=(R, None), chunks=(R, ct),
                                  dtype="i8", fillvalue=-1)
            _set_common(ds, units, description)
    if d.profiles:
        g = f.create_group("profiles")
        ge = g.create_group("bin_edges")
        for name, (edges, eunits, edesc, units, description) in d.profiles.items():
            nb = edges.size - 1
            cp = max(1, min(1024, _CHUNK_BYTES // (8 * R * nb)))
            ds = g.create_dataset(name, shape=(R, 0, nb), maxshape=(R, None, nb), chunks=(R, cp, nb),
                                  dtype="f8", fillvalue=np.nan)
            _set_common(ds, units, description)
            ds = ge.create_dataset(name, data=edges)
            _set_common(ds, eunits, edesc)


def _create_snapshots(f: h5py.File, d: Declarations) -> None:
    """``/snapshots``: (S, Rs, Z, Y, X) per field, gzip-compressed, growing along S."""
    g = f.create_group("snapshots")
    ds = g.create_dataset("time_days", shape=(0,), maxshape=(None,), chunks=(64,), dtype="f8")
    _set_common(ds, "day", "simulated time of each lattice snapshot")
    if d.snapshot_shape is None:
        return
    rs, z, y, x = d.snapshot_shape
    for name, (dt, units, description) in d.snapshot_fields.items():
        cz = max(1, min(z, _CHUNK_BYTES // max(1, y * x * dt.itemsize)))
        ds = g.create_dataset(name, shape=(0, rs, z, y, x), maxshape=(None, rs, z, y, x),
                              chunks=(1, 1, cz, y, x), dtype=dt, compression="gzip",
                              compression_opts=4, shuffle=True)
        _set_common(ds, units, description)
    g.attrs["replicates"] = np.int64(rs)


def _create_checkpoint_slot(g: h5py.Group, d: Declarations, what: str) -> None:
    ds = g.create_dataset("valid", data=np.int8(0))
    _set_common(ds, "", what + "1 when this slot holds a complete state, 0 while it is being written or if never written")
    ds = g.create_dataset("step", data=np.int64(-1))
    _set_common(ds, "step", what + "engine step of the checkpointed state (-1: none)")
    ds = g.create_dataset("time_days", data=np.float64(np.nan))
    _set_common(ds, "day", what + "simulated time of the checkpointed state")
    s = g.create_group("state")
    for name, (shape, dt, units, description) in d.checkpoint_spec.items():
        # Allocate the storage now: under SWMR the file layout should only grow by resizes.
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        ds = s.create_dataset(name, shape=shape, dtype=dt, dcpl=dcpl)
        _set_common(ds, units, description)


def create_layout(f: h5py.File, R: int, d: Declarations, root_attrs: dict[str, Any],
                  scenario_toml: str) -> int:
    """Create every group and dataset of a new file (SWMR forbids creating them later).

    ``R``: replicates; ``d``: normalized declarations.  Returns the time-axis chunk length
    (intervals per chunk of a ``/timeseries`` dataset).
    """
    _create_root(f, R, root_attrs, scenario_toml)
    ct = max(1, min(1024, _CHUNK_BYTES // (8 * R)))
    _create_series(f, R, d, ct)
    _create_snapshots(f, d)
    g = f.create_group("endpoints")
    for name, (dt, units, description) in d.endpoints.items():
        ds = g.create_dataset(name, shape=(R,), dtype=dt, fillvalue=fill_value(dt))
        _set_common(ds, units, description)
    g = f.create_group("checkpoint")
    _create_checkpoint_slot(g, d, "")
    if d.checkpoint_backup:
        _create_checkpoint_slot(g.create_group("previous"), d, "copy of the last complete checkpoint; ")
    return ct

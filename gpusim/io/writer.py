"""Streaming HDF5 writer for gpusim result files (schema ``gpusim/1``).

A :class:`ResultWriter` creates one result file, declares every dataset up front, switches the
file to HDF5 SWMR ("single writer, multiple readers") mode and then only resizes and writes,
flushing after every output interval.  This gives two guarantees:

* a reader (:func:`gpusim.io.open_results`, or plain ``h5py.File(path, "r", swmr=True)``) can
  open the file while the run is still going and sees every flushed interval;
* a writer killed outright (``SIGKILL``, out-of-memory killer) leaves a file that still opens
  and holds every interval flushed before the kill, with ``status`` still ``"running"``.

Root attributes cannot be changed safely under SWMR, so the final ``status`` (``complete``,
``failed``, ``interrupted``) is written after closing the SWMR handle and reopening the file
in ordinary read-write mode.  The layout is documented in ``docs/io_format.md``.

Usage::

    with ResultWriter("run.h5", replicates=R, attrs={...}, scenario_toml=text,
                      metrics={"tumour_cells": ("cells", "live tumour cells")},
                      endpoints={"cleared": ("bool", "", "tumour cleared by the end")}) as w:
        for t in output_times:
            w.append(t, {"tumour_cells": counts})          # counts: shape (R,)
        w.finish({"cleared": cleared})                     # cleared: shape (R,)

Leaving the ``with`` block with an exception records ``status="failed"`` (``"interrupted"``
for ``KeyboardInterrupt``/``SystemExit``) and keeps everything already flushed.  Nothing is
ever written from ``__del__``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import socket
import time
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gpusim.errors import OutputError

SCHEMA = "gpusim/1"
"""Value of the root ``schema`` attribute of every file this module writes."""

STATUSES = ("running", "complete", "failed", "interrupted")
"""Possible values of the root ``status`` attribute."""

#: Root attributes set by the writer itself; ``attrs`` passed by the caller may not use them.
RESERVED_ATTRS = frozenset({"schema", "status", "created_utc", "ended_utc", "error", "replicates",
                            "writer_host", "writer_pid"})

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_NAMES = frozenset({"time_days"})

# Target size of one timeseries / snapshot chunk (bytes).  Small files, frequent appends.
_CHUNK_BYTES = 1 << 20
# How long finish()/close() keep retrying to reopen the file read-write while another
# process (a live reader) holds a lock on it, before opening it without file locking.
_REOPEN_WAIT_S = 2.0
# How long a new writer retries the output lock (a reader probing it holds it for microseconds).
_LOCK_WAIT_S = 0.5
# Free space (bytes) kept in reserve beyond each write, so that a writer that stops on a full
# disk can still close the file cleanly and record status "failed".
_SPACE_MARGIN = 1 << 20
# Free space (bytes) needed to try recording status "failed" after a write error.
_STATUS_ROOM = 1 << 18


def _utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds, e.g. ``2026-01-31T12:00:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def _fill_value(dt: np.dtype) -> Any:
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


def _writer_alive(attrs: Mapping[str, Any]) -> bool:
    """True if the process that created the file (root attrs writer_host/writer_pid) still runs
    on this host.  A different host cannot be checked, and counts as not alive."""
    pid = attrs.get("writer_pid")
    if attrs.get("writer_host") != socket.gethostname() or pid is None or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)  # flock's "another holds it"


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of the writer of ``path``: ``.<name>.lock`` in the same directory."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def writer_active(path: str | os.PathLike) -> bool:
    """True while a live :class:`ResultWriter` (any process on this host, or on a file system
    with working ``flock``) holds the lock of ``path``.  Takes the lock for a moment to test it."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in _HELD  # else a file system without flock: cannot tell, say no
    finally:
        os.close(fd)  # also releases a lock taken just now
    return False


def _acquire_lock(path: Path) -> int:
    """Take the writer lock of ``path`` (an ``flock`` on its lock file); returns the descriptor.

    OutputError if another live writer holds it.  The lock file is removed when the writer
    releases it; the identity check after locking covers a writer that removed it meanwhile.
    """
    lp = lock_path(path)
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file '{lp}' of output '{path}': "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in _HELD:  # a file system without flock: write without the lock
                return fd
            os.close(fd)
            if time.monotonic() > deadline:
                raise OutputError(f"output file '{path}' is being written by another gpusim process "
                                  f"(lock '{lp}'); wait for it or choose another output") from None
            time.sleep(0.02)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(lp).st_ino
        except OSError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the lock file before we locked it: take a fresh one


def _release_lock(path: Path, fd: int | None) -> None:
    if fd is None:
        return
    try:
        lock_path(path).unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)


def _lookup3(data: bytes) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` with initval 0: the HDF5 metadata checksum."""
    M = 0xFFFFFFFF
    rot = lambda x, k: ((x << k) | (x >> (32 - k))) & M
    n = len(data)
    a = b = c = (0xDEADBEEF + n) & M
    i = 0
    word = lambda j: int.from_bytes(data[j:j + 4].ljust(4, b"\0"), "little")
    while n - i > 12:
        a, b, c = (a + word(i)) & M, (b + word(i + 4)) & M, (c + word(i + 8)) & M
        a = (a - c) & M; a ^= rot(c, 4); c = (c + b) & M  # noqa: E702
        b = (b - a) & M; b ^= rot(a, 6); a = (a + c) & M  # noqa: E702
        c = (c - b) & M; c ^= rot(b, 8); b = (b + a) & M  # noqa: E702
        a = (a - c) & M; a ^= rot(c, 16); c = (c + b) & M  # noqa: E702
        b = (b - a) & M; b ^= rot(a, 19); a = (a + c) & M  # noqa: E702
        c = (c - b) & M; c ^= rot(b, 4); b = (b + a) & M  # noqa: E702
        i += 12
    if n == i:
        return c
    a, b, c = (a + word(i)) & M, (b + word(i + 4)) & M, (c + word(i + 8)) & M
    c ^= b; c = (c - rot(b, 14)) & M  # noqa: E702
    a ^= c; a = (a - rot(c, 11)) & M  # noqa: E702
    b ^= a; b = (b - rot(a, 25)) & M  # noqa: E702
    c ^= b; c = (c - rot(b, 16)) & M  # noqa: E702
    a ^= c; a = (a - rot(c, 4)) & M  # noqa: E702
    b ^= a; b = (b - rot(a, 14)) & M  # noqa: E702
    c ^= b; c = (c - rot(b, 24)) & M  # noqa: E702
    return c


def _clear_status_flags(path: Path) -> bool:
    """Clear the file-consistency flags of a version 2/3 superblock (what ``h5clear -s`` does).

    A writer abandoned after a write error leaves them set ("file is already open for write");
    the file content is that of its last flush.  Also extends a file shorter than its recorded
    end of allocation (sparse, no disk space).  Returns False, changing nothing, when the
    superblock is not one this function knows (its checksum must verify).
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != b"\x89HDF\r\n\x1a\n" or head[8] not in (2, 3):
            return False
        o = head[9]
        rest = fh.read(4 * o + 4)
        sb = bytearray(head + rest)
        if len(sb) != 16 + 4 * o or int.from_bytes(sb[-4:], "little") != _lookup3(bytes(sb[:-4])):
            return False
        eoa = int.from_bytes(sb[12 + 2 * o:12 + 3 * o], "little")
        sb[11] = 0
        sb[-4:] = _lookup3(bytes(sb[:-4])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(bytes(sb))
        fh.flush()
        if os.fstat(fh.fileno()).st_size < eoa:
            fh.truncate(eoa)
    return True


def _abandon(f: h5py.File) -> None:
    """Close ``f`` without writing another byte to the file: its descriptor is first pointed at
    an anonymous in-memory file, so HDF5 closes cleanly (its last writes land there) and the
    file on disk stays exactly as it was at its last successful flush."""
    try:
        fd = f.id.get_vfd_handle()
        sink = os.memfd_create("gpusim-abandoned")
        try:
            os.dup2(sink, fd)
        finally:
            os.close(sink)
    except Exception:  # pragma: no cover - no descriptor to replace; close as best we can
        pass
    try:
        f.close()
    except Exception:
        pass


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (HDF5 messages span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _reason(exc: BaseException) -> str:
    """What went wrong in an I/O error, short: the system's message (from HDF5's long text)."""
    m = re.search(r"errno = (\d+), error message = '([^']*)'", str(exc))
    if isinstance(exc, OSError) and exc.strerror and not m:
        return exc.strerror
    if m:
        return f"{m.group(2)} (errno {m.group(1)})"
    return _first_line(exc)


def check_output_path(path: str | os.PathLike) -> None:
    """OutputError for an output name that cannot be a file: empty, a directory name, or a
    dangling symbolic link."""
    raw = os.fspath(path)
    path = Path(raw)
    if not raw.strip() or raw.endswith(("/", os.sep)) or path.name in ("", ".", ".."):
        raise OutputError(f"output path {raw!r} is not a file name; give one such as 'results/run.h5'")
    if path.is_symlink() and not path.exists():
        raise OutputError(f"output path '{path}' is a dangling symbolic link (to '{os.readlink(path)}'); "
                          "remove it or choose another output")


def _py_attr(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _set_common(ds: h5py.Dataset, units: str, description: str) -> None:
    ds.attrs["units"] = str(units)
    ds.attrs["description"] = str(description)


class ResultWriter:
    """Write one gpusim result file, streaming, in SWMR mode.  Use as a context manager.

    Parameters
    ----------
    path:
        Output file.  Must not exist unless ``force``; its directory must exist and be writable.
    replicates:
        Number of replicates ``R`` (>= 1).
    attrs:
        Extra root attributes (``gpusim_version``, ``backend``, ``device``, ``seed``,
        ``first_replicate``, ...): str, bool, int, float, or a list/array of those.
    scenario_toml:
        The fully resolved scenario as TOML text; stored as the scalar string ``/scenario``.
    metrics:
        ``name -> (units, description)``.  Each becomes ``/timeseries/<name>``, float64, shape
        ``(R, T)``, one column per :meth:`append`.
    endpoints:
        ``name -> (dtype, units, description)``.  Each becomes ``/endpoints/<name>``, shape
        ``(R,)``, pre-filled with NaN (floats), -1 (signed ints), the maximum (unsigned ints)
        or False (bool) until :meth:`finish` writes it.
    events:
        ``name -> (units, description)``.  Each becomes ``/events/<name>``, int64, shape
        ``(R, T)``: counts per output interval, one column per :meth:`append` (fill -1).
    profiles:
        ``name -> (edges, edge_units, edge_description, units, description)``.  Each becomes
        ``/profiles/<name>``, float64, shape ``(R, T, nbins)``, one ``(R, nbins)`` slab per
        :meth:`append`, and ``/profiles/bin_edges/<name>`` (``nbins + 1``,) float64, its bin
        edges (in ``edge_units``).
    snapshot_fields:
        ``name -> (dtype, units, description)``.  Each becomes ``/snapshots/<name>``, shape
        ``(S, Rs, Z, Y, X)``, gzip-compressed, one entry per :meth:`snapshot`.
    snapshot_shape:
        ``(Rs, Z, Y, X)``: replicates kept in snapshots and lattice size in voxels.  Required
        when ``snapshot_fields`` is not empty.
    checkpoint_spec:
        ``name -> (shape, dtype)`` or ``name -> (shape, dtype, units, description)`` of every
        array of the engine state; each becomes ``/checkpoint/state/<name>``, overwritten by
        every :meth:`checkpoint`.
    force:
        Replace an existing file at ``path``.  Nothing else is ever overwritten.
    checkpoint_backup:
        Also create ``/checkpoint/previous``, a second slot that holds a copy of the last
        complete checkpoint while the next one is written (see :meth:`checkpoint`), so that a
        kill during a checkpoint never leaves the file without one.  The runner always asks for
        it; it doubles the checkpoint's disk space.

    Raises
    ------
    OutputError
        If the file exists (and not ``force``), the directory is missing or not writable, a
        declaration is invalid, or HDF5 fails.  No file is left behind in that case, and an
        existing file is left untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        replicates: int,
        attrs: Mapping[str, Any],
        scenario_toml: str,
        metrics: Mapping[str, tuple[str, str]],
        endpoints: Mapping[str, tuple[str, str, str]],
        snapshot_fields: Mapping[str, tuple[str, str, str]] | None = None,
        snapshot_shape: tuple[int, int, int, int] | None = None,
        checkpoint_spec: Mapping[str, tuple] | None = None,
        force: bool = False,
        checkpoint_backup: bool = False,
        events: Mapping[str, tuple[str, str]] | None = None,
        profiles: Mapping[str, tuple] | None = None,
        _prefill=None,
    ) -> None:
        self._file: h5py.File | None = None
        self._closed = True
        self._lock: int | None = None
        self._ckpt_backup = bool(checkpoint_backup)
        self.path = Path(path)
        self.status = "running"

        # ---- validate everything before touching the file system ------------------------
        check_output_path(self.path)
        if self.path.exists() and not force:
            raise OutputError(f"output file '{self.path}' exists; pass --force to overwrite it")
        if self.path.is_dir():
            raise OutputError(f"output path '{self.path}' is a directory")
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(f"output directory '{parent}' does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"output directory '{parent}' is not writable")

        if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 1:
            raise OutputError(f"replicates must be a positive integer, got {replicates!r}")
        self.replicates = R = int(replicates)

        root_attrs: dict[str, Any] = {}
        for key, value in attrs.items():
            if not isinstance(key, str) or not key:
                raise OutputError(f"root attribute name {key!r} is not a non-empty string")
            if key in RESERVED_ATTRS:
                if key == "replicates" and value == R:
                    continue
                raise OutputError(f"root attribute {key!r} is set by the writer itself")
            root_attrs[key] = _check_attr_value(key, value)
        if not isinstance(scenario_toml, str):
            raise OutputError("scenario_toml must be a str")

        self._metrics = {}
        for name, (units, description) in metrics.items():
            self._metrics[_check_name("metric", name)] = (str(units), str(description))
        self._events = {}
        for name, (units, description) in (events or {}).items():
            self._events[_check_name("event", name)] = (str(units), str(description))
        self._profiles = {}
        for name, (edges, eunits, edesc, units, description) in (profiles or {}).items():
            _check_name("profile", name)
            edges = np.asarray(edges, dtype=np.float64)
            if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
                raise OutputError(f"profile {name!r}: bin edges must be increasing, at least 2")
            self._profiles[name] = (edges, str(eunits), str(edesc), str(units), str(description))
        self._endpoints = {}
        for name, (dtype, units, description) in endpoints.items():
            _check_name("endpoint", name)
            self._endpoints[name] = (_check_dtype("endpoint", name, dtype), str(units), str(description))
        self._snap_fields = {}
        for name, (dtype, units, description) in (snapshot_fields or {}).items():
            _check_name("snapshot field", name)
            self._snap_fields[name] = (_check_dtype("snapshot field", name, dtype), str(units), str(description))
        self._snap_shape: tuple[int, int, int, int] | None = None
        if self._snap_fields:
            if snapshot_shape is None:
                raise OutputError("snapshot_fields given without snapshot_shape (Rs, Z, Y, X)")
            shape = tuple(int(n) for n in snapshot_shape)
            if len(shape) != 4 or min(shape) < 1 or shape[0] > R:
                raise OutputError(f"snapshot_shape must be (Rs, Z, Y, X) with 1 <= Rs <= {R}, got {snapshot_shape!r}")
            self._snap_shape = shape  # type: ignore[assignment]
        self._ckpt_spec: dict[str, tuple[tuple[int, ...], np.dtype, str, str]] = {}
        for name, spec in (checkpoint_spec or {}).items():
            _check_name("checkpoint array", name)
            if len(spec) == 2:
                (shape, dtype), units, description = spec, "", f"engine state array {name!r}"
            elif len(spec) == 4:
                shape, dtype, units, description = spec
            else:
                raise OutputError(f"checkpoint array {name!r}: spec must be (shape, dtype[, units, description])")
            shape = tuple(int(n) for n in shape)
            self._ckpt_spec[name] = (shape, _check_dtype("checkpoint array", name, dtype), str(units), str(description))

        # ---- build the file under a temporary name, then move it into place -------------
        # The temporary file sits next to the target (same file system), so the final step is
        # an atomic link/rename and an existing target is never touched before it succeeds.
        # One live writer per output path: the lock is held until the final status is written.
        self._lock = _acquire_lock(self.path)
        tmp = parent / f".{self.path.name}.{secrets.token_hex(4)}.partial"
        try:
            f = h5py.File(tmp, "x", libver="latest")
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # HDF5 may leave an empty file when the disk is full
            _release_lock(self.path, self._lock)
            raise OutputError(f"cannot create a file in output directory '{parent}': "
                              f"{_reason(exc)}") from None
        try:
            self._build(f, R, root_attrs, scenario_toml)
            if _prefill is not None:  # resume(): copy the kept data before SWMR and the move
                _prefill(f)
            f.swmr_mode = True  # = H5Fstart_swmr_write: from here on only resize and write
            f.flush()
            self._move_into_place(tmp, force)
        except BaseException as exc:
            try:
                _abandon(f)
            finally:
                tmp.unlink(missing_ok=True)
                _release_lock(self.path, self._lock)
            if isinstance(exc, OutputError) or not isinstance(exc, Exception):
                raise
            raise OutputError(f"cannot create output file '{self.path}': {_reason(exc)}") from None

        self._file = f
        self._closed = False
        self._T = 0  # number of timeseries intervals written
        self._mirror_pending = False  # a checkpoint not yet copied to /checkpoint/previous
        self._S = 0  # number of snapshots written
        self._last_t = -np.inf
        self._last_snap_t = -np.inf
        if _prefill is not None:
            td, sd = f["timeseries/time_days"], f["snapshots/time_days"]
            self._T, self._S = td.shape[0], sd.shape[0]
            self._last_t = float(td[-1]) if self._T else -np.inf
            self._last_snap_t = float(sd[-1]) if self._S else -np.inf

    @classmethod
    def resume(cls, path: str | os.PathLike) -> "ResultWriter":
        """Reopen a result file left unfinished, to continue it from its last checkpoint.

        The file must hold a valid checkpoint (``/checkpoint/valid == 1``) and must not be
        ``complete``.  Every declaration (metrics, endpoints, snapshot fields and shape,
        checkpoint arrays, root attributes, scenario) is read back from the file.  The file is
        rebuilt under a temporary name with the time series and snapshots up to the checkpoint's
        time (later ones are dropped: the resumed run writes them again) and the checkpoint
        itself, then atomically moved over the original: a kill at any moment leaves either the
        old or the rebuilt file, both resumable.  ``created_utc`` is kept; ``resumed_utc`` and
        ``resumes`` (count) record the resume.  Returns an open writer positioned after the
        checkpoint.

        Raises OutputError if the file cannot be read, is of another schema, is complete, or has
        no valid checkpoint.
        """
        from gpusim.io.reader import open_results  # local: reader imports this module

        path = Path(path)
        res = open_results(path)
        if res.status == "complete":
            raise OutputError(f"'{path}' is already complete; nothing to resume")
        if writer_active(path):
            raise OutputError(f"'{path}' is still being written by another gpusim process "
                              f"(lock '{lock_path(path)}'); stop it first (a resume would replace the live file)")
        if res.status == "running" and _writer_alive(res.attrs):
            raise OutputError(f"'{path}' is still being written by process {res.attrs['writer_pid']} "
                              "on this host; stop it first (a resume would replace the live file)")
        ckpt = res.checkpoint()
        if ckpt is None:
            raise OutputError(f"'{path}' has no valid checkpoint to resume from "
                              "(it was stopped before the first one); run it again with --force")
        try:  # the rebuilt copy sits next to the file until it replaces it
            st = os.statvfs(path.parent if str(path.parent) else ".")
            free, need = st.f_bavail * st.f_frsize, path.stat().st_size + _SPACE_MARGIN
        except OSError:
            free = need = 0
        if free < need:
            raise OutputError(f"cannot resume '{path}': No space left on device (the rebuilt copy needs "
                              f"about {need} bytes, {free} free); free space and run the resume again")
        step, t_ck, state = ckpt
        with h5py.File(path, "r", swmr=True) as f:
            def meta(ds):
                return str(_py_attr(ds.attrs.get("units", ""))), str(_py_attr(ds.attrs.get("description", "")))
            metrics = {n: meta(ds) for n, ds in f["timeseries"].items() if n != "time_days"}
            endpoints = {n: (ds.dtype.str, *meta(ds)) for n, ds in f["endpoints"].items()}
            snap = {n: (ds.dtype.str, *meta(ds)) for n, ds in f["snapshots"].items() if n != "time_days"}
            snap_shape = tuple(next(iter(f["snapshots"][n] for n in snap)).shape[1:]) if snap else None
            ckspec = {n: (ds.shape, ds.dtype.str, *meta(ds)) for n, ds in f["checkpoint/state"].items()}
            order = {g: list(f[g].keys()) for g in ("timeseries", "endpoints", "snapshots")}
            events = {n: meta(ds) for n, ds in f["events"].items()} if "events" in f else {}
            profiles = ({n: (np.asarray(f["profiles/bin_edges"][n][...]), *meta(f["profiles/bin_edges"][n]),
                             *meta(ds))
                         for n, ds in f["profiles"].items() if isinstance(ds, h5py.Dataset)}
                        if "profiles" in f else {})
            backup = "previous" in f["checkpoint"]
        attrs = {k: v for k, v in res.attrs.items() if k not in RESERVED_ATTRS}
        attrs["resumes"] = int(attrs.get("resumes", 0)) + 1
        attrs["resumed_utc"] = _utc_now()
        created = res.attrs.get("created_utc")
        keep_t = res.time_days <= t_ck
        keep_s = res.snapshot_times <= t_ck

        def put(ds: h5py.Dataset, data, shape=None) -> None:
            if shape is not None:
                ds.resize(shape)
            if np.size(data):
                ds[...] = data
            ds.flush()  # a write error (full disk) raises here, not when ``ds`` is released

        def prefill(f: h5py.File) -> None:
            if created is not None:
                f.attrs["created_utc"] = created
            T = int(keep_t.sum())
            g = f["timeseries"]
            for name in metrics:
                put(g[name], res.timeseries[name][:, :T], (res.replicates, T))
            put(g["time_days"], res.time_days[:T], (T,))
            for name in events:
                put(f["events"][name], res.events[name][:, :T], (res.replicates, T))
            for name in profiles:
                ds = f["profiles"][name]
                put(ds, res.profiles[name][:, :T], (res.replicates, T, ds.shape[2]))
            S = int(keep_s.sum())
            g = f["snapshots"]
            for name in snap:
                put(g[name], res.snapshots[name][:S], (S, *snap_shape))
            put(g["time_days"], res.snapshot_times[:S], (S,))
            for g in (f["checkpoint"], *([f["checkpoint/previous"]] if backup else [])):
                for name, arr in state.items():
                    put(g["state"][name], arr)
                put(g["step"], np.int64(step))
                put(g["time_days"], np.float64(t_ck))
                put(g["valid"], np.int8(1))

        w = cls(path, replicates=res.replicates, attrs=attrs, scenario_toml=res.scenario_toml,
                metrics={n: metrics[n] for n in order["timeseries"] if n in metrics},
                endpoints={n: endpoints[n] for n in order["endpoints"]},
                snapshot_fields={n: snap[n] for n in order["snapshots"] if n in snap},
                snapshot_shape=snap_shape, checkpoint_spec=ckspec, force=True,
                checkpoint_backup=backup, events=events, profiles=profiles, _prefill=prefill)
        w.resumed_from = (step, t_ck)
        return w

    # ------------------------------------------------------------------------------------
    def _build(self, f: h5py.File, R: int, root_attrs: dict[str, Any], scenario_toml: str) -> None:
        """Create every group and dataset (SWMR forbids creating them later)."""
        f.attrs["schema"] = SCHEMA
        f.attrs["status"] = "running"
        f.attrs["created_utc"] = _utc_now()
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

        ct = self._ct = max(1, min(1024, _CHUNK_BYTES // (8 * R)))
        g = f.create_group("timeseries")
        ds = g.create_dataset("time_days", shape=(0,), maxshape=(None,), chunks=(ct,), dtype="f8")
        _set_common(ds, "day", "simulated time of each output interval")
        for name, (units, description) in self._metrics.items():
            ds = g.create_dataset(name, shape=(R, 0), maxshape=(R, None), chunks=(R, ct),
                                  dtype="f8", fillvalue=np.nan)
            _set_common(ds, units, description)

        if self._events:
            g = f.create_group("events")
            for name, (units, description) in self._events.items():
                ds = g.create_dataset(name, shape=(R, 0), maxshape=(R, None), chunks=(R, ct),
                                      dtype="i8", fillvalue=-1)
                _set_common(ds, units, description)
        if self._profiles:
            g = f.create_group("profiles")
            ge = g.create_group("bin_edges")
            for name, (edges, eunits, edesc, units, description) in self._profiles.items():
                nb = edges.size - 1
                cp = max(1, min(1024, _CHUNK_BYTES // (8 * R * nb)))
                ds = g.create_dataset(name, shape=(R, 0, nb), maxshape=(R, None, nb), chunks=(R, cp, nb),
                                      dtype="f8", fillvalue=np.nan)
                _set_common(ds, units, description)
                ds = ge.create_dataset(name, data=edges)
                _set_common(ds, eunits, edesc)

        g = f.create_group("snapshots")
        ds = g.create_dataset("time_days", shape=(0,), maxshape=(None,), chunks=(64,), dtype="f8")
        _set_common(ds, "day", "simulated time of each lattice snapshot")
        if self._snap_shape is not None:
            rs, z, y, x = self._snap_shape
            for name, (dt, units, description) in self._snap_fields.items():
                cz = max(1, min(z, _CHUNK_BYTES // max(1, y * x * dt.itemsize)))
                ds = g.create_dataset(name, shape=(0, rs, z, y, x), maxshape=(None, rs, z, y, x),
                                      chunks=(1, 1, cz, y, x), dtype=dt, compression="gzip",
                                      compression_opts=4, shuffle=True)
                _set_common(ds, units, description)
            g.attrs["replicates"] = np.int64(rs)

        g = f.create_group("endpoints")
        for name, (dt, units, description) in self._endpoints.items():
            ds = g.create_dataset(name, shape=(R,), dtype=dt, fillvalue=_fill_value(dt))
            _set_common(ds, units, description)

        g = f.create_group("checkpoint")
        self._build_checkpoint_slot(g, "")
        if self._ckpt_backup:
            self._build_checkpoint_slot(g.create_group("previous"), "copy of the last complete checkpoint; ")

    def _build_checkpoint_slot(self, g: h5py.Group, what: str) -> None:
        ds = g.create_dataset("valid", data=np.int8(0))
        _set_common(ds, "", what + "1 when this slot holds a complete state, 0 while it is being written or if never written")
        ds = g.create_dataset("step", data=np.int64(-1))
        _set_common(ds, "step", what + "engine step of the checkpointed state (-1: none)")
        ds = g.create_dataset("time_days", data=np.float64(np.nan))
        _set_common(ds, "day", what + "simulated time of the checkpointed state")
        s = g.create_group("state")
        for name, (shape, dt, units, description) in self._ckpt_spec.items():
            # Allocate the storage now: under SWMR the file layout should only grow by resizes.
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            ds = s.create_dataset(name, shape=shape, dtype=dt, dcpl=dcpl)
            _set_common(ds, units, description)

    def _move_into_place(self, tmp: Path, force: bool) -> None:
        if force:
            os.replace(tmp, self.path)
            return
        try:
            os.link(tmp, self.path)  # atomic, fails if the target appeared meanwhile
        except FileExistsError:
            raise OutputError(f"output file '{self.path}' exists; pass --force to overwrite it") from None
        except OSError:
            # File system without hard links: check-then-rename.
            if self.path.exists():
                raise OutputError(f"output file '{self.path}' exists; pass --force to overwrite it") from None
            os.replace(tmp, self.path)
        else:
            tmp.unlink()

    # ------------------------------------------------------------------------------------
    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close("failed", "writer closed without finish()")
        else:
            status = "interrupted" if issubclass(exc_type, (KeyboardInterrupt, SystemExit)) else "failed"
            message = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
            self._close_quietly(status, message)

    def _close_quietly(self, status: str, error: str) -> None:
        # Never let recording the status hide the exception that is propagating.
        try:
            self.close(status, error)
        except Exception as exc:  # pragma: no cover - depends on the file system failing
            warnings.warn(f"could not record status {status!r} in '{self.path}': {exc}", stacklevel=3)

    def _require_open(self) -> h5py.File:
        if self._closed or self._file is None:
            raise OutputError(f"result writer for '{self.path}' is closed")
        return self._file

    def _check_arrays(self, what: str, arrays: Mapping[str, Any], declared, shape: tuple) -> dict[str, np.ndarray]:
        missing = sorted(set(declared) - set(arrays))
        unknown = sorted(set(arrays) - set(declared))
        if missing or unknown:
            raise OutputError(f"{what}: missing {missing}, undeclared {unknown}")
        out = {}
        for name, value in arrays.items():
            arr = np.asarray(value)
            if arr.shape != shape:
                raise OutputError(f"{what} {name!r}: shape {arr.shape}, expected {shape}")
            out[name] = arr
        return out

    @staticmethod
    def _check_arrays_any(what: str, arrays: Mapping[str, Any], declared) -> dict[str, np.ndarray]:
        missing = sorted(set(declared) - set(arrays))
        unknown = sorted(set(arrays) - set(declared))
        if missing or unknown:
            raise OutputError(f"{what}: missing {missing}, undeclared {unknown}")
        return {name: np.asarray(v) for name, v in arrays.items()}

    def timeseries(self, name: str) -> np.ndarray:
        """The (R, T) values of metric ``name`` written so far, or the (T,) ``time_days`` (read
        back from the open file)."""
        f = self._require_open()
        ds = f["timeseries"][name]
        return np.asarray(ds[: self._T] if ds.ndim == 1 else ds[:, : self._T])

    @staticmethod
    def _check_time(what: str, time_days: float, last: float) -> float:
        t = float(time_days)
        if not np.isfinite(t) or t <= last:
            raise OutputError(f"{what} time {t} day is not finite and after the previous one ({last} day)")
        return t

    # ------------------------------------------------------------------------------------
    def append(self, time_days: float, metrics: Mapping[str, np.ndarray],
               events: Mapping[str, np.ndarray] | None = None,
               profiles: Mapping[str, np.ndarray] | None = None) -> None:
        """Append one output interval and flush.

        ``time_days``: simulated time (day), strictly increasing.  ``metrics``: every declared
        metric, each shape ``(R,)``, stored as float64.  ``events``: every declared event, each
        ``(R,)`` (int64); ``profiles``: every declared profile, each ``(R, nbins)``.  The
        columns are written and flushed first, then ``/timeseries/time_days`` grows and is
        flushed: a reader (or a file left by a kill) never counts an interval whose metrics were
        not flushed.
        """
        f = self._require_open()
        t = self._check_time("append", time_days, self._last_t)
        cols = self._check_arrays("append", metrics, self._metrics, (self.replicates,))
        evs = self._check_arrays("append events", events or {}, self._events, (self.replicates,))
        profs = {}
        for name, arr in self._check_arrays_any("append profiles", profiles or {}, self._profiles).items():
            shape = (self.replicates, self._profiles[name][0].size - 1)
            if arr.shape != shape:
                raise OutputError(f"append profile {name!r}: shape {arr.shape}, expected {shape}")
            profs[name] = arr
        nbytes = 8 * self.replicates * (len(cols) + len(evs) + sum(a.shape[1] for a in profs.values()))
        with self._writing(nbytes * (self._ct if self._T % self._ct == 0 else 1)):
            self._mirror_checkpoint()
            T = self._T + 1
            g = f["timeseries"]
            columns = ([(g[n], c, np.float64) for n, c in cols.items()]
                       + [(f["events"][n], c, np.int64) for n, c in evs.items()]
                       + [(f["profiles"][n], a, np.float64) for n, a in profs.items()])
            for ds, col, dtype in columns:  # (R, T) or (R, T, nbins): column T - 1
                ds.resize((self.replicates, T, *ds.shape[2:]))
                ds[:, T - 1] = col.astype(dtype, copy=False)
                ds.flush()  # a write error raises here, not later when ``ds`` is released
            f.flush()
            ds = g["time_days"]
            ds.resize((T,))
            ds[T - 1] = t
            f.flush()
        self._T, self._last_t = T, t

    def snapshot(self, time_days: float, arrays: Mapping[str, np.ndarray]) -> None:
        """Append one lattice snapshot and flush.

        ``arrays``: every declared snapshot field, each shape ``(Rs, Z, Y, X)`` (cast to the
        declared dtype).  As in :meth:`append`, ``/snapshots/time_days`` grows last.
        """
        f = self._require_open()
        if self._snap_shape is None:
            raise OutputError("snapshot(): no snapshot_fields were declared")
        t = self._check_time("snapshot", time_days, self._last_snap_t)
        arrs = self._check_arrays("snapshot", arrays, self._snap_fields, self._snap_shape)
        S = self._S + 1
        g = f["snapshots"]
        with self._writing(sum(a.nbytes for a in arrs.values())):
            for name, arr in arrs.items():
                ds = g[name]
                ds.resize((S, *self._snap_shape))
                ds[S - 1] = arr.astype(ds.dtype, copy=False)
                ds.flush()
            f.flush()
            ds = g["time_days"]
            ds.resize((S,))
            ds[S - 1] = t
            f.flush()
        self._S, self._last_snap_t = S, t

    def checkpoint(self, step: int, time_days: float, state: Mapping[str, np.ndarray]) -> None:
        """Overwrite ``/checkpoint`` with the full engine state and flush.

        ``state``: every array declared in ``checkpoint_spec``, with its declared shape (cast
        to its dtype).  Order, with a flush after each stage: ``valid=0``; state arrays;
        ``step`` and ``time_days``; ``valid=1``.  A reader therefore trusts ``/checkpoint``
        only when ``valid == 1``, and a kill mid-checkpoint leaves ``valid == 0``.  The next
        :meth:`append` or :meth:`finish` copies the new checkpoint to ``/checkpoint/previous``
        (the same way), so a kill during a checkpoint still leaves the one before it.
        """
        f = self._require_open()
        missing = sorted(set(self._ckpt_spec) - set(state))
        unknown = sorted(set(state) - set(self._ckpt_spec))
        if missing or unknown:
            raise OutputError(f"checkpoint: missing {missing}, undeclared {unknown}")
        arrs = {}
        for name, value in state.items():
            shape, dt, _, _ = self._ckpt_spec[name]
            arr = np.asarray(value)
            if arr.shape != shape:
                raise OutputError(f"checkpoint {name!r}: shape {arr.shape}, expected {shape}")
            arrs[name] = arr.astype(dt, copy=False)
        g = f["checkpoint"]
        with self._writing(sum(a.nbytes for a in arrs.values())):
            g["valid"][()] = np.int8(0)
            f.flush()
            for name, arr in arrs.items():
                if arr.size:
                    ds = g["state"][name]
                    ds[...] = arr
                    ds.flush()
            f.flush()
            g["step"][()] = np.int64(step)
            g["time_days"][()] = np.float64(time_days)
            f.flush()
            g["valid"][()] = np.int8(1)
            f.flush()
        self._mirror_pending = True

    def _mirror_checkpoint(self) -> None:
        """Copy ``/checkpoint`` into ``/checkpoint/previous`` (same staged order, with flushes).

        Runs at the first :meth:`append` (or :meth:`finish`) after a :meth:`checkpoint`, so that
        while the next checkpoint overwrites ``/checkpoint`` the previous one stays complete
        here: a kill at any moment leaves at least one valid checkpoint.
        """
        if not (self._ckpt_backup and self._mirror_pending):
            return
        f = self._require_open()
        src, dst = f["checkpoint"], f["checkpoint/previous"]
        dst["valid"][()] = np.int8(0)
        f.flush()
        for name in self._ckpt_spec:
            if src["state"][name].size:
                ds = dst["state"][name]
                ds[...] = src["state"][name][...]
                ds.flush()
        f.flush()
        dst["step"][()] = src["step"][()]
        dst["time_days"][()] = src["time_days"][()]
        f.flush()
        dst["valid"][()] = np.int8(1)
        f.flush()
        self._mirror_pending = False

    def finish(self, endpoints: Mapping[str, np.ndarray]) -> None:
        """Write every declared endpoint (each shape ``(R,)``), set ``status="complete"``, close.

        The endpoint data are written and flushed under SWMR; then the SWMR handle is closed
        and the file reopened read-write to set the root attributes.
        """
        f = self._require_open()
        arrs = self._check_arrays("finish", endpoints, self._endpoints, (self.replicates,))
        with self._writing(sum(a.nbytes for a in arrs.values())):
            self._mirror_checkpoint()
            g = f["endpoints"]
            for name, arr in arrs.items():
                ds = g[name]
                ds[...] = arr.astype(self._endpoints[name][0], copy=False)
                ds.flush()
            f.flush()
        self._set_final_status("complete", None)

    def close(self, status: str = "failed", error: str | None = None) -> None:
        """Close a writer that was not finished, recording ``status`` (``failed``/``interrupted``).

        No-op if already closed (after :meth:`finish` or a previous :meth:`close`).  ``error``
        is stored as the root attribute ``error``.  Use :meth:`finish` for a normal end.
        """
        if self._closed:
            return
        if status not in ("failed", "interrupted"):
            raise OutputError(f"close(): status must be 'failed' or 'interrupted', not {status!r}")
        self._set_final_status(status, error)

    def _set_final_status(self, status: str, error: str | None) -> None:
        f, self._file, self._closed = self._file, None, True
        assert f is not None
        try:
            try:
                f.flush()
                f.close()
            except (OSError, RuntimeError) as exc:
                _abandon(f)
                self._after_write_error(exc)  # raises
            try:
                g = self._reopen_rw()
            except OutputError:
                self._recover_flags()
                raise
            try:
                g.attrs["status"] = status
                g.attrs["ended_utc"] = _utc_now()
                if error:
                    g.attrs["error"] = error
                g.close()
            except (OSError, RuntimeError) as exc:
                _abandon(g)
                self._recover_flags()
                raise OutputError(f"cannot record status {status!r} in '{self.path}': "
                                  f"{_first_line(exc)}") from None
            self.status = status
        finally:
            _release_lock(self.path, self._lock)
            self._lock = None

    # ---- write errors (full disk, quota, I/O error) ---------------------------------------
    @contextlib.contextmanager
    def _writing(self, nbytes: int):
        """Run one write stage; on an OSError (or too little free space for ``nbytes`` plus a
        margin) abandon the file as of its last flush, record ``status="failed"`` when there
        is room, release the lock and raise one OutputError saying what was kept."""
        try:
            st = os.statvfs(self.path.parent if str(self.path.parent) else ".")
            free = st.f_bavail * st.f_frsize
        except OSError:
            free = None
        if free is not None and free < nbytes + _SPACE_MARGIN:
            self._fail(OSError(errno.ENOSPC, f"No space left on device (needs about {nbytes + _SPACE_MARGIN} "
                                             f"bytes, {free} free)"), clean=True)
        try:
            yield
        except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError for a failed flush
            self._fail(exc, clean=False)

    def _fail(self, exc: Exception, *, clean: bool) -> None:
        """Stop writing after ``exc``.  ``clean``: nothing was written since the last flush, so
        the file is closed the ordinary way; otherwise it is abandoned unwritten."""
        f, self._file, self._closed = self._file, None, True
        if clean:
            try:
                f.close()
            except (OSError, RuntimeError):
                _abandon(f)
        else:
            _abandon(f)
        try:
            self._after_write_error(exc)
        finally:
            _release_lock(self.path, self._lock)
            self._lock = None

    def _after_write_error(self, exc: Exception) -> None:
        """The file is closed; make it readable, record the failure if possible, raise."""
        reason = _reason(exc)
        self._recover_flags()
        recorded = False
        try:
            st = os.statvfs(self.path.parent if str(self.path.parent) else ".")
            room = st.f_bavail * st.f_frsize >= _STATUS_ROOM
        except OSError:
            room = False
        if room:
            try:
                g = h5py.File(self.path, "r+", locking=False)
            except OSError:
                g = None
            if g is not None:
                try:
                    g.attrs["status"] = "failed"
                    g.attrs["ended_utc"] = _utc_now()
                    g.attrs["error"] = f"OSError: {reason}"
                    g.close()
                    recorded = True
                except (OSError, RuntimeError):
                    _abandon(g)
                    self._recover_flags()
        self.status = "failed" if recorded else "running"
        kept = f"{self._T} output interval(s)" if hasattr(self, "_T") else "nothing"
        state = "status failed" if recorded else "status not recorded"
        raise OutputError(f"cannot write to '{self.path}': {reason}; the file keeps {kept} ({state}); "
                          f"free space and continue it with 'gpusim resume {self.path}'")

    def _recover_flags(self) -> None:
        try:
            _clear_status_flags(self.path)
        except OSError:
            pass

    def _reopen_rw(self) -> h5py.File:
        """Reopen the (closed) file read-write, waiting briefly for readers holding a lock."""
        deadline = time.monotonic() + _REOPEN_WAIT_S
        while True:
            try:
                return h5py.File(self.path, "r+")
            except OSError as exc:
                locked = getattr(exc, "errno", None) in (errno.EAGAIN, errno.EACCES) or "lock" in str(exc)
                if not locked:
                    raise OutputError(f"cannot reopen '{self.path}' to record its status: {exc}") from exc
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        # A reader keeps the file open (and locked); its SWMR view is read-only, so write the
        # final attributes without taking the lock.
        try:
            return h5py.File(self.path, "r+", locking=False)
        except OSError as exc:
            raise OutputError(f"cannot reopen '{self.path}' to record its status: {exc}") from exc

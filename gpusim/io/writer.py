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
import os
import secrets
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gpusim.errors import OutputError
from gpusim.io import schema
from gpusim.io.paths import acquire_lock, check_new_output, move_into_place, release_lock
from gpusim.io.paths import writer_active  # noqa: F401  (part of this module's API: "is it being written")
from gpusim.io.recovery import abandon, first_line, reason, record_failure, recover_flags
from gpusim.io.schema import check_arrays, check_time, utc_now

# How long finish()/close() keep retrying to reopen the file read-write while another
# process (a live reader) holds a lock on it, before opening it without file locking.
_REOPEN_WAIT_S = 2.0
# Free space (bytes) kept in reserve beyond each write, so that a writer that stops on a full
# disk can still close the file cleanly and record status "failed".
_SPACE_MARGIN = 1 << 20
# Free space (bytes) needed to try recording status "failed" after a write error.
_STATUS_ROOM = 1 << 18


def _grow_time(f: h5py.File, ds: h5py.Dataset, n: int, t: float) -> None:
    """Flush what was written, then grow the time axis ``ds`` to ``n`` entries ending at ``t``
    and flush: a reader never counts an entry whose data were not flushed."""
    f.flush()
    ds.resize((n,))
    ds[n - 1] = t
    f.flush()


def free_bytes(path: Path) -> int | None:
    """Free space (bytes) for an unprivileged writer in the directory of ``path``; None where
    the file system cannot tell."""
    try:
        st = os.statvfs(path.parent if str(path.parent) else ".")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def write_checkpoint_slot(f: h5py.File, slot: h5py.Group, step, time_days, state: Mapping[str, Any]) -> None:
    """The staged write of one checkpoint slot (``/checkpoint`` or ``/checkpoint/previous``),
    with a flush after each stage: ``valid=0``; the state arrays; ``step`` and ``time_days``;
    ``valid=1``.  A kill at any moment leaves ``valid == 0`` or a complete slot.

    ``state``: name -> array (or HDF5 dataset) of the slot's declared shape; empty arrays are
    skipped (HDF5 allocates no storage for them).
    """
    slot["valid"][()] = np.int8(0)
    f.flush()
    for name, arr in state.items():
        if arr.size:
            ds = slot["state"][name]
            ds[...] = arr[...]
            ds.flush()  # a write error (full disk) raises here, not when ``ds`` is released
    f.flush()
    slot["step"][()] = np.int64(step)
    slot["time_days"][()] = np.float64(time_days)
    f.flush()
    slot["valid"][()] = np.int8(1)
    f.flush()


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
        self.path = Path(path)
        self.status = "running"

        # ---- validate everything before touching the file system ------------------------
        parent = check_new_output(self.path, force)
        if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 1:
            raise OutputError(f"replicates must be a positive integer, got {replicates!r}")
        self.replicates = R = int(replicates)
        root_attrs = schema.check_root_attrs(attrs, R)
        if not isinstance(scenario_toml, str):
            raise OutputError("scenario_toml must be a str")
        d = self._decl = schema.normalize(
            R, metrics=metrics, endpoints=endpoints, snapshot_fields=snapshot_fields,
            snapshot_shape=snapshot_shape, checkpoint_spec=checkpoint_spec, events=events,
            profiles=profiles, checkpoint_backup=checkpoint_backup)
        self._metrics, self._events, self._profiles = d.metrics, d.events, d.profiles
        self._endpoints, self._snap_fields, self._snap_shape = d.endpoints, d.snapshot_fields, d.snapshot_shape
        self._ckpt_spec, self._ckpt_backup = d.checkpoint_spec, d.checkpoint_backup

        self._file = self._create(parent, force, root_attrs, scenario_toml, _prefill)
        self._closed = False
        self._mirror_pending = False  # a checkpoint not yet copied to /checkpoint/previous
        td, sd = self._file["timeseries/time_days"], self._file["snapshots/time_days"]
        self._T, self._S = td.shape[0], sd.shape[0]  # intervals and snapshots written (kept by a resume)
        self._last_t = float(td[-1]) if self._T else -np.inf
        self._last_snap_t = float(sd[-1]) if self._S else -np.inf

    def _create(self, parent: Path, force: bool, root_attrs: dict[str, Any], scenario_toml: str,
                prefill) -> h5py.File:
        """Build the file under a temporary name, then move it into place; returns it open in SWMR
        mode.  The temporary file sits next to the target (same file system), so the final step
        is an atomic link/rename and an existing target is never touched before it succeeds.
        One live writer per output path: the lock is held until the final status is written."""
        self._lock = acquire_lock(self.path)
        tmp = parent / f".{self.path.name}.{secrets.token_hex(4)}.partial"
        try:
            f = h5py.File(tmp, "x", libver="latest")
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # HDF5 may leave an empty file when the disk is full
            release_lock(self.path, self._lock)
            raise OutputError(f"cannot create a file in output directory '{parent}': "
                              f"{reason(exc)}") from None
        try:
            self._ct = schema.create_layout(f, self.replicates, self._decl, root_attrs, scenario_toml)
            if prefill is not None:  # a resume: copy the kept data before SWMR and the move
                prefill(f)
            f.swmr_mode = True  # = H5Fstart_swmr_write: from here on only resize and write
            f.flush()
            move_into_place(tmp, self.path, force)
        except BaseException as exc:
            try:
                abandon(f)
            finally:
                tmp.unlink(missing_ok=True)
                release_lock(self.path, self._lock)
            if isinstance(exc, OutputError) or not isinstance(exc, Exception):
                raise
            raise OutputError(f"cannot create output file '{self.path}': {reason(exc)}") from None
        return f


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

    def timeseries(self, name: str) -> np.ndarray:
        """The (R, T) values of metric ``name`` written so far, or the (T,) ``time_days`` (read
        back from the open file)."""
        f = self._require_open()
        ds = f["timeseries"][name]
        return np.asarray(ds[: self._T] if ds.ndim == 1 else ds[:, : self._T])

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
        t = check_time("append", time_days, self._last_t)
        R = self.replicates
        cols = check_arrays("append", metrics, {n: (R,) for n in self._metrics})
        evs = check_arrays("append events", events or {}, {n: (R,) for n in self._events})
        profs = check_arrays("append profiles", profiles or {},
                             {n: (R, p[0].size - 1) for n, p in self._profiles.items()}, "append profile")
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
            _grow_time(f, g["time_days"], T, t)
        self._T, self._last_t = T, t

    def snapshot(self, time_days: float, arrays: Mapping[str, np.ndarray]) -> None:
        """Append one lattice snapshot and flush.

        ``arrays``: every declared snapshot field, each shape ``(Rs, Z, Y, X)`` (cast to the
        declared dtype).  As in :meth:`append`, ``/snapshots/time_days`` grows last.
        """
        f = self._require_open()
        if self._snap_shape is None:
            raise OutputError("snapshot(): no snapshot_fields were declared")
        t = check_time("snapshot", time_days, self._last_snap_t)
        arrs = check_arrays("snapshot", arrays, {n: self._snap_shape for n in self._snap_fields})
        S = self._S + 1
        g = f["snapshots"]
        with self._writing(sum(a.nbytes for a in arrs.values())):
            for name, arr in arrs.items():
                ds = g[name]
                ds.resize((S, *self._snap_shape))
                ds[S - 1] = arr.astype(ds.dtype, copy=False)
                ds.flush()
            _grow_time(f, g["time_days"], S, t)
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
        arrs = check_arrays("checkpoint", state, {n: spec[0] for n, spec in self._ckpt_spec.items()})
        arrs = {name: arr.astype(self._ckpt_spec[name][1], copy=False) for name, arr in arrs.items()}
        with self._writing(sum(a.nbytes for a in arrs.values())):
            write_checkpoint_slot(f, f["checkpoint"], step, time_days, arrs)
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
        src = f["checkpoint"]
        state = {name: src["state"][name] for name in self._ckpt_spec}
        write_checkpoint_slot(f, f["checkpoint/previous"], src["step"][()], src["time_days"][()], state)
        self._mirror_pending = False

    def finish(self, endpoints: Mapping[str, np.ndarray]) -> None:
        """Write every declared endpoint (each shape ``(R,)``), set ``status="complete"``, close.

        The endpoint data are written and flushed under SWMR; then the SWMR handle is closed
        and the file reopened read-write to set the root attributes.
        """
        f = self._require_open()
        arrs = check_arrays("finish", endpoints, {n: (self.replicates,) for n in self._endpoints})
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
                abandon(f)
                self._after_write_error(exc)  # raises
            try:
                g = self._reopen_rw()
            except OutputError:
                recover_flags(self.path)
                raise
            try:
                g.attrs["status"] = status
                g.attrs["ended_utc"] = utc_now()
                if error:
                    g.attrs["error"] = error
                g.close()
            except (OSError, RuntimeError) as exc:
                abandon(g)
                recover_flags(self.path)
                raise OutputError(f"cannot record status {status!r} in '{self.path}': "
                                  f"{first_line(exc)}") from None
            self.status = status
        finally:
            release_lock(self.path, self._lock)
            self._lock = None

    # ---- write errors (full disk, quota, I/O error) ---------------------------------------
    @contextlib.contextmanager
    def _writing(self, nbytes: int):
        """Run one write stage; on an OSError (or too little free space for ``nbytes`` plus a
        margin) abandon the file as of its last flush, record ``status="failed"`` when there
        is room, release the lock and raise one OutputError saying what was kept."""
        free = free_bytes(self.path)
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
                abandon(f)
        else:
            abandon(f)
        try:
            self._after_write_error(exc)
        finally:
            release_lock(self.path, self._lock)
            self._lock = None

    def _after_write_error(self, exc: Exception) -> None:
        """The file is closed; make it readable, record the failure if possible, raise."""
        why = reason(exc)
        recover_flags(self.path)
        free = free_bytes(self.path)
        recorded = free is not None and free >= _STATUS_ROOM and record_failure(self.path, f"OSError: {why}",
                                                                               utc_now())
        self.status = "failed" if recorded else "running"
        kept = f"{self._T} output interval(s)" if hasattr(self, "_T") else "nothing"
        state = "status failed" if recorded else "status not recorded"
        raise OutputError(f"cannot write to '{self.path}': {why}; the file keeps {kept} ({state}); "
                          f"free space and continue it with 'gpusim resume {self.path}'")

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


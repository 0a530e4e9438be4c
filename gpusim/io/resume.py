"""Reopening an unfinished result file to continue it from its last checkpoint.

:func:`reopen` reads every declaration back from the file (:func:`gpusim.io.schema.read_declarations`),
rebuilds the file under a temporary name with the time series and snapshots up to the
checkpoint's time and the checkpoint itself, and moves it over the original; it returns an open
:class:`~gpusim.io.writer.ResultWriter` positioned after the checkpoint.  The run-level resume
(scenario, engine state) is :func:`gpusim.study.runner.resume`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from gpusim.errors import OutputError
from gpusim.io.paths import lock_path, writer_active, writer_alive
from gpusim.io.reader import Results, open_results
from gpusim.io.schema import Declarations, carried_attrs, read_declarations, utc_now
from gpusim.io import writer
from gpusim.io.writer import ResultWriter, free_bytes, write_checkpoint_slot


def _check_resumable(path: Path, res: Results) -> tuple[int, float, dict[str, np.ndarray]]:
    """The checkpoint ``(step, time_days, state)`` of a file that may be resumed; OutputError
    when it is complete, still being written, has no valid checkpoint, or the disk has no room
    for the rebuilt copy."""
    if res.status == "complete":
        raise OutputError(f"'{path}' is already complete; nothing to resume")
    if writer_active(path):
        raise OutputError(f"'{path}' is still being written by another gpusim process "
                          f"(lock '{lock_path(path)}'); stop it first (a resume would replace the live file)")
    if res.status == "running" and writer_alive(res.attrs):
        raise OutputError(f"'{path}' is still being written by process {res.attrs['writer_pid']} "
                          "on this host; stop it first (a resume would replace the live file)")
    ckpt = res.checkpoint()
    if ckpt is None:
        raise OutputError(f"'{path}' has no valid checkpoint to resume from "
                          "(it was stopped before the first one); run it again with --force")
    free = free_bytes(path)  # the rebuilt copy sits next to the file until it replaces it
    try:
        need = path.stat().st_size + writer._SPACE_MARGIN
    except OSError:
        need = 0
    if free is not None and free < need:
        raise OutputError(f"cannot resume '{path}': No space left on device (the rebuilt copy needs "
                          f"about {need} bytes, {free} free); free space and run the resume again")
    return ckpt


def _put(ds: h5py.Dataset, data, shape=None) -> None:
    if shape is not None:
        ds.resize(shape)
    if np.size(data):
        ds[...] = data
    ds.flush()  # a write error (full disk) raises here, not when ``ds`` is released


def _prefill(res: Results, d: Declarations, ckpt) -> Callable[[h5py.File], None]:
    """The function that copies the kept part of ``res`` into the new file (before SWMR)."""
    step, t_ck, state = ckpt
    created = res.attrs.get("created_utc")
    T = int((res.time_days <= t_ck).sum())
    S = int((res.snapshot_times <= t_ck).sum())

    def prefill(f: h5py.File) -> None:
        if created is not None:
            f.attrs["created_utc"] = created
        R = res.replicates
        for group, kept in (("timeseries", res.timeseries), ("events", res.events)):
            for name in (d.metrics if group == "timeseries" else d.events):
                _put(f[group][name], kept[name][:, :T], (R, T))
        _put(f["timeseries/time_days"], res.time_days[:T], (T,))
        for name in d.profiles:
            ds = f["profiles"][name]
            _put(ds, res.profiles[name][:, :T], (R, T, ds.shape[2]))
        for name in d.snapshot_fields:
            _put(f["snapshots"][name], res.snapshots[name][:S], (S, *d.snapshot_shape))
        _put(f["snapshots/time_days"], res.snapshot_times[:S], (S,))
        for slot in (f["checkpoint"], *([f["checkpoint/previous"]] if d.checkpoint_backup else [])):
            write_checkpoint_slot(f, slot, step, t_ck, state)

    return prefill


def reopen(path: str | os.PathLike) -> ResultWriter:
    """Reopen a result file left unfinished, to continue it from its last checkpoint.

    The file must hold a valid checkpoint (``/checkpoint/valid == 1``) and must not be
    ``complete``.  Every declaration (metrics, endpoints, snapshot fields and shape,
    checkpoint arrays, root attributes, scenario) is read back from the file.  The file is
    rebuilt under a temporary name with the time series and snapshots up to the checkpoint's
    time (later ones are dropped: the resumed run writes them again) and the checkpoint
    itself, then atomically moved over the original: a kill at any moment leaves either the
    old or the rebuilt file, both resumable.  ``created_utc`` is kept; ``resumed_utc`` and
    ``resumes`` (count) record the resume.

    Returns
    -------
    ResultWriter
        Open, positioned after the checkpoint; ``resumed_from`` is ``(step, time_days)``.

    Raises
    ------
    OutputError
        If the file cannot be read, is of another schema, is complete, or has no valid checkpoint.
    """
    path = Path(path)
    res = open_results(path)
    ckpt = _check_resumable(path, res)
    with h5py.File(path, "r", swmr=True) as f:
        d = read_declarations(f)
    attrs = carried_attrs(res.attrs)
    attrs["resumes"] = int(attrs.get("resumes", 0)) + 1
    attrs["resumed_utc"] = utc_now()
    w = ResultWriter(path, replicates=res.replicates, attrs=attrs, scenario_toml=res.scenario_toml,
                     force=True, _prefill=_prefill(res, d, ckpt), **d.writer_kwargs())
    w.resumed_from = (ckpt[0], ckpt[1])
    return w

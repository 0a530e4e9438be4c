"""Joining part files (consecutive replicate chunks of one run) into one result file.

A replicate's trajectory depends only on (scenario, seed, global replicate index), so the parts
joined along the replicate axis hold exactly the datasets of a single-process run, bit for bit.
The declarations of the joined file are those of the first part
(:func:`gpusim.io.schema.read_declarations`), with the replicate axis widened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from gpusim.errors import OutputError
from gpusim.io.reader import Results, open_results
from gpusim.io.schema import Declarations, carried_attrs, read_declarations
from gpusim.io.writer import ResultWriter


def _check_parts(res: list[Results], parts: Sequence[str | os.PathLike]) -> None:
    """OutputError unless every part is complete, the parts' replicates follow each other without
    gaps, and all have the output times of the first."""
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


def _joined_declarations(first_part: str | os.PathLike, R: int, rs: int) -> Declarations:
    """The declarations of the first part, for ``R`` replicates with ``rs`` in snapshots."""
    with h5py.File(first_part, "r", swmr=True) as f:
        d = read_declarations(f)
    d.checkpoint_spec = {n: ((R, *shape[1:]), *rest) for n, (shape, *rest) in d.checkpoint_spec.items()}
    if rs and d.snapshot_shape is not None:
        d.snapshot_shape = (rs, *d.snapshot_shape[1:])
    else:
        d.snapshot_fields, d.snapshot_shape = {}, None
    return d


def _joined_checkpoint(res: list[Results]):
    """The parts' checkpoints joined, as ``(step, time_days, state)``, or None when none has one;
    OutputError when they are at different steps."""
    ckpts = [r.checkpoint() for r in res]
    if any((c is None) != (ckpts[0] is None) for c in ckpts) or (
            ckpts[0] is not None and any(c[0] != ckpts[0][0] for c in ckpts)):
        raise OutputError("merge: the parts' checkpoints are at different steps")
    if ckpts[0] is None:
        return None
    step, t_ck, state = ckpts[0]
    return step, t_ck, {k: np.concatenate([c[2][k] for c in ckpts]) for k in state}


def merge_parts(parts: Sequence[str | os.PathLike], out: str | os.PathLike, scenario_toml: str, *,
                snapshot_replicates: int, force: bool = False) -> Results:
    """Join part files (consecutive replicate chunks of one run, in order) into ``out``.

    Parameters
    ----------
    parts:
        Complete result files; part ``i + 1`` starts at the replicate after the last of part ``i``.
    out:
        The joined file (must not exist unless ``force``).
    scenario_toml:
        The resolved scenario of the whole run, stored as ``/scenario``.
    snapshot_replicates:
        Replicates kept in the snapshots of the whole run (``run.snapshot_replicates``).

    Returns the joined file read back.  Raises OutputError if the parts do not fit together
    (other times, gaps in replicates, checkpoints at different steps).
    """
    res = [open_results(p) for p in parts]
    _check_parts(res, parts)
    a0 = res[0]
    R = sum(r.replicates for r in res)
    rs = min(snapshot_replicates, R)
    d = _joined_declarations(parts[0], R, rs)
    attrs = carried_attrs(a0.attrs)
    attrs["setup_seconds"] = max(float(r.attrs.get("setup_seconds", 0.0)) for r in res)
    join = lambda group: {k: np.concatenate([getattr(r, group)[k] for r in res]) for k in getattr(a0, group)}
    ts, evs, profs = join("timeseries"), join("events"), join("profiles")
    snaps = {k: np.concatenate([r.snapshots[k] for r in res if k in r.snapshots], axis=1)[:, :rs]
             for k in d.snapshot_fields}
    ckpt = _joined_checkpoint(res)
    with ResultWriter(out, replicates=R, attrs=attrs, scenario_toml=scenario_toml, force=force,
                      **d.writer_kwargs()) as w:
        for i, t in enumerate(a0.time_days):
            w.append(float(t), {k: v[:, i] for k, v in ts.items()},
                     events={k: v[:, i] for k, v in evs.items()},
                     profiles={k: v[:, i] for k, v in profs.items()})
        for i, t in enumerate(a0.snapshot_times if snaps else ()):
            w.snapshot(float(t), {k: v[i] for k, v in snaps.items()})
        if ckpt is not None:
            w.checkpoint(*ckpt)
        w.finish(join("endpoints"))
    return open_results(Path(out))


def add_root_attrs(path: str | os.PathLike, attrs: dict) -> None:
    """Add root attributes to a finished result file (a merged sweep point: the attributes its
    parts did not carry)."""
    with h5py.File(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v

"""Test helper: compare every dataset of two HDF5 result files bitwise."""

from __future__ import annotations

import h5py
import numpy as np

#: Root attributes that record when, how long or by which process, not what: may differ.
TIMING_ATTRS = {"created_utc", "ended_utc", "setup_seconds", "resumed_utc", "resumes", "writer_host",
                "writer_pid"}


def datasets(path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r", swmr=True) as f:
        f.visititems(lambda n, o: out.__setitem__(n, np.asarray(o[()])) if isinstance(o, h5py.Dataset) else None)
    return out


def different_datasets(a, b) -> list[str]:
    """Names of datasets that differ in presence, dtype, shape or any byte."""
    da, db = datasets(a), datasets(b)
    bad = sorted(set(da) ^ set(db))
    for k in sorted(set(da) & set(db)):
        x, y = da[k], db[k]
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            bad.append(k)
    return bad


def different_attrs(a, b) -> list[str]:
    """Root attributes (other than timing ones) that differ."""
    with h5py.File(a, "r", swmr=True) as fa, h5py.File(b, "r", swmr=True) as fb:
        keys = (set(fa.attrs) | set(fb.attrs)) - TIMING_ATTRS
        return sorted(k for k in keys if str(fa.attrs.get(k)) != str(fb.attrs.get(k)))

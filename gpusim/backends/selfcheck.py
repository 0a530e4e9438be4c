"""A device backend proves itself: a short bitwise check of its step against the NumPy engine.

:func:`verify` runs several bundled scenarios at a reduced size (:func:`reduced`) on both the
NumPy engine and a device runtime, step by step, and compares every state array and every event
of every step; the first difference is named (scenario, step, array).  The verdict is cached per
(device, driver, gpusim version, kernel hash) (:func:`verdict_key`) so the check runs once per
machine and kernel build; ``auto`` offers the device only when it passed, and ``--backend cupy``
is refused with the reason when it failed.  A failure also writes a small JSON report a user can
send (:func:`write_report`).  ``gpusim selftest`` runs it on demand.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..version import __version__
from . import nvrtc

#: the bundled scenarios of the check: every route, 2D and 3D, dual target, memory-free defaults
SCENARIOS = ("quickstart", "intratumoral", "regional_gbm", "dual_target", "armoured", "large_3d")
STEPS = 40


def reduced(name: str, extra=(), size: int = 32, depth: int = 6):
    """A bundled scenario at a reduced size: the lattice capped at ``size`` (``depth`` in z), the
    tumour radius scaled with it, and the whole-tumour volume set to twice the domain's, so that
    intravenous doses bring CAR-T cells into a small domain within the first steps."""
    from ..scenario import load_scenario

    sc = load_scenario(name)
    Z, Y, X = sc.shape
    x, y, z = min(X, size), min(Y, size), min(Z, depth)
    vol = 2.0 * x * y * z * (sc["domain.voxel_um"] * 1e-4) ** 3
    radius = sc["tumour.radius_um"] * min(x / X, y / Y)
    sets = [f"domain.x_voxels={x}", f"domain.y_voxels={y}", f"delivery.tumour_volume_cm3={vol!r}",
            f"tumour.radius_um={radius!r}"]
    if Z > 1:
        sets.append(f"domain.z_voxels={z}")
    return load_scenario(name, sets + list(extra))


@dataclass
class Mismatch:
    scenario: str
    step: int  #: the step after which the first difference was seen (0: the initial state)
    what: str  #: the first differing state array or event
    detail: str = ""


def first_difference(ref, dev, steps: int, label: str = "") -> Mismatch | None:
    """Steps two simulations of the same scenario side by side; the first state array or event
    that differs (in the order of ``STATE_ARRAYS`` / ``EVENTS``), or None."""
    def compare(step: int) -> Mismatch | None:
        a, b = ref.state.digest(), dev.state.digest()
        for k in a:
            if a[k] != b[k]:
                x, y = getattr(ref.state, k), getattr(dev.state, k)
                idx = np.argwhere(np.asarray(x != y).reshape(x.shape))
                where = idx[0].tolist() if idx.size else []
                return Mismatch(label, step, k, f"{len(idx)} elements differ, first at {where}: "
                                f"numpy {x[tuple(where)] if where else x} device {y[tuple(where)] if where else y}")
        for k, v in ref.last_events.items():
            w = dev.last_events.get(k)
            if w is None or not np.array_equal(v, w):
                return Mismatch(label, step, f"event {k}", f"numpy {v.tolist()} device {w}")
        return None

    m = compare(0)
    for s in range(1, steps + 1):
        if m is not None:
            break
        ref.step()
        dev.step()
        m = compare(s)
    return m


def verify(runtime, names=SCENARIOS, steps: int = STEPS, replicates: int = 2) -> Mismatch | None:
    """Run each scenario on the NumPy engine and on ``runtime``; the first mismatch or None."""
    from ..engine import Simulation
    from .cupy_backend import device_phases

    for name in names:
        sc = reduced(name)
        ref = Simulation(sc, replicates=replicates, first_replicate=1)
        dev = Simulation(sc, replicates=replicates, first_replicate=1, phases=device_phases(runtime))
        m = first_difference(ref, dev, steps, name)
        if m is not None:
            return m
    return None


def verdict_key(device: str, driver: str) -> str:
    return json.dumps({"device": device, "driver": driver, "gpusim": __version__,
                       "kernels": nvrtc.kernel_hash()}, sort_keys=True)


def _verdict_file() -> Path:
    return nvrtc.cache_dir() / "selfcheck.json"


def cached_verdict(key: str) -> dict | None:
    try:
        return json.loads(_verdict_file().read_text()).get(key)
    except (OSError, ValueError):
        return None


def store_verdict(key: str, verdict: dict) -> None:
    path = _verdict_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[key] = verdict
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def write_report(mismatch: Mismatch, device: str, driver: str, directory: Path | None = None) -> Path:
    """A JSON report of a failed check (what differed, where, on which device and build)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    d = Path(directory) if directory else nvrtc.cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"selftest-report-{now:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"mismatch": asdict(mismatch), "device": device, "driver": driver,
                                "gpusim": __version__, "kernels": nvrtc.kernel_hash(),
                                "nvrtc": nvrtc.version(), "date_utc": now.isoformat()}, indent=1))
    return path


@dataclass
class Verdict:
    passed: bool
    detail: str  #: what was checked, or what differed
    seconds: float = 0.0
    report: str = ""
    cached: bool = False


def check(runtime, device: str, driver: str, *, force: bool = False, names=SCENARIOS,
          steps: int = STEPS) -> Verdict:
    """The cached verdict for (device, driver, version, kernels), or run :func:`verify` now."""
    key = verdict_key(device, driver)
    if not force:
        v = cached_verdict(key)
        if v is not None:
            return Verdict(**{**v, "cached": True})
    t0 = time.perf_counter()
    m = verify(runtime, names, steps)
    secs = time.perf_counter() - t0
    if m is None:
        v = Verdict(True, f"{len(names)} scenarios x {steps} steps bitwise equal to the NumPy engine", secs)
    else:
        rep = write_report(m, device, driver)
        v = Verdict(False, f"scenario {m.scenario}: {m.what} differs first at step {m.step} "
                           f"({m.detail})", secs, str(rep))
    store_verdict(key, {k: val for k, val in asdict(v).items() if k != "cached"})
    return v

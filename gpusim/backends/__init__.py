"""Backend selection: which array engine runs the phases.

``numpy`` is the reference engine (always available).  ``cupy`` runs the CUDA kernels of
``kernels/`` through CuPy; it needs CuPy, a usable CUDA device and the kernel launchers.
``auto`` takes CuPy when all of that is present, else NumPy, and says which it took and why.
Asking for ``cupy`` where it cannot run is a :class:`~gpusim.errors.BackendError`, never a
silent fallback.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from ..errors import BackendError

NAMES = ("auto", "numpy", "cupy")


@dataclass(frozen=True)
class Backend:
    name: str  #: "numpy" or "cupy"
    device: str  #: human-readable device description
    reason: str = ""  #: why ``auto`` chose it (empty when asked for by name)


def cupy_status() -> tuple[bool, str]:
    """(usable, description): whether the CuPy backend can run here, and the device or the reason."""
    try:
        import cupy  # noqa: F401
    except Exception as e:  # ImportError, or a broken CUDA install raising at import
        return False, f"CuPy is not importable ({type(e).__name__}: {e})"
    try:
        if not cupy.cuda.is_available():
            return False, "CuPy imports but no CUDA device is available"
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        mem = props["totalGlobalMem"] / 2**30
        dev = f"{name} ({mem:.0f} GiB)"
    except Exception as e:
        return False, f"CUDA device query failed ({type(e).__name__}: {e})"
    from . import cupy_backend  # noqa: F401  (present when the kernels are built)

    if not getattr(cupy_backend, "AVAILABLE", False):
        return False, f"GPU {dev} found, but this gpusim build has no CuPy kernel launchers yet"
    return True, dev


def cpu_description() -> str:
    return f"CPU ({platform.machine() or 'unknown'}, {platform.processor() or platform.system()})"


def select(name: str = "auto") -> Backend:
    """Resolve a backend name to the backend that will run."""
    if name not in NAMES:
        raise BackendError(f"unknown backend '{name}'; allowed: {', '.join(NAMES)}")
    if name == "numpy":
        return Backend("numpy", cpu_description())
    ok, info = cupy_status()
    if name == "cupy":
        if not ok:
            raise BackendError(f"backend 'cupy' cannot run here: {info}; use --backend numpy or auto")
        return Backend("cupy", info)
    if ok:
        return Backend("cupy", info, reason="auto: CUDA device found")
    return Backend("numpy", cpu_description(), reason=f"auto: {info}; using numpy")


def make_simulation(backend: "Backend | str", scenario, replicates: int | None = None,
                    first_replicate: int | None = None, *, state=None):
    """The simulation object of a backend: same interface on every backend (step, metrics,
    snapshot, endpoints, state, time_days).

    ``backend`` is a :class:`Backend` from :func:`select` or a name (resolved with :func:`select`,
    so ``"cupy"`` where it cannot run raises :class:`~gpusim.errors.BackendError`).
    """
    be = backend if isinstance(backend, Backend) else select(backend)
    if be.name == "numpy":
        from ..engine import Simulation

        return Simulation(scenario, replicates, first_replicate, state=state)
    if be.name == "cupy":
        from .cupy_backend import CupySimulation

        return CupySimulation(scenario, replicates, first_replicate, state=state)
    raise BackendError(f"backend '{be.name}' has no engine; allowed: numpy, cupy")


def gpu_details() -> dict[str, str]:
    """What ``gpusim info`` shows about the GPU side: CuPy and CUDA versions, the device and its
    memory; a single ``"gpu"`` entry saying why when there is none."""
    try:
        import cupy
    except Exception as e:
        return {"gpu": f"none usable (CuPy is not importable: {type(e).__name__}: {e})"}
    out = {"cupy": cupy.__version__}
    try:
        rt = cupy.cuda.runtime
        v = rt.runtimeGetVersion()
        d = rt.driverGetVersion()
        out["cuda"] = f"runtime {v // 1000}.{v % 1000 // 10}, driver {d // 1000}.{d % 1000 // 10}"
        n = rt.getDeviceCount()
        for i in range(n):
            p = rt.getDeviceProperties(i)
            name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
            with cupy.cuda.Device(i):
                free, total = rt.memGetInfo()
            out[f"device {i}"] = (f"{name}, compute capability {p['major']}.{p['minor']}, "
                                  f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)")
        if n == 0:
            out["gpu"] = "none (no CUDA device)"
    except Exception as e:
        out["gpu"] = f"CUDA query failed ({type(e).__name__}: {e})"
    return out

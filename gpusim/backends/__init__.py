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

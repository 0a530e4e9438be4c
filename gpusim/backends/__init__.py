"""Backend selection: which array engine runs the phases.

``numpy`` is the reference engine (always available).  ``cupy`` runs the CUDA kernels of
``kernels/`` on a GPU through CuPy; it needs CuPy, a CUDA device, NVRTC, and a passed self-check:
on first use on a device the backend's step is compared bitwise with the NumPy engine on several
bundled scenarios (:mod:`.selfcheck`, under a minute) and the verdict is cached per (device,
driver, gpusim version, kernel hash).  ``auto`` takes ``cupy`` only when all of that holds, else
NumPy, and says which it took and why.  ``emulated`` runs the same device step on the CPU, the
kernels compiled for the host (:mod:`gpusim.backends.emulated`; for checking kernels without a GPU,
never chosen by ``auto``).  Asking for a backend where it cannot run is a
:class:`~gpusim.errors.BackendError`, never a silent fallback.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from ..errors import BackendError

NAMES = ("auto", "numpy", "cupy", "emulated")


@dataclass(frozen=True)
class Backend:
    name: str  #: "numpy", "cupy" or "emulated"
    device: str  #: human-readable device description
    reason: str = ""  #: why ``auto`` chose it (empty when asked for by name)


def gpu_device() -> tuple[str | None, str, str]:
    """``(device, driver, why)``: the CUDA device and driver where CuPy sees one, else
    ``(None, "", why not)``."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install raising at import
        return None, "", f"no GPU: CuPy is not importable ({type(e).__name__}: {e})"
    try:
        if not cupy.cuda.is_available():
            return None, "", "no GPU: CuPy imports but no CUDA device is present"
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        d = cupy.cuda.runtime.driverGetVersion()
        dev = f"{name} ({props['totalGlobalMem'] / 2**30:.0f} GiB, sm_{props['major']}{props['minor']})"
        return dev, f"{d // 1000}.{d % 1000 // 10}", ""
    except Exception as e:
        return None, "", f"no GPU: CUDA device query failed ({type(e).__name__}: {e})"


def cupy_status(run_check: bool = True) -> tuple[bool, str]:
    """(usable, description): whether the CuPy backend can run here (device, NVRTC, a passed
    self-check), and the device or the reason.  With ``run_check`` False a device not yet checked
    is reported as such instead of being checked now."""
    from . import nvrtc, selfcheck

    dev, driver, why = gpu_device()
    if dev is None:
        return False, why
    ok, nv = nvrtc.available()
    if not ok:
        return False, f"GPU {dev} found, but {nv}"
    key = selfcheck.verdict_key(dev, driver)
    if run_check:
        from .cupy_backend import runtime

        v = selfcheck.check(runtime(), dev, driver)
    else:
        cached = selfcheck.cached_verdict(key)
        if cached is None:
            return False, f"GPU {dev} not yet self-checked (run: gpusim selftest)"
        v = selfcheck.Verdict(**cached)
    if not v.passed:
        return False, (f"GPU {dev} failed its bitwise self-check against the NumPy engine: {v.detail}"
                       + (f"; report: {v.report}" if v.report else ""))
    return True, dev


def cpu_description() -> str:
    """The CPU: its model name (Linux /proc/cpuinfo) or the platform's, and the logical cores."""
    name = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical cores"


def select(name: str = "auto") -> Backend:
    """Resolve a backend name to the backend that will run."""
    if name not in NAMES:
        raise BackendError(f"unknown backend '{name}'; allowed: {', '.join(NAMES)}")
    if name == "numpy":
        return Backend("numpy", cpu_description())
    if name == "emulated":
        from .emulated import compiler

        if compiler() is None:
            raise BackendError("backend 'emulated' needs a C++ compiler (g++ or $CXX)")
        return Backend("emulated", f"emulated device on the {cpu_description()}")
    ok, info = cupy_status()
    if name == "cupy":
        if not ok:
            raise BackendError(f"backend 'cupy' cannot run here: {info}; use --backend numpy or auto")
        return Backend("cupy", info)
    if ok:
        return Backend("cupy", info, reason="auto: CUDA device found and self-checked")
    return Backend("numpy", cpu_description(), reason=f"auto: {info}; using numpy")


def make_simulation(backend: "Backend | str", scenario, replicates: int | None = None,
                    first_replicate: int | None = None, *, state=None):
    """The :class:`~gpusim.engine.Simulation` of a backend (same interface on every backend).

    ``backend`` is a :class:`Backend` from :func:`select` or a name (resolved with :func:`select`,
    so ``"cupy"`` where it cannot run raises :class:`~gpusim.errors.BackendError`).
    """
    from ..engine import Simulation

    be = backend if isinstance(backend, Backend) else select(backend)
    phases = None
    if be.name == "cupy":
        from .cupy_backend import device_phases, runtime

        phases = device_phases(runtime())
    elif be.name == "emulated":
        from .emulated import EmulatedRuntime
        from .cupy_backend import device_phases

        phases = device_phases(EmulatedRuntime())
    return Simulation(scenario, replicates, first_replicate, state=state, phases=phases)


def gpu_details() -> dict[str, str]:
    """What ``gpusim info`` shows about the GPU side: NVRTC, CuPy and CUDA versions, every device
    with its memory, and the self-check verdict; a ``"gpu"`` entry saying why when there is none."""
    from . import nvrtc

    ok, nv = nvrtc.available()
    out = {"nvrtc": nv if ok else f"not found ({nv})"}
    dev, driver, why = gpu_device()
    if dev is None:
        out["gpu"] = why
        return out
    import cupy

    rt = cupy.cuda.runtime
    v = rt.runtimeGetVersion()
    out.update(cupy=cupy.__version__, cuda=f"runtime {v // 1000}.{v % 1000 // 10}, driver {driver}")
    for i in range(rt.getDeviceCount()):
        p = rt.getDeviceProperties(i)
        name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
        with cupy.cuda.Device(i):
            free, total = rt.memGetInfo()
        out[f"device {i}"] = (f"{name}, compute capability {p['major']}.{p['minor']}, "
                              f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)")
    out["self-check"] = cupy_status(run_check=False)[1]
    return out

"""The emulated device: the device backend's own step, run without a GPU.

:class:`EmulatedRuntime` is a runtime for :class:`gpusim.backends.cupy_backend.DevicePhases`
(the phases the backend runs on a GPU, unchanged).  Its array module :data:`xp` is a NumPy-backed
stand-in for the part of CuPy the backend uses (device arrays are NumPy arrays with CuPy's
``.get()``; memory from ``empty`` is filled with garbage, as CuPy's pool hands it back), and its
``module(file)`` compiles ``kernels/<file>`` for the host with g++ (``emu_shim.h`` force-included:
the device branches of the headers, host twins of the intrinsics and atomics) and launches each
kernel through ctypes with CuPy's argument rules: a device array passes its pointer, ``None`` a null
pointer, a NumPy scalar its own bytes, a Python ``int`` 8 bytes and a ``float`` a double (the
driver then reads as many bytes as the kernel's parameter type has, which is what a mistyped
argument does on a GPU; :func:`gpusim.backends.interface.launch` prevents it, and the emulator
refuses an argument whose size differs from its C parameter).

Threads run one at a time, in order, reversed, or shuffled (``order`` 0, 1, 2), so a result that
depends on thread order shows up as a difference.  Flush-to-zero is emulated as the device does
it: when the compile options ask for it (``-ftz=true``, what ``cupy.RawModule`` appends), every
launch runs with the x86 FTZ and DAZ bits set.  Compiled objects are cached by a hash of every
source they include, the shim and the flags (:func:`gpusim.backends.nvrtc.binary_key`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np

from . import nvrtc
from .interface import KERNELS, SCALARS, signature
from ..errors import BackendError

SHIM = Path(__file__).with_name("emu_shim.h")
CXXFLAGS = ("-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-w")


class ndarray(np.ndarray):
    """A device array: a NumPy array with CuPy's ``.get()``."""

    def get(self, stream=None, order="C", out=None):
        return np.array(self, copy=True, order=order).view(np.ndarray)


def _wrap(a):
    return a.view(ndarray) if isinstance(a, np.ndarray) else a


def _device(f):
    def g(*a, **k):
        r = f(*a, **k)
        return tuple(_wrap(x) for x in r) if isinstance(r, tuple) else _wrap(r)
    g.__name__ = getattr(f, "__name__", "f")
    return g


def _asarray(a, dtype=None):
    if isinstance(a, ndarray) and (dtype is None or a.dtype == dtype):
        return a
    return np.array(a, dtype=dtype, copy=True).view(ndarray)


def _garbage(a):
    a = a.view(ndarray)
    a.view(np.uint8).reshape(-1)[:] = 0xA5  # never zeros: a kernel must not read unwritten memory
    return a


xp = types.SimpleNamespace(
    asarray=_asarray, array=_asarray,
    empty=lambda shape, dtype=float: _garbage(np.empty(shape, dtype)),
    empty_like=lambda a, dtype=None: _garbage(np.empty_like(np.asarray(a), dtype=dtype)),
    **{n: _device(getattr(np, n)) for n in (
        "zeros", "ones", "full", "zeros_like", "full_like", "arange", "where", "minimum", "maximum",
        "cumsum", "nonzero", "flatnonzero", "concatenate", "broadcast_to", "argmax", "stack")},
    **{t: getattr(np, t) for t in ("uint8", "int8", "int16", "uint16", "int32", "uint32", "int64",
                                   "uint64", "float32", "float64", "bool_")},
)


class Module:
    """A kernels/*.cu compiled for the host; ``get_function`` as CuPy's RawModule."""

    def __init__(self, file: str, lib: ctypes.CDLL, runtime: "EmulatedRuntime"):
        self.file, self.lib, self.rt = file, lib, runtime

    def get_function(self, name: str):
        if name not in KERNELS[self.file]:
            raise BackendError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        fn = getattr(self.lib, f"emu_launch_{name}")
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint]
        fn.restype = None
        return Kernel(name, fn, self.rt)


class Kernel:
    def __init__(self, name, fn, runtime):
        self.name, self.fn, self.rt = name, fn, runtime

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        (gx,), (bx,) = tuple(grid), tuple(block)
        sig = signature(self.name)
        if not (1 <= gx < 2**31 and 1 <= bx <= 1024):
            raise ValueError(f"{self.name}: bad launch ({gx},) x ({bx},)")
        if len(args) != len(sig):
            raise TypeError(f"{self.name}: {len(args)} arguments, the kernel takes {len(sig)}")
        keep, ptrs = [], []
        for a, p in zip(args, sig):
            if a is None:
                buf = np.zeros((), np.uint64)
            elif isinstance(a, np.ndarray) and not isinstance(a, ndarray):
                raise TypeError(f"{self.name}: {p.name} is a host array (CuPy refuses it)")
            elif isinstance(a, ndarray):
                if not p.pointer:
                    raise TypeError(f"{self.name}: {p.name} is passed by value, got a device array")
                if not a.flags.c_contiguous:
                    raise TypeError(f"{self.name}: {p.name} is not C-contiguous")
                buf = np.array(a.ctypes.data, np.uint64)
                keep.append(a)
            elif type(a) is bool:
                buf = np.array(a, np.bool_)
            elif type(a) is int:
                buf = np.array(a, np.uint64 if a >= 2**63 else np.int64)
            elif type(a) is float:
                buf = np.array(a, np.float64)
            elif isinstance(a, np.generic):
                buf = np.array(a)
            else:
                raise TypeError(f"{self.name}: {p.name}: unsupported type {type(a).__name__}")
            size = 8 if p.pointer else np.dtype(SCALARS[p.type][0]).itemsize
            if buf.nbytes != size:
                raise TypeError(f"{self.name}: {p.name} passed as {buf.nbytes} bytes, the kernel "
                                f"reads {size}")
            keep.append(buf)
            ptrs.append(buf.ctypes.data)
        arr = (ctypes.c_void_p * max(1, len(ptrs)))(*ptrs)
        self.rt.launches += 1
        self.rt.counts[self.name] = self.rt.counts.get(self.name, 0) + 1
        self.fn(gx, bx, arr, self.rt.order | (4 if self.rt.ftz else 0), self.rt.launches & 0xFFFFFFFF)


def compiler() -> str | None:
    """The host C++ compiler the emulated device uses (``$CXX`` or g++), or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


class EmulatedRuntime:
    """A runtime for DevicePhases on the host (see the module docstring).

    Parameters
    ----------
    order : int
        Thread order of every launch: 0 in order, 1 reversed, 2 shuffled.
    options : sequence of str
        The compile options a GPU build would use (default ``nvrtc.OPTIONS``); with
        ``-ftz=true`` among them every launch flushes subnormals, as such a build would.
    """

    name = "emulated"

    def __init__(self, order: int = 1, options=nvrtc.OPTIONS):
        cxx = compiler()
        if cxx is None:
            raise BackendError("the emulated device needs a C++ compiler (g++ or $CXX)")
        self.cxx = cxx
        self.xp = xp
        self.order = int(order)
        self.options = tuple(options)
        ftz = [o for o in self.options if o.lstrip("-").startswith("ftz=")]
        self.ftz = bool(ftz) and ftz[-1].endswith("true")  # NVRTC keeps the last one
        self.launches = 0
        self.counts: dict[str, int] = {}
        self._modules: dict[str, Module] = {}

    def module(self, file: str) -> Module:
        if file not in self._modules:
            self._modules[file] = Module(file, ctypes.CDLL(str(self.build(file))), self)
        return self._modules[file]

    def build(self, file: str) -> Path:
        """The shared object of ``kernels/<file>``, compiled on first use and cached."""
        shim = SHIM.read_bytes()
        flags = CXXFLAGS + (f"shim {hashlib.sha256(shim).hexdigest()}",)
        key = nvrtc.binary_key(file, "host", flags, self.cxx)
        exports = "".join(f"EMU_EXPORT({k})\n" for k in KERNELS[file])

        def compile_() -> bytes:
            kdir = nvrtc.kernel_dir()
            tmp = nvrtc.cache_dir() / "kernels" / f".{key}.{os.getpid()}"
            tmp.mkdir(parents=True, exist_ok=True)
            try:
                src = tmp / "unit.cpp"
                src.write_text(f'#include "{file}"\n{exports}', encoding="ascii")
                so = tmp / "unit.so"
                res = subprocess.run([self.cxx, *CXXFLAGS, "-include", str(SHIM), f"-I{kdir}",
                                      str(src), "-o", str(so)], capture_output=True, text=True)
                if res.returncode:
                    raise BackendError(f"emulated compile of {file} failed:\n{res.stderr[-4000:]}")
                return so.read_bytes()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        return nvrtc.cached(key, ".so", compile_)

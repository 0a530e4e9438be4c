"""Compiling the kernels: NVRTC called directly, binaries cached by a hash of every source.

Why not ``cupy.RawModule(code=...)``: CuPy appends ``-ftz=true`` after the caller's options and
NVRTC keeps the last one, so every float32 operation would flush subnormals (the NumPy engine
keeps them: the determinism contract would break on the first subnormal IFN-gamma or PD-L1);
CuPy's disk cache is keyed on the ``.cu`` text only, not on the ``*_logic.cuh`` headers that hold
the logic; and it compiles lazily.  Here every ``.cu`` is compiled by NVRTC with :data:`OPTIONS`
(no flush-to-zero, no contraction, IEEE division and square root), every header of ``kernels/``
handed to NVRTC from memory, and the result cached under :func:`binary_key`, a SHA-256 of the
``.cu``, every header, the options, the target and the NVRTC version.  The binary is loaded with
``cupy.RawModule(path=...)``, which compiles nothing.

NVRTC is found without a GPU (``libnvrtc`` of the ``nvidia-cuda-nvrtc`` wheels, CUDA's own, or the
one CuPy uses), so the tests compile every kernel on machines with no device and read the PTX.
Kernel sources are ASCII only and read as bytes: NVRTC 12.0-12.5 switch the calling thread to an
ASCII locale after the first compile, which breaks a later text read of a non-ASCII source.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import importlib.resources
import os
import sys
from pathlib import Path

from ..errors import BackendError

#: every kernel is compiled with these (ARCHITECTURE.md, determinism rule 4)
OPTIONS = ("--std=c++17", "--fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true")

_LIB = None


def kernel_dir() -> Path:
    """The directory of ``*.cu`` and ``*.cuh``: the repository's ``kernels/`` beside the imported
    package when there is one (a source checkout: its kernels go with its Python code, also when
    an editable install of another checkout maps ``gpusim.kernels`` elsewhere), else the package
    data of ``gpusim.kernels`` (an installed wheel)."""
    d = Path(__file__).resolve().parents[2] / "kernels"
    if (d / "philox.cuh").is_file():
        return d
    try:
        d = Path(str(importlib.resources.files("gpusim.kernels")))
        if (d / "philox.cuh").is_file():
            return d
    except ModuleNotFoundError:
        pass
    raise BackendError("the CUDA kernel sources (gpusim.kernels) are missing from this installation; "
                       "reinstall gpusim")


def kernel_files() -> list[Path]:
    """Every kernel translation unit (``*.cu``), sorted by name."""
    return sorted(kernel_dir().glob("*.cu"))


def _candidates() -> list[str]:
    out = []
    if os.environ.get("GPUSIM_NVRTC"):
        out.append(os.environ["GPUSIM_NVRTC"])
    try:  # the loader CuPy itself uses (cuda-pathfinder), where installed
        from cuda.pathfinder import load_nvidia_dynamic_lib

        out.append(load_nvidia_dynamic_lib("nvrtc").abs_path)
    except Exception:
        pass
    for sp in sys.path:
        out += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib", "libnvrtc.so*")), reverse=True)
    found = ctypes.util.find_library("nvrtc")
    if found:
        out.append(found)
    for root in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            out += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")), reverse=True)
    return [c for c in out if c and "builtins" not in os.path.basename(c)]


def library():
    """The NVRTC shared library (ctypes), or a BackendError saying where it was looked for."""
    global _LIB
    if _LIB is None:
        tried = []
        for c in _candidates():
            try:
                lib = ctypes.CDLL(c)
                lib.nvrtcVersion  # noqa: B018 - a symbol every NVRTC has
            except (OSError, AttributeError) as e:
                tried.append(f"{c} ({e})")
                continue
            lib.nvrtcGetErrorString.restype = ctypes.c_char_p
            _LIB = lib
            break
        else:
            raise BackendError("NVRTC (libnvrtc) not found; install the nvidia-cuda-nvrtc wheel "
                               "(pip install nvidia-cuda-nvrtc) or set GPUSIM_NVRTC to the library"
                               + (f"; tried: {'; '.join(tried)}" if tried else ""))
    return _LIB


def available() -> tuple[bool, str]:
    """(True, version) where NVRTC can be loaded, else (False, why)."""
    try:
        return True, version()
    except BackendError as e:
        return False, str(e)


def version() -> str:
    lib = library()
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return f"{major.value}.{minor.value}"


def _check(status: int, what: str, log: str = "") -> None:
    if status:
        msg = library().nvrtcGetErrorString(status).decode()
        raise BackendError(f"NVRTC {what} failed ({msg})" + (f":\n{log}" if log else ""))


def sources(name: str, directory: Path | None = None) -> tuple[bytes, dict[str, bytes]]:
    """The bytes of ``kernels/<name>`` and of every header of the kernel directory."""
    d = directory or kernel_dir()
    src = (d / name).read_bytes()
    headers = {p.name: p.read_bytes() for p in sorted(d.glob("*.cuh"))}
    return src, headers


def binary_key(name: str, target: str, options=OPTIONS, extra: str = "",
               directory: Path | None = None) -> str:
    """SHA-256 of everything a compiled kernel file depends on: its source, every header it can
    include, the options, the target and ``extra`` (the compiler's version)."""
    src, headers = sources(name, directory)
    h = hashlib.sha256()
    for part in [name.encode(), src, *(k.encode() + b"\0" + v for k, v in headers.items()),
                 " ".join(options).encode(), target.encode(), extra.encode()]:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def compile_source(name: str, target: str, options=OPTIONS, directory: Path | None = None) -> bytes:
    """Compile ``kernels/<name>`` for ``target``: ``sm_XY`` gives a cubin, ``compute_XY`` PTX."""
    lib = library()
    src, headers = sources(name, directory)
    prog = ctypes.c_void_p()
    names = list(headers)
    n = len(names)
    hdr = (ctypes.c_char_p * n)(*[headers[k] for k in names])
    inc = (ctypes.c_char_p * n)(*[k.encode() for k in names])
    _check(lib.nvrtcCreateProgram(ctypes.byref(prog), src, name.encode(), n, hdr, inc),
           f"create ({name})")
    try:
        opts = [o.encode() for o in (*options, f"--gpu-architecture={target}")]
        status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        _check(status, f"compile of {name} for {target}", log.value.decode(errors="replace"))
        kind = "CUBIN" if target.startswith("sm_") else "PTX"
        getsize, get = getattr(lib, f"nvrtcGet{kind}Size"), getattr(lib, f"nvrtcGet{kind}")
        _check(getsize(prog, ctypes.byref(size)), f"get {kind}")
        out = ctypes.create_string_buffer(size.value)
        _check(get(prog, out), f"get {kind}")
        return out.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def cache_dir() -> Path:
    """``$GPUSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/gpusim``, else ``~/.cache/gpusim``."""
    env = os.environ.get("GPUSIM_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpusim"


def cached(key: str, suffix: str, build) -> Path:
    """The cache file ``kernels/<key><suffix>``, built with ``build() -> bytes`` when absent
    (written to a temporary name and renamed, so a concurrent or killed build leaves no torn
    file)."""
    d = cache_dir() / "kernels"
    path = d / f"{key}{suffix}"
    if not path.is_file():
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(build())
        os.replace(tmp, path)
    return path


def binary(name: str, target: str) -> Path:
    """The cached cubin (``sm_XY``) of ``kernels/<name>``, compiled on first use."""
    v = version()
    key = binary_key(name, target, OPTIONS, f"nvrtc {v}")
    return cached(key, ".cubin" if target.startswith("sm_") else ".ptx",
                  lambda: compile_source(name, target))


def kernel_hash() -> str:
    """SHA-256 over every kernel source and the options (part of the self-check's cache key)."""
    h = hashlib.sha256(" ".join(OPTIONS).encode())
    for p in sorted(kernel_dir().glob("*.cu*")):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()

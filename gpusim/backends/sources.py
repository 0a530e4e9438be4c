"""Where the CUDA sources of ``kernels/`` are, for the CuPy backend and the tests.

Installed (wheel or ``pip install -e .`` after the kernels were added), they are the package data of
``gpusim.kernels`` and found with :mod:`importlib.resources`.  An editable install made before
``gpusim.kernels`` existed does not map that package; then the repository's ``kernels/`` beside
the ``gpusim`` package directory is used.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from ..errors import BackendError

def kernel_dir() -> Path:
    """The directory holding ``*.cu`` and ``*.cuh`` (a real directory on disk)."""
    try:
        d = Path(str(importlib.resources.files("gpusim.kernels")))
        if (d / "philox.cuh").is_file():
            return d
    except ModuleNotFoundError:
        pass
    d = Path(__file__).resolve().parents[2] / "kernels"
    if (d / "philox.cuh").is_file():
        return d
    raise BackendError("the CUDA kernel sources (gpusim.kernels) are missing from this installation; "
                       "reinstall gpusim")


def kernel_files() -> list[Path]:
    """Every kernel translation unit (``*.cu``), sorted by name."""
    return sorted(kernel_dir().glob("*.cu"))

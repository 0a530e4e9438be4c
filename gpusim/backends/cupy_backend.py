"""CuPy backend: launches the CUDA kernels of ``kernels/`` (one per phase).

The kernel launchers are not part of this build; ``AVAILABLE`` is False, so ``auto`` picks the
NumPy engine and ``--backend cupy`` is refused with a clear error.
"""

AVAILABLE = False

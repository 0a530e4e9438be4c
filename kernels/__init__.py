"""CUDA C++ sources of the CuPy backend (installed as the package data of ``gpusim.kernels``).

Each ``*.cu`` file holds the kernels of one phase and includes only headers of this directory;
``philox.cuh`` (random numbers, stream ids) and ``common.cuh`` (host/device shim) are shared.
"""

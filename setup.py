"""Package list for setuptools (everything else is in pyproject.toml).

``gpusim.kernels`` is the top-level ``kernels/`` directory (package-dir mapping in pyproject.toml),
so the CUDA sources live where ARCHITECTURE.md puts them and still ship in the wheel.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["gpusim*"]) + ["gpusim.kernels"])

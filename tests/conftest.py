"""Shared pytest configuration.

GPU tests (marker ``gpu``) skip, saying why, where CuPy or a CUDA device is missing.  On a GPU
machine set ``GPUSIM_REQUIRE_GPU=1``: a skipped ``gpu`` test then counts as a failure, so a broken
CUDA install cannot pass silently.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_GPU = os.environ.get("GPUSIM_REQUIRE_GPU", "") not in ("", "0")


def pytest_addoption(parser):
    parser.addoption("--update-reference", action="store_true", default=False,
                     help="rewrite tests/reference/reference.json from the current code (golden "
                          "references; say why in the change's note)")


def _backend_params():
    out = [pytest.param("numpy")]
    out.append(pytest.param("emulated"))
    out.append(pytest.param("cupy", marks=pytest.mark.gpu))
    return out


@pytest.fixture(params=_backend_params())
def backend(request):
    """Runs a test on every backend present: ``numpy``; ``emulated`` (the device step on the CPU,
    where a C++ compiler exists); ``cupy`` (marked ``gpu``: on a GPU machine).  The value is a
    ``make(scenario, replicates=None, first_replicate=None)`` returning a Simulation."""
    from gpusim.backends import make_simulation

    name = request.param
    if name == "emulated":
        from gpusim.backends.emulated import compiler

        if compiler() is None:
            pytest.skip("no host C++ compiler for the emulated device")
    if name == "cupy":
        from gpusim.backends import gpu_device

        dev, _, why = gpu_device()
        if dev is None:
            pytest.skip(why)

    def make(scenario, replicates=None, first_replicate=None):
        return make_simulation(name, scenario, replicates, first_replicate)

    make.name = name
    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_GPU and rep.skipped and item.get_closest_marker("gpu") is not None:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"GPUSIM_REQUIRE_GPU=1 but this GPU test was skipped: {reason}"

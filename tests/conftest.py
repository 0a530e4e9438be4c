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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_GPU and rep.skipped and item.get_closest_marker("gpu") is not None:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"GPUSIM_REQUIRE_GPU=1 but this GPU test was skipped: {reason}"

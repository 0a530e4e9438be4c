"""Backend selection everywhere, and the CuPy backend on a real GPU.

Tests marked ``gpu`` need CuPy and a CUDA device; elsewhere they skip, saying why, unless
``GPUSIM_REQUIRE_GPU=1`` (tests/conftest.py), which makes the skip a failure (``make gpu-check``
sets it).  The device step itself is checked without a GPU on the emulated device
(tests/test_device.py); here the same comparison runs on the real device, longer.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gpusim.backends import gpu_device, make_simulation, select
from gpusim.errors import BackendError
from gpusim.scenario import bundled, load_scenario



@pytest.fixture
def cuda(tmp_path_factory, monkeypatch):
    """The CUDA runtime, with the kernel and verdict cache in a fresh directory."""
    dev, _, why = gpu_device()
    if dev is None:
        pytest.skip(why)
    from gpusim.backends import nvrtc

    ok, nv = nvrtc.available()
    if not ok:
        pytest.skip(nv)
    monkeypatch.setenv("GPUSIM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    from gpusim.backends import cupy_backend

    return cupy_backend.CudaRuntime()


# ----------------------------------------------------------------------------- any machine
def test_numpy_backend_always_selectable():
    assert select("numpy").name == "numpy"


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(BackendError, match="allowed: auto, numpy, cupy, emulated"):
        select("cuda")


def test_auto_says_what_it_took():
    be = select("auto")
    assert be.name in ("numpy", "cupy") and be.reason.startswith("auto:")


def test_cupy_where_it_cannot_run_is_an_error_and_exit_2(tmp_path):
    from gpusim.cli import main

    if gpu_device()[0] is not None:
        pytest.skip("a GPU is present here")
    with pytest.raises(BackendError, match="cannot run here: no GPU"):
        make_simulation("cupy", load_scenario("quickstart"))
    out = tmp_path / "x.h5"
    res = CliRunner().invoke(main, ["run", "quickstart", "--backend", "cupy", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "no GPU" in res.output and not out.exists()
    res = CliRunner().invoke(main, ["selftest", "--backend", "cupy"])
    assert res.exit_code == 2 and "no GPU" in res.output, res.output
    res = CliRunner().invoke(main, ["info"])
    assert res.exit_code == 0 and "backend cupy: not available: no GPU" in res.output, res.output


def test_make_simulation_numpy_is_the_engine():
    from gpusim.engine import NumpyPhases, Simulation

    sim = make_simulation("numpy", load_scenario("quickstart", ["domain.x_voxels=20", "domain.y_voxels=20"]),
                          replicates=1)
    assert type(sim) is Simulation and isinstance(sim.phases, NumpyPhases)


def test_failed_self_check_refuses_the_backend_with_a_report(tmp_path, monkeypatch):
    """A mismatch names the first differing array and step, is cached, writes a report, and makes
    'cupy' a BackendError and 'auto' take NumPy."""
    from gpusim import backends
    from gpusim.backends import cupy_backend, nvrtc, selfcheck

    monkeypatch.setenv("GPUSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(backends, "gpu_device", lambda: ("Test GPU (80 GiB, sm_90)", "13.0", ""))
    monkeypatch.setattr(nvrtc, "available", lambda: (True, "13.0"))
    monkeypatch.setattr(nvrtc, "version", lambda: "13.0")
    monkeypatch.setattr(cupy_backend, "runtime", lambda: object())
    calls = []

    def verify(rt, names=selfcheck.SCENARIOS, steps=selfcheck.STEPS):
        calls.append(1)
        return selfcheck.Mismatch("quickstart", 7, "ifng", "3 elements differ")

    monkeypatch.setattr(selfcheck, "verify", verify)
    with pytest.raises(BackendError, match="ifng differs first at step 7"):
        select("cupy")
    be = select("auto")
    assert be.name == "numpy" and "self-check" in be.reason
    assert len(calls) == 1, "the verdict was not cached"
    (rep,) = tmp_path.glob("selftest-report-*.json")
    assert '"what": "ifng"' in rep.read_text() and str(rep) in be.reason
    ok, why = backends.cupy_status(run_check=False)
    assert not ok and "failed" in why


# ----------------------------------------------------------------------------- GPU
#: mechanisms off in every bundled scenario, run on both backends too
VARIANTS = {
    "memory": ("intratumoral", ["car_t.memory_conversion_rate_per_day=150",
                                "car_t.memory_reactivation_probability=0.5"]),
    "zero_order_o2": ("quickstart", ["oxygen.consumption_tumour_mmHg_per_min=3000",
                                     "oxygen.consumption_healthy_mmHg_per_min=50"]),
    "two_products": ("dual_target", ["car_t.targets=A", "delivery.schedule=iv 0 1e9; intratumoral 0 2e7 B; "
                                     "intraventricular 0 1e9 B; iv 0.1 1e9 B",
                                     "delivery.regional_surface_cm2=1.0", "delivery.cns_tumour=true",
                                     "car_t.max_per_voxel=2"]),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(bundled()) + sorted(VARIANTS))
def test_cupy_backend_bitwise_every_step(cuda, name):
    """Every state array and event after every step, 200 steps, on the real device."""
    from gpusim.backends.cupy_backend import device_phases
    from gpusim.backends.selfcheck import first_difference, reduced
    from gpusim.engine import Simulation

    base, extra = VARIANTS.get(name, (name, []))
    sc = reduced(base, extra, size=48, depth=8)
    ref = Simulation(sc, replicates=2, first_replicate=3)
    dev = Simulation(sc, replicates=2, first_replicate=3, phases=device_phases(cuda))
    m = first_difference(ref, dev, 200, name)
    assert m is None, m


@pytest.mark.gpu
def test_full_size_subnormals_on_the_device(cuda):
    """Full-size iv_baseline past the step where IFN-gamma becomes subnormal (step 8 with
    flushing): bitwise, so the kernels were built without flush-to-zero."""
    from gpusim.backends.cupy_backend import device_phases
    from gpusim.backends.selfcheck import first_difference
    from gpusim.engine import Simulation

    sc = load_scenario("iv_baseline")
    ref = Simulation(sc, replicates=1, first_replicate=0)
    dev = Simulation(sc, replicates=1, first_replicate=0, phases=device_phases(cuda))
    assert first_difference(ref, dev, 20, "iv_baseline") is None


@pytest.mark.gpu
def test_every_kernel_loads_on_the_device(cuda):
    from gpusim.backends.interface import KERNELS

    for f, kernels in KERNELS.items():
        mod = cuda.module(f)
        for k in kernels:
            mod.get_function(k)
        assert cuda.module(f) is mod, "modules are cached per runtime"


@pytest.mark.gpu
@pytest.mark.parametrize("shape,boundary,floor", [((3, 1, 33, 32), "neumann", None),
                                                  ((2, 6, 7, 9), "dirichlet", 0.0)])
def test_field_solver_on_device_bitwise(cuda, shape, boundary, floor):
    from gpusim.testing import assert_device_solve_bitwise, solver_case

    assert_device_solve_bitwise(cuda, solver_case(shape, boundary, floor=floor, seed=1))


@pytest.mark.gpu
@pytest.mark.parametrize("shape,boundary", [((3, 1, 65, 64), "neumann"), ((2, 9, 8, 11), "dirichlet")])
def test_multigrid_solver_on_device_bitwise(cuda, shape, boundary):
    from gpusim.testing import assert_device_solve_bitwise, multigrid_case

    assert_device_solve_bitwise(cuda, multigrid_case(shape, boundary))


@pytest.mark.gpu
def test_selftest_passes_and_auto_takes_the_gpu(cuda):
    from gpusim.cli import main

    res = CliRunner().invoke(main, ["selftest"])
    assert res.exit_code == 0 and "passed" in res.output, res.output
    assert select("auto").name == "cupy"

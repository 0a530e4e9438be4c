"""The CuPy backend, end to end, against the NumPy engine (bitwise).

Tests marked ``gpu`` need CuPy and a CUDA device; elsewhere they skip, saying why, unless
``GPUSIM_REQUIRE_GPU=1`` (tests/conftest.py), which makes the skip a failure.  The tests without
the marker check what must hold on every machine: backend selection and its errors.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from gpusim.backends import make_simulation, select
from gpusim.errors import BackendError
from gpusim.scenario import bundled, load_scenario

F32 = np.float32


def _gpu_reason() -> str | None:
    """None when CuPy and a CUDA device are usable, else why not."""
    try:
        import cupy
    except Exception as e:
        return f"CuPy is not importable ({type(e).__name__}: {e})"
    try:
        if not cupy.cuda.is_available():
            return "CuPy imports but no CUDA device is available"
    except Exception as e:
        return f"CUDA device query failed ({type(e).__name__}: {e})"
    return None


@pytest.fixture
def cp():
    reason = _gpu_reason()
    if reason:
        pytest.skip(reason)
    import cupy

    return cupy


# ----------------------------------------------------------------------------- any machine
def test_numpy_backend_always_selectable():
    assert select("numpy").name == "numpy"


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(BackendError, match="allowed: auto, numpy, cupy"):
        select("cuda")


def test_auto_says_what_it_took():
    be = select("auto")
    assert be.name in ("numpy", "cupy") and be.reason.startswith("auto:")


def test_cupy_where_it_cannot_run_is_an_error_and_exit_2(tmp_path):
    from gpusim.backends import cupy_status
    from gpusim.cli import main

    ok, why = cupy_status()
    if ok:
        pytest.skip("the CuPy backend can run here")
    with pytest.raises(BackendError, match="cannot run here"):
        make_simulation("cupy", load_scenario("quickstart"))
    out = tmp_path / "x.h5"
    res = CliRunner().invoke(main, ["run", "quickstart", "--backend", "cupy", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "cupy" in res.output and not out.exists()


def test_make_simulation_numpy_is_the_engine():
    from gpusim.engine import Simulation

    sim = make_simulation("numpy", load_scenario("quickstart", ["domain.x_voxels=20", "domain.y_voxels=20"]),
                          replicates=1)
    assert type(sim) is Simulation


# ----------------------------------------------------------------------------- GPU
def reduced(name: str, extra=()):
    """A bundled scenario at test size (the lattice capped at 48 x 48 (x 8 in 3D)), with the
    ``extra`` overrides."""
    sc = load_scenario(name)
    Z, Y, X = sc.shape
    sets = [f"domain.x_voxels={min(X, 48)}", f"domain.y_voxels={min(Y, 48)}"]
    if Z > 1:
        sets.append(f"domain.z_voxels={min(Z, 8)}")
    return load_scenario(name, sets + list(extra))


#: mechanisms that are off by default and in every bundled scenario, run on both backends too
VARIANTS = {
    "quickstart+memory": ("quickstart", ["car_t.memory_conversion_rate_per_day=2",
                                         "car_t.memory_reactivation_probability=0.3",
                                         "car_t.memory_death_rate_per_day=0.5"]),
    "quickstart+zero_order_o2": ("quickstart", ["oxygen.consumption_tumour_mmHg_per_min=3000",
                                                "oxygen.consumption_healthy_mmHg_per_min=50"]),
}


def first_difference(a: dict, b: dict) -> str | None:
    for k in a:
        if a[k] != b[k]:
            return k
    return None


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(bundled()) + sorted(VARIANTS))
def test_cupy_backend_bitwise_every_step(cp, name):
    """Every state array hashed after every step on both backends; names the first array and step
    that differ."""
    from gpusim.backends.cupy_backend import CupySimulation
    from gpusim.engine import Simulation

    base, extra = VARIANTS.get(name, (name, []))
    sc = reduced(base, extra)
    steps = 300
    ref = Simulation(sc, replicates=2, first_replicate=3)
    dev = CupySimulation(sc, replicates=2, first_replicate=3)
    assert first_difference(ref.state.digest(), dev.state.digest()) is None, "initial state differs"
    for s in range(1, steps + 1):
        ref.step()
        dev.step()
        k = first_difference(ref.state.digest(), dev.state.digest())
        assert k is None, f"{name}: array '{k}' differs first at step {s} (device mode {dev.mode})"
    for k, v in ref.metrics().items():
        np.testing.assert_array_equal(dev.metrics()[k], v, err_msg=k)


@pytest.mark.gpu
def test_device_step_mirrors_the_current_engine(cp):
    """Fails while the kernels mirror an older engine (the backend then steps on the host)."""
    from gpusim.backends import cupy_backend

    assert cupy_backend.twin_fingerprint() == cupy_backend.TWIN_FINGERPRINT, (
        "the NumPy engine changed after the CUDA kernels were written: update the kernels of "
        f"{cupy_backend.DEVICE_PHASES} and TWIN_FINGERPRINT together")


@pytest.mark.gpu
def test_every_kernel_compiles_with_nvrtc(cp):
    from gpusim.backends.cupy_backend import module
    from gpusim.backends.sources import kernel_files

    for f in kernel_files():
        mod = module(f.name)
        assert mod is module(f.name), "modules are cached per device"


@pytest.mark.gpu
@pytest.mark.parametrize("shape,boundary", [((3, 1, 33, 32), "neumann"), ((2, 6, 7, 9), "dirichlet")])
def test_field_solver_on_device_bitwise(cp, shape, boundary):
    from types import SimpleNamespace

    from gpusim.backends.cupy_backend import CupySimulation
    from gpusim.model.fields import FieldSolver

    g = np.random.default_rng(1)
    c0 = g.uniform(0, 1, shape).astype(F32)
    a = g.uniform(0.01, 0.5, shape).astype(F32)
    s = g.uniform(0, 0.2, shape).astype(F32)
    fixed = g.random(shape) < 0.05
    fs = FieldSolver(shape, diffusion_um2_per_min=2000.0, voxel_um=20.0, boundary=boundary,
                     boundary_value=0.3, omega=1.6, tol=1e-5, max_iter=500)
    c_np = c0.copy()
    it_np = fs.solve(c_np, a, s, fixed, 0.75)
    fake = SimpleNamespace(cp=cp)
    c_dev = cp.asarray(c0)
    it_dev = CupySimulation._solve(fake, fs, c_dev, cp.asarray(a), cp.asarray(s),
                                   cp.asarray(fixed.astype(np.uint8)), F32(0.75))
    np.testing.assert_array_equal(it_dev.get(), it_np)
    assert hashlib.sha256(c_dev.get().tobytes()).hexdigest() == hashlib.sha256(c_np.tobytes()).hexdigest()


# ----------------------------------------------------------------------------- bench
def test_bench_numpy_record_and_cli(tmp_path):
    import json

    from gpusim.bench import run_bench
    from gpusim.cli import main

    rec = run_bench(("quickstart",), (24,), ("numpy",), replicates=2, steps=3, warmup=1)
    (row,) = rec["results"]
    assert row["shape"] == [1, 24, 24] and row["steps"] == 3 and row["backend"] == "numpy"
    assert row["voxel_steps_per_s"] == pytest.approx(row["steps_per_s"] * 24 * 24 * 2)
    # the phases are timed inside the step loop, so together they cannot exceed it
    assert set(row["phase_s"]) >= {"fields", "tumour", "car_t", "systemic"}
    assert sum(row["phase_s"].values()) <= row["step_s"]
    assert rec["commit"] and rec["date_utc"].endswith("Z")
    out = tmp_path / "b.json"
    args = ["bench", "quickstart", "--size", "20", "-r", "1", "--steps", "1", "--warmup", "0",
            "--backend", "numpy", "--json", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "steps/s" in res.output and json.loads(out.read_text())["results"][0]["voxels"] == 400
    before = out.read_text()
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and out.read_text() == before, "overwrote without --force"


# ----------------------------------------------------------------------------- compaction
def test_compaction_order_equals_the_numpy_phase():
    """Survivors in slot order, then daughters in their parents' order, per replicate: the order
    car_t._fate + scatter produce (rebuilt here from their flat-list recipe)."""
    from gpusim.backends.compaction import append_slots, compact

    g = np.random.default_rng(5)
    R, C = 4, 20
    count = np.array([12, 0, 7, 10])
    live = np.arange(C)[None, :] < count[:, None]
    val = g.integers(0, 1000, (R, C)).astype(np.int32)
    keep = live & (g.random((R, C)) < 0.7)
    born = keep & (g.random((R, C)) < 0.4)
    new, n = compact(np, {"v": val}, keep, born, {"v": -val}, {"v": -1})
    r, s = np.nonzero(live)
    k, b = keep[r, s], born[r, s]
    r_all = np.concatenate([r[k], r[b]])
    v_all = np.concatenate([val[r, s][k], -val[r, s][b]])
    order = np.argsort(r_all, kind="stable")
    for rr in range(R):
        want = v_all[order][r_all[order] == rr]
        assert n[rr] == want.size
        np.testing.assert_array_equal(new["v"][rr, :want.size], want)
        assert (new["v"][rr, want.size:] == -1).all()
    small = {"v": val[:, :8]}
    none, overflow = compact(np, small, keep[:, :8], born[:, :8], small, {})
    need = keep[:, :8].sum(1) + born[:, :8].sum(1)
    assert none is None and overflow.tolist() == (need > 8).tolist() and overflow.any()
    enter = g.random((R, 9)) < 0.3
    slots, n2 = append_slots(np, count, enter)
    for rr in range(R):
        np.testing.assert_array_equal(slots[rr][enter[rr]], count[rr] + np.arange(enter[rr].sum()))
    np.testing.assert_array_equal(n2, count + enter.sum(1))


# ----------------------------------------------------------------------------- backend plumbing
def test_cupy_simulation_plumbing_with_numpy_stand_in(monkeypatch):
    """CupySimulation's state transfers, host-fallback stepping and observation, run with a NumPy
    stand-in for the cupy module (no kernel is launched: the twin fingerprint of the current engine
    is checked, and a stale one must select host stepping).  Bitwise equal to the engine."""
    import sys
    import types
    import warnings

    from gpusim.backends import cupy_backend
    from gpusim.engine import Simulation

    fake = types.ModuleType("cupy")
    fake.asarray = lambda a: np.array(a, copy=True)
    fake.asnumpy = lambda a: np.array(a, copy=True)
    fake.full, fake.uint64 = np.full, np.uint64
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cupy_backend, "TWIN_FINGERPRINT", "stale")
    sc = load_scenario("quickstart", ["domain.x_voxels=24", "domain.y_voxels=24"])
    ref = Simulation(sc, replicates=2, first_replicate=1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dev = cupy_backend.CupySimulation(sc, replicates=2, first_replicate=1)
    assert dev.mode == "host" and any("older version" in str(x.message) for x in w)
    for s in range(1, 6):
        ref.step()
        dev.step()
        k = first_difference(ref.state.digest(), dev.state.digest())
        assert k is None, f"array {k} differs at step {s}"
    assert dev.time_days == ref.time_days
    for name, fn in (("metrics", lambda x: x.metrics()), ("endpoints", lambda x: x.endpoints()),
                     ("snapshot", lambda x: x.snapshot(1))):
        a, b = fn(ref), fn(dev)
        assert a.keys() == b.keys(), name
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}.{key}")
    assert {k: v.tolist() for k, v in dev.last_events.items()} == \
           {k: np.asarray(v).tolist() for k, v in ref.last_events.items()}


# ----------------------------------------------------------------------------- launch signatures
_C_TYPES = {"int": np.int32, "unsigned int": np.uint32, "long long": np.int64, "float": np.float32,
            "double": np.float64}
_C_PTRS = {"unsigned char": np.uint8, "signed char": np.int8, "short": np.int16, "int": np.int32,
           "unsigned int": np.uint32, "float": np.float32, "unsigned long long": np.uint64,
           "long long": np.int64}


def kernel_signatures() -> dict[str, list[tuple[str, bool]]]:
    """name -> [(C base type, is pointer)] of every extern "C" __global__ kernel in kernels/*.cu
    (the GPUSIM_TABLE_ARGS macro of car_t.cu expanded)."""
    import re

    from gpusim.backends.sources import kernel_files

    table = ("unsigned char *a, int *b, float *c, unsigned char *d, int *e, signed char *f, "
             "short *g, unsigned char *h")
    sigs = {}
    for p in kernel_files():
        text = re.sub(r"GPUSIM_TABLE_ARGS\(\w+\)", table, p.read_text())
        for name, params in re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\((.*?)\)\s*\{', text, re.S):
            out = []
            for prm in params.split(","):
                prm = " ".join(prm.replace("const ", "").split())
                ptr = "*" in prm
                base = prm.split("*")[0].strip() if ptr else prm.rsplit(" ", 1)[0]
                out.append((base, ptr))
            sigs[name] = out
    return sigs


def test_device_step_launches_match_kernel_signatures(monkeypatch):
    """CupySimulation._device_step run with a NumPy stand-in for cupy whose kernels check every
    launch against the kernel's C signature (number of arguments, scalar types, pointer element
    dtypes; struct pointers must be uint8 buffers of the record size) instead of running.  This
    checks the launch code of the device step without a GPU; what the kernels compute is checked
    by tests/test_kernels.py.  (The kernels do not run here, so the state is not compared.)"""
    import sys
    import types

    from gpusim.backends import cupy_backend as cb

    sigs = kernel_signatures()
    structs = {"TumourK": cb.TUMOUR_K_DTYPE, "CarTK": cb.CART_K_DTYPE, "MoveK": cb.MOVE_K_DTYPE,
               "MicroK": cb.MICRO_K_DTYPE, "FieldCoefK": cb.FIELD_COEF_K_DTYPE}
    launched = []

    class Arr(np.ndarray):
        def get(self):
            return np.asarray(self).copy()

    def wrap(x):
        return np.array(x, copy=True).view(Arr)

    def check(name, args):
        sig = sigs[name]
        assert len(args) == len(sig), f"{name}: {len(args)} arguments, the kernel takes {len(sig)}"
        for j, ((base, ptr), a) in enumerate(zip(sig, args)):
            where = f"{name} argument {j} ({base}{' *' if ptr else ''})"
            if ptr and base in structs:
                assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.size == structs[base].itemsize, where
            elif ptr:
                assert isinstance(a, np.ndarray) and a.dtype == _C_PTRS[base], f"{where}: {getattr(a, 'dtype', type(a))}"
            else:
                assert type(a) is _C_TYPES[base], f"{where}: {type(a)}"
        launched.append(name)
        if name == "fields_after_sweep":
            args[3][:] = 0  # active: every replicate converged, so the solver loop ends
        if name == "inject_select_kernel":
            args[-1][:] = 1  # counts: one entrant per replicate, so the append is launched

    class Module:
        def get_function(self, name):
            assert name in sigs, f"no kernel {name}"
            return lambda grid, block, args: check(name, args)

    fake = types.ModuleType("cupy")
    for k in ("full", "zeros", "empty", "empty_like", "arange", "where", "minimum", "maximum"):
        setattr(fake, k, lambda *a, _f=getattr(np, k), **kw: wrap(_f(*a, **kw)))
    fake.argmax = np.argmax
    # "uninitialised" output arrays start as a copy of their template, so that a kernel output
    # the stand-in does not compute (tumour_decide_kernel's kind) keeps the state's values
    fake.empty_like = lambda a, *args, **kw: wrap(a)
    fake.asarray, fake.asnumpy = wrap, lambda a: np.array(a, copy=True)
    for t in ("uint8", "int8", "int16", "int32", "int64", "uint32", "uint64", "float32", "bool_"):
        setattr(fake, t, getattr(np, t))
    fake.cuda = types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0))
    fake.RawModule = lambda **kw: Module()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cb, "_MODULES", {})
    monkeypatch.setattr(cb, "TWIN_FINGERPRINT", cb.twin_fingerprint())
    downloads = []
    download = cb.CupySimulation._download
    monkeypatch.setattr(cb.CupySimulation, "_download", lambda self: downloads.append(1) or download(self))
    sc = load_scenario("intratumoral", ["domain.x_voxels=20", "domain.y_voxels=20", "tumour.radius_um=150",
                                        "car_t.generation=fourth"])
    # intratumoral (dose at step 0: inject_select_kernel) and regional (infusion from step 0:
    # regional_free/decide_kernel)
    for scen in (sc, load_scenario("regional_gbm", ["domain.x_voxels=20", "domain.y_voxels=20"])):
        dev = cb.CupySimulation(scen, replicates=2, first_replicate=0)
        assert dev.mode == "device"
        for _ in range(2):
            dev.step()
    assert not downloads, "the device step copied the whole state to the host"
    # car_t_tumour_peak is computed on the device (cupy_backend.car_t_tumour_count, run here by
    # the stand-in with NumPy): from a zeroed peak, one step (the kernels do not run, so the
    # state keeps the engine's CAR-T cells and tumour) must give the engine's own count
    from gpusim.engine import Simulation

    small = load_scenario("intratumoral", ["domain.x_voxels=20", "domain.y_voxels=20",
                                           "tumour.radius_um=60"])  # some cells away from tumour
    ref = Simulation(small, replicates=2, first_replicate=0)
    for _ in range(3):
        ref.step()
    dev = cb.CupySimulation(small, replicates=2, first_replicate=0, state=ref.state)
    dev.d["car_t_tumour_peak"] = wrap(np.zeros(2, np.int64))
    dev.step()
    ref.state = dev.state
    count = ref._car_t_tumour()
    assert 0 < count.sum() < ref.state.t_count.sum(), count
    np.testing.assert_array_equal(dev.d["car_t_tumour_peak"], count)
    want = {n for n in sigs if not n.startswith("fields_") or n in
            ("fields_prepare", "fields_sor_colour", "fields_after_sweep")}
    assert want <= set(launched), f"never launched: {sorted(want - set(launched))}"


def test_bench_gpu_times_methods_the_backend_has():
    """benchmarks/bench_gpu.py wraps CupySimulation phase methods by name; a renamed method would
    otherwise only show on the GPU machine."""
    import importlib.util
    from pathlib import Path

    from gpusim.backends.cupy_backend import CupySimulation

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for meth in list(mod.PHASE_METHODS) + ["_solve"]:
        assert callable(getattr(CupySimulation, meth, None)), meth


def test_toxicity_from_row_sums_equals_the_engine():
    """The device step feeds toxicity_phase the row sums of t_eng (computed on the device, (R,)
    values read back) instead of the (R, C) column: on engine states with engaged cells and
    padding, IL-6 and its peak and AUC must be bitwise the engine's."""
    from types import SimpleNamespace

    from gpusim.engine import SYSTEMIC, Simulation
    from gpusim.model.systemic import toxicity_phase

    sc = load_scenario("quickstart", ["domain.x_voxels=32", "domain.y_voxels=32"])
    sim = Simulation(sc, replicates=3)
    seen = 0
    for _ in range(150):
        sim.step()
        st = sim.state
        if not st.t_eng.any():
            continue
        seen += 1
        ev = {k: np.asarray(v) for k, v in sim.last_events.items()}
        full = SimpleNamespace(kind=np.zeros(3), t_count=st.t_count.copy(), t_eng=st.t_eng.copy(),
                               **{k: getattr(st, k).copy() for k in SYSTEMIC})
        rows = SimpleNamespace(kind=np.zeros(3), t_count=st.t_count.copy(),
                               t_eng=st.t_eng.sum(axis=1, dtype=np.int64)[:, None],
                               **{k: getattr(st, k).copy() for k in SYSTEMIC})
        toxicity_phase(full, sim.systemic_params, ev)
        toxicity_phase(rows, sim.systemic_params, ev)
        for k in SYSTEMIC:
            np.testing.assert_array_equal(getattr(rows, k), getattr(full, k), err_msg=k)
    assert seen > 10

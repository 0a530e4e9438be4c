"""Memory estimate (gpusim/memory.py) and the refusal of run, sweep and bench (issue 13, item 4).

* the state part equals the bytes of a real Simulation's state arrays exactly, and the field
  solver part equals real FieldSolvers' buffers (plus the held-position indices of a solve)
  byte for byte;
* the whole estimate bounds the measured peak (tracemalloc) of set-up plus a few steps with
  metrics and snapshots, within a stated tolerance: peak <= estimate <= TOLERANCE x peak;
* run, sweep and bench refuse an estimate above what is available with exit 2 and one line
  printing the estimate and the available memory, quickly and before any file or directory
  exists (no set-up is started); --force-memory overrides;
* hostmem.keep_freed_memory stops glibc from handing freed blocks back and faulting them in again.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from gpusim import memory
from gpusim.cli import main
from gpusim.engine import Simulation
from gpusim.model.fields import FieldSolver
from gpusim.scenario import load_scenario

TOLERANCE = 1.5  # estimate / measured peak, at most (small batches; see docs/memory.md)

SMALL = {
    "quickstart_2d": ("quickstart", [], 4),
    "large_3d_40": ("large_3d", ["domain.x_voxels=40", "domain.y_voxels=40", "domain.z_voxels=40",
                                 "tumour.radius_um=300"], 2),
    "intratumoral_2d": ("intratumoral", ["domain.x_voxels=100", "domain.y_voxels=100",
                                         "tumour.radius_um=700"], 2),
}


def _owned_solver_bytes(s: FieldSolver) -> int:
    """Bytes of a solver's own arrays (buffers) plus the held indices its views keep."""
    tot = 0
    for v in vars(s).values():
        vals = v.values() if isinstance(v, dict) else [v]
        tot += sum(a.nbytes for a in vals if isinstance(a, np.ndarray))
    return tot + sum(x.fixed.nbytes + (0 if x.held is None else x.held.nbytes) for x in s._views[0])


@pytest.mark.parametrize("sets,R", [([], 3), (["car_t.capacity_per_replicate=77"], 2),
                                    (["domain.z_voxels=5", "domain.x_voxels=9", "domain.y_voxels=7"], 2)])
def test_state_part_is_the_state_nbytes(sets, R):
    sc = load_scenario("quickstart", sets)
    sim = Simulation(sc, replicates=R)
    assert memory.estimate(sc, R).parts["state"] == sum(a.nbytes for a in sim.state.arrays().values())


@pytest.mark.parametrize("shape", [(1, 21, 30), (9, 11, 12), (1, 80, 80), (4, 3, 5), (1, 3, 4), (7, 8, 8)])
@pytest.mark.parametrize("R", [1, 3])
@pytest.mark.parametrize("floor", [None, 0.0])
def test_solver_part_is_the_solver_buffers(shape, R, floor):
    s = FieldSolver((R,) + shape, diffusion_um2_per_min=100.0, voxel_um=20.0, floor=floor, max_iter=1)
    c = np.zeros((R,) + shape, np.float32)
    fixed = np.random.default_rng(0).random(c.shape) < 0.05
    s.solve(c, np.ones_like(c), np.ones_like(c), fixed, 1.0)
    assert memory.solver_bytes(shape, R, floor=floor is not None, fixed_voxels=int(fixed.sum())) \
        == _owned_solver_bytes(s)


def test_solver_specs_follow_the_fields_phase():
    from gpusim.model.environment import FieldsPhase
    from gpusim.model.multigrid import MultigridSolver

    for name in ("quickstart", "iv_baseline"):   # below and above auto's multigrid size
        sc = load_scenario(name)
        fp = FieldsPhase(sc, 1)
        solvers = {}   # one entry per solver object (tgfb_steady may be tgfb itself)
        for k, v in vars(fp).items():
            if isinstance(v, (FieldSolver, MultigridSolver)):
                solvers.setdefault(id(v), (k, isinstance(v, MultigridSolver)))
        assert sorted((k, mg) for k, _, _, mg in memory._solver_specs(sc)) == sorted(solvers.values())
    specs = memory._solver_specs(load_scenario("quickstart"))
    assert [n for n, *_ in specs] == ["o2", "glucose", "chemokine", "tgfb", "ifng", "il12", "tgfb_steady"]
    assert [n for n, *_, mg in specs if mg] == ["tgfb_steady"]   # 80^2: auto keeps SOR per step
    two = memory._solver_specs(load_scenario("iv_baseline"))      # 200^2: glucose, TGF-β
    assert [n for n, *_, mg in two if mg] == ["glucose", "tgfb"]
    three = memory._solver_specs(load_scenario("large_3d"))       # 160^3: glucose
    assert [n for n, *_, mg in three if mg] == ["glucose", "tgfb_steady"]
    on = load_scenario("quickstart", ["oxygen.consumption_tumour_mmHg_per_min=0.1"])
    assert dict((n, f) for n, f, *_ in memory._solver_specs(on))["o2"] is True


@pytest.mark.parametrize("shape", [(1, 21, 30), (9, 11, 12), (5, 3, 12)])
def test_multigrid_solver_part_is_its_buffers(shape):
    from gpusim.model.multigrid import MultigridSolver

    R = 2
    ms = MultigridSolver((R,) + shape, diffusion_um2_per_min=100.0, voxel_um=20.0, max_iter=1)
    c = np.zeros((R,) + shape, np.float32)
    fixed = np.random.default_rng(0).random(c.shape) < 0.05
    ms.solve(c, np.ones_like(c), np.ones_like(c), fixed, 1.0)
    owned = sum(_owned_solver_bytes(lv) for lv in ms.levels)
    owned += ms._coarse_a.nbytes + ms._coarse_den.nbytes
    assert memory.field_solver_bytes(shape, R, floor=False, multigrid=True,
                                     fixed_voxels=int(fixed.sum())) == owned


@pytest.mark.parametrize("name", sorted(SMALL))
def test_estimate_bounds_the_measured_peak(name):
    scn, sets, R = SMALL[name]
    sc = load_scenario(scn, sets)
    est = memory.estimate(sc, R)
    tracemalloc.start()
    try:
        sim = Simulation(sc, replicates=R)
        resident = sum(a.nbytes for a in sim.state.arrays().values())
        for _ in range(5):
            sim.step()
            sim.metrics()
            sim.snapshot(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert resident == est.parts["state"]
    assert peak <= est.host <= TOLERANCE * peak, (peak, est.host, est.parts)


def test_bytes_per_voxel_in_docs_match_the_estimator():
    """docs/memory.md states the per-voxel figures the estimator gives (not numbers that drift)."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "memory.md").read_text()
    lay = memory.state_layout()
    assert f"{lay.per_voxel} bytes per voxel" in doc
    assert f"{lay.per_slot} bytes per agent slot" in doc
    est = memory.estimate(load_scenario("large_3d"), 1)
    assert f"{est.per_voxel():.0f} bytes per voxel" in doc


# ---- refusal --------------------------------------------------------------------------------
@pytest.fixture
def no_setup(monkeypatch):
    """Fail loudly if a simulation is built: a refusal must come before any set-up."""
    import gpusim.engine as engine

    def boom(*a, **k):
        raise AssertionError("set-up started before the memory check")

    monkeypatch.setattr(engine.Simulation, "__init__", boom)


def _refused(res, t0):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gpusim: error:"), res.stderr
    assert "needs about" in lines[0] and "available" in lines[0] and "--force-memory" in lines[0]
    assert time.perf_counter() - t0 < 10
    return lines[0]


def test_run_refuses_ten_million_replicates(tmp_path, monkeypatch, no_setup):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, ["run", "large_3d", "-r", "10000000"])
    line = _refused(res, t0)
    assert "TiB of host memory" in line
    assert list(tmp_path.iterdir()) == []  # not even results/


def test_run_large_3d_refused_on_a_small_host(tmp_path, monkeypatch, no_setup):
    """The issue's case: 16 replicates of 160^3 on a host with 5.2 GB available."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "host_available", lambda: int(5.2e9))
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, ["run", "large_3d", "--days", "0.004", "-o", "big.h5"])
    line = _refused(res, t0)
    assert "4.8 GiB is available" in line and "16 replicate(s) x 4096000 voxels" in line
    assert list(tmp_path.iterdir()) == []


def test_run_prints_the_estimate_and_force_memory_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "quickstart", "-r", "1", "--days", "0.02", "-o", "q.h5"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "memory: about" in res.stderr and "available" in res.stderr
    monkeypatch.setattr(memory, "host_available", lambda: 1000)
    res = CliRunner().invoke(main, args + ["--force"])
    assert res.exit_code == 2 and not (tmp_path / "q.h5.partial").exists()
    res = CliRunner().invoke(main, args + ["--force", "--force-memory"])
    assert res.exit_code == 0, res.output


def test_sweep_refuses_a_point_that_does_not_fit(tmp_path, monkeypatch, no_setup):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, ["sweep", "quickstart", "-g", "run.replicates=2,5000000", "-o", "sw"])
    line = _refused(res, t0)
    assert "sweep point p001" in line
    assert list(tmp_path.iterdir()) == []


def test_bench_refuses_before_the_first_row(tmp_path, monkeypatch, no_setup):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, ["bench", "quickstart", "large_3d", "-r", "300", "--steps", "1",
                                    "--backend", "numpy", "--json", "b.json"])
    line = _refused(res, t0)
    assert "bench large_3d" in line
    assert list(tmp_path.iterdir()) == []


def test_device_memory_is_checked_for_cupy(monkeypatch):
    sc = load_scenario("large_3d")
    est = memory.estimate(sc, 16, "cupy")
    lay = memory.state_layout()
    k = sc["car_t.max_per_voxel"]  # the default capacity: k slots per voxel
    assert est.device_parts["state"] == 16 * (4096000 * (lay.per_voxel + k * lay.per_slot) + lay.per_replicate)
    assert est.host > memory.estimate(sc, 16).host  # the host keeps a downloaded copy too
    monkeypatch.setattr(memory, "host_available", lambda: 10**15)
    monkeypatch.setattr(memory, "device_available", lambda: 10**9)
    with pytest.raises(memory.MemoryLimitError, match="GPU memory.*1.0 GiB|GPU memory.*free on the device"):
        memory.check(sc, 16, "cupy")
    memory.check(sc, 16, "cupy", force=True)
    memory.check(sc, 16, "numpy")  # the device is not asked about for numpy


def test_host_available_reads_meminfo():
    avail = memory.host_available()
    assert avail is None or avail > 0


# ---- the host allocator ---------------------------------------------------------------------
_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from gpusim.hostmem import keep_freed_memory
    assert keep_freed_memory()
for k in range(21):
    if k == 1:  # the first blocks' pages are faulted in whatever the settings
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    # a step's temporaries: 2 MiB each (below NumPy's huge-page size), written, freed together
    a = [np.ones(1 << 19, dtype=np.float32) for _ in range(4)]
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="keep_freed_memory acts on glibc's allocator only")
def test_keep_freed_memory_stops_the_refaulting_of_freed_blocks():
    """Four 2 MiB temporaries allocated, written and freed together, 21 times: by default glibc
    hands the freed top of its heap back to the system and faults the 2048 pages in again on
    every round; with keep_freed_memory they stay in the heap and the 20 rounds after the first
    cost (nearly) no faults.  Each run in a fresh process: the setting is process-wide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS, mode], env=env, check=True,
                                       capture_output=True, text=True).stdout)
              for mode in ("default", "keep")}
    assert faults["default"] >= 20 * 2048 * 0.9
    assert faults["keep"] < 2048


def test_keep_freed_memory_leaves_a_users_allocator_settings_alone(monkeypatch):
    from gpusim import hostmem

    monkeypatch.setattr(hostmem, "_kept", None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert hostmem.keep_freed_memory() is False

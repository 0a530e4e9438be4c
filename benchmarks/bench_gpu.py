"""GPU performance harness: the CuPy backend against the NumPy engine, written to JSON.

    python benchmarks/bench_gpu.py --scenario quickstart --size 200 --size 800 -r 64 \
        --steps 50 --json benchmarks/results/h100.json

What it records (JSON schema ``gpusim-bench-gpu/1``; device, commit and date on the root):

* for every (scenario, size) and backend: set-up time (state build, transfer, kernel compilation:
  the first step after set-up is untimed warm-up), steps/s, voxel-steps/s, CAR-T-steps/s
  (NumPy), the per-phase time split (NumPy: wall clock; CuPy: CUDA events around each phase),
  and the CuPy/NumPy ratio;
* device copy bandwidth (host->device, device->host, device->device, CUDA events, 256 MiB);
* per phase on the CuPy backend, an estimate of the bytes the phase must move at least (every
  array it reads or writes once per voxel / sweep, listed in ``PHASE_BYTES``) and the bandwidth
  that implies, next to the device-to-device copy bandwidth: how close each kernel is to the
  memory roofline.

Without CuPy or a GPU only the NumPy rows are measured (``--backend numpy`` asks for that
explicitly); the script says so and still writes its JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpusim.bench import bench_one, format_table, git_commit, ratios, write_json  # noqa: E402
from gpusim.backends import cupy_status, gpu_details  # noqa: E402
from gpusim.scenario import load_scenario  # noqa: E402

MiB = 2**20


def copy_bandwidth(nbytes: int = 256 * MiB, repeat: int = 5) -> dict:
    """GB/s of host->device, device->host and device->device copies (best of ``repeat``)."""
    import cupy as cp

    host = np.ones(nbytes // 4, np.float32)
    pinned_mem = cp.cuda.alloc_pinned_memory(nbytes)
    pinned = np.frombuffer(pinned_mem, np.float32, nbytes // 4)
    pinned[:] = host
    dev = cp.empty(nbytes // 4, cp.float32)
    dev2 = cp.empty_like(dev)
    start, stop = cp.cuda.Event(), cp.cuda.Event()

    def best(fn) -> float:
        t = []
        for _ in range(repeat):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            t.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
        return nbytes / min(t) / 1e9

    return {
        "bytes": nbytes,
        "h2d_pinned_GBps": best(lambda: dev.set(pinned)),
        "d2h_pinned_GBps": best(lambda: dev.get(out=pinned)),
        "d2d_GBps": best(lambda: dev2.__setitem__(slice(None), dev)) * 2,  # read + write
    }


#: minimal bytes per voxel each device phase moves (reads + writes of every array once)
PHASE_BYTES = {
    # per sweep: c read + c write (4 + 4), s, den (4 + 4), fixed (1); x3 fields (sweeps vary)
    "fields_per_sweep": 17,
    # kind in/out (2), antigens read+write worst case (4), ecm/o2/glucose (12), claims r/w (16)
    "tumour": 34,
}


#: CupySimulation phase methods timed by CUDA events, and their labels in the record
PHASE_METHODS = {"_systemic": "systemic", "_fields": "fields", "_tumour": "tumour",
                 "_microenv": "microenv", "_car_t": "car_t"}


@contextlib.contextmanager
def cupy_phase_events(sim):
    """CUDA-event timing of each phase method of a CupySimulation (ms, accumulated)."""
    import cupy as cp

    times: dict[str, float] = {}
    sweeps = {"n": 0}
    pairs = []
    names = PHASE_METHODS
    originals = {}
    for meth, label in names.items():
        fn = getattr(sim, meth)
        originals[meth] = fn

        def timed(*a, _fn=fn, _label=label, **k):
            e0, e1 = cp.cuda.Event(), cp.cuda.Event()
            e0.record()
            out = _fn(*a, **k)
            e1.record()
            pairs.append((_label, e0, e1))
            return out

        setattr(sim, meth, timed)
    solve = sim._solve

    def counted(*a, **k):
        it = solve(*a, **k)
        sweeps["n"] += int(it.max().get()) if it.size else 0
        return it

    sim._solve = counted
    try:
        yield times, sweeps
    finally:
        cp.cuda.Device().synchronize()
        for label, e0, e1 in pairs:
            times[label] = times.get(label, 0.0) + cp.cuda.get_elapsed_time(e0, e1) / 1e3
        for meth in list(names) + ["_solve"]:
            sim.__dict__.pop(meth, None)


def cupy_row(sc, R: int, steps: int, warmup: int) -> dict:
    """bench_one for CuPy plus the per-phase CUDA-event split and bytes-moved estimate."""
    import cupy as cp

    from gpusim.backends.cupy_backend import CupySimulation

    t0 = time.perf_counter()
    sim = CupySimulation(sc, replicates=R)
    for _ in range(max(1, warmup)):  # the first step compiles the kernels
        sim.step()
    cp.cuda.Device().synchronize()
    setup_s = time.perf_counter() - t0
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    with cupy_phase_events(sim) as (phases, sweeps):
        start.record()
        for _ in range(steps):
            sim.step()
        stop.record()
        stop.synchronize()
    step_s = cp.cuda.get_elapsed_time(start, stop) / 1e3
    nvox = int(np.prod(sc.shape))
    cells = nvox * R
    moved = {"tumour": PHASE_BYTES["tumour"] * cells * steps,
             "fields": PHASE_BYTES["fields_per_sweep"] * cells * sweeps["n"]}
    return {
        "scenario": sc.name, "backend": "cupy", "device_mode": sim.mode, "shape": list(sc.shape),
        "replicates": R, "voxels": nvox, "steps": steps, "warmup_steps": max(1, warmup),
        "setup_and_compile_s": setup_s, "setup_s": setup_s, "step_s": step_s,
        "steps_per_s": steps / step_s, "voxel_steps_per_s": steps * cells / step_s,
        "car_t_steps_per_s": None, "phase_s": phases,
        "bytes_moved_estimate": moved,
        "achieved_GBps_estimate": {k: moved[k] / phases[k] / 1e9 for k in moved if phases.get(k)},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", default=None, help="bundled name or TOML (repeatable)")
    ap.add_argument("--size", type=int, action="append", default=None, help="lattice edge (repeatable)")
    ap.add_argument("-r", "--replicates", type=int, default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--backend", action="append", choices=["numpy", "cupy"], default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    gpu_ok = False
    try:
        import cupy

        gpu_ok = bool(cupy.cuda.is_available())
    except Exception:
        pass
    backends = a.backend or (["numpy", "cupy"] if gpu_ok else ["numpy"])
    if "cupy" in backends and not gpu_ok:
        print("bench_gpu: no usable CuPy/GPU here; --backend numpy measures the NumPy rows", file=sys.stderr)
        return 2
    if "cupy" not in backends:
        print("bench_gpu: NumPy rows only (no GPU measurement)", file=sys.stderr)
    rows = []
    for name in a.scenario or ["quickstart"]:
        for size in a.size or [None]:
            sc = load_scenario(name, [f"domain.x_voxels={size}", f"domain.y_voxels={size}"] if size else [])
            R = a.replicates or sc["run.replicates"]
            for b in backends:
                print(f"{sc.name} {sc.shape} x{R} on {b} ...", file=sys.stderr)
                rows.append(cupy_row(sc, R, a.steps, a.warmup) if b == "cupy"
                            else bench_one(sc, b, R, a.steps, a.warmup))
    rec = {
        "schema": "gpusim-bench-gpu/1", "commit": git_commit(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": gpu_details(), "cupy_backend": cupy_status()[1],
        "copy_bandwidth": copy_bandwidth() if "cupy" in backends else None,
        "results": rows, "ratios": ratios(rows),
    }
    print(format_table(rec))
    if rec["copy_bandwidth"]:
        print("copy bandwidth (GB/s): " + ", ".join(f"{k} {v:.0f}" for k, v in rec["copy_bandwidth"].items()
                                                   if k.endswith("GBps")))
    if a.json:
        print(f"wrote {write_json(rec, a.json, a.force)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

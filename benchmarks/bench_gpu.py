"""GPU performance harness: the CuPy backend against the NumPy engine, written to JSON.

    python benchmarks/bench_gpu.py --scenario quickstart --size 200 --size 800 -r 64 \
        --steps 50 --json benchmarks/results/h100.json

What it records (JSON schema ``gpusim-bench-gpu/1``; device, commit and date on the root):

* for every (scenario, size) and backend: set-up time (state build, transfer, kernel compilation:
  the first step after set-up is untimed warm-up), steps/s, voxel-steps/s, CAR-T-steps/s
  (NumPy), the per-phase time split (NumPy: wall clock; CuPy: CUDA events around each phase),
  and the CuPy/NumPy ratio;
* device copy bandwidth (host->device, device->host, device->device, CUDA events, 256 MiB);
* per phase on the CuPy backend, an estimate of the bytes the phase moves (the field solves:
  counted from their kernels with the sweeps and cycles each step ran,
  :func:`gpusim.study.fieldbench.step_cost`; the tumour phase: every array it reads or writes
  once per voxel, ``PHASE_BYTES``) and the bandwidth that implies, next to the device-to-device
  copy bandwidth: how close each kernel is to the memory roofline; and the field solves' kernel
  launches, with the phase time per launch (an upper bound of what a launch costs: where it
  is near the few microseconds of a launch, the solves are bound by launches, not bytes).

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

from gpusim.study.bench import bench_one, format_table, git_commit, ratios, write_json  # noqa: E402
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


#: minimal bytes per voxel the tumour phase moves (reads + writes of every array once; the field
#: solves are counted from their kernels, fieldbench.step_cost)
PHASE_BYTES = {
    # kind in/out (2), antigens read+write worst case (4), ecm/o2/glucose (12), claims r/w (16)
    "tumour": 34,
}


#: phases of the device backend timed by CUDA events (DevicePhases methods)
PHASES = ("systemic", "fields", "tumour", "microenv", "car_t")


@contextlib.contextmanager
def cupy_phase_events(sim):
    """CUDA-event timing of each phase of a device Simulation (seconds, accumulated), and what
    the field solves did: sweeps (max over replicates, summed over fields and steps), device
    bytes per voxel, kernel launches and host reads (fieldbench.step_cost, summed over steps)."""
    import cupy as cp

    from gpusim.study.fieldbench import step_cost

    times: dict[str, float] = {}
    sweeps = {"n": 0, "bytes_per_voxel": 0.0, "launches": 0, "host_reads": 0}
    f = sim.fields
    solvers = {"oxygen": f.o2, "glucose": f.glucose, "chemokine": f.chemokine, "tgfb": f.tgfb,
               "ifng": f.ifng, "il12": f.il12}
    pairs = []
    ph = sim.phases
    for name in PHASES:
        fn = getattr(ph, name)

        def timed(*a, _fn=fn, _label=name, **k):
            e0, e1 = cp.cuda.Event(), cp.cuda.Event()
            e0.record()
            out = _fn(*a, **k)
            e1.record()
            pairs.append((_label, e0, e1))
            if _label == "fields":
                it = sim.fields.iterations
                sweeps["n"] += sum(int(np.max(v, initial=0)) for v in it.values())
                b, n, r = step_cost(it, solvers)
                sweeps["bytes_per_voxel"] += b
                sweeps["launches"] += n
                sweeps["host_reads"] += r
            return out

        setattr(ph, name, timed)
    try:
        yield times, sweeps
    finally:
        cp.cuda.Device().synchronize()
        for label, e0, e1 in pairs:
            times[label] = times.get(label, 0.0) + cp.cuda.get_elapsed_time(e0, e1) / 1e3
        for name in PHASES:
            ph.__dict__.pop(name, None)


def cupy_row(sc, R: int, steps: int, warmup: int, time_limit: float = float("inf")) -> dict:
    """bench_one for the CuPy backend plus the per-phase CUDA-event split and a bytes-moved
    estimate; stops after ``time_limit`` seconds of stepping (at least one step)."""
    import cupy as cp

    from gpusim.backends import make_simulation

    t0 = time.perf_counter()
    sim = make_simulation("cupy", sc, replicates=R)
    cp.cuda.Device().synchronize()
    setup_s = time.perf_counter() - t0
    for _ in range(max(1, warmup)):  # the first step loads the kernels
        sim.step()
    cp.cuda.Device().synchronize()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    done = 0
    wall = time.perf_counter()
    with cupy_phase_events(sim) as (phases, sweeps):
        start.record()
        while done < steps and (done == 0 or time.perf_counter() - wall < time_limit):
            sim.step()
            done += 1
        stop.record()
        stop.synchronize()
    step_s = cp.cuda.get_elapsed_time(start, stop) / 1e3
    nvox = int(np.prod(sc.shape))
    cells = nvox * R
    moved = {"tumour": PHASE_BYTES["tumour"] * cells * done,
             "fields": sweeps["bytes_per_voxel"] * cells}
    return {
        "scenario": sc.name, "backend": "cupy", "shape": list(sc.shape),
        "replicates": R, "voxels": nvox, "steps": done, "warmup_steps": max(1, warmup),
        "setup_s": setup_s, "step_s": step_s,
        "steps_per_s": done / step_s, "voxel_steps_per_s": done * cells / step_s,
        "car_t_steps_per_s": None, "phase_s": phases, "field_sweeps": sweeps["n"],
        "field_launches": sweeps["launches"], "field_host_reads": sweeps["host_reads"],
        "field_us_per_launch": (phases["fields"] / sweeps["launches"] * 1e6
                                if sweeps["launches"] and phases.get("fields") else None),
        "bytes_moved_estimate": moved,
        "achieved_GBps_estimate": {k: moved[k] / phases[k] / 1e9 for k in moved if phases.get(k)},
    }


def _sets(size: str) -> list[str]:
    """``--size`` N (x and y) or XxYxZ as scenario overrides."""
    parts = [int(p) for p in size.lower().split("x")]
    keys = ("domain.x_voxels", "domain.y_voxels", "domain.z_voxels")
    if len(parts) == 1:
        parts = parts * 2
    return [f"{k}={v}" for k, v in zip(keys, parts)]


def _record(rows, backends, bandwidth=None) -> dict:
    return {"schema": "gpusim-bench-gpu/1", "commit": git_commit(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "device": gpu_details(), "cupy_backend": cupy_status(run_check=False)[1],
            "copy_bandwidth": bandwidth, "results": rows, "ratios": ratios(rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", default=None, help="bundled name or TOML (repeatable)")
    ap.add_argument("--size", action="append", default=None,
                    help="lattice edge N (x and y) or XxYxZ (repeatable; run in the order given)")
    ap.add_argument("--time-limit", type=float, default=float("inf"),
                    help="seconds of stepping per GPU row (at least one step)")
    ap.add_argument("-r", "--replicates", type=int, default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--backend", action="append", choices=["numpy", "cupy"], default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    if a.json and a.json.exists() and not a.force:
        print(f"bench_gpu: {a.json} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
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
            sc = load_scenario(name, _sets(size) if size else [])
            R = a.replicates or sc["run.replicates"]
            for b in backends:
                print(f"{sc.name} {sc.shape} x{R} on {b} ...", file=sys.stderr)
                rows.append(cupy_row(sc, R, a.steps, a.warmup, a.time_limit) if b == "cupy"
                            else bench_one(sc, b, R, a.steps, a.warmup))
                if a.json:  # written after every row, so a row killed by a time limit keeps the rest
                    write_json(_record(rows, backends), a.json, True)
    rec = _record(rows, backends, copy_bandwidth() if "cupy" in backends else None)
    print(format_table(rec))
    if rec["copy_bandwidth"]:
        print("copy bandwidth (GB/s): " + ", ".join(f"{k} {v:.0f}" for k, v in rec["copy_bandwidth"].items()
                                                   if k.endswith("GBps")))
    if a.json:
        print(f"wrote {write_json(rec, a.json, True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

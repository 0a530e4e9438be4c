"""Throughput of the NumPy reference engine.

Measures, for the iv_baseline scenario in 2D at several domain sizes (all mechanisms on), the
voxel-steps per second (replicates × voxels × steps / s), CAR-T-steps per second (CAR-T cells
alive summed over the timed steps / s) and the split of the step time by phase; and the wall time
of the quickstart run that `make run` performs.  Set-up (initial tissue, first field solve) is
timed apart from stepping; a warm-up lets CAR-T cells arrive before the timed steps.

    python benchmarks/bench_engine.py [--sizes 100,200,400] [--replicates 8] [--steps 60]
                                      [--warmup 120] [--out benchmarks/results/engine_numpy.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np

import gpusim
from gpusim.backends import cpu_description
from gpusim.study.bench import git_commit
from gpusim.engine import Simulation
from gpusim.scenario import load_scenario


def bench_size(n: int, replicates: int, steps: int, warmup: int) -> dict:
    radius = 1500.0 * n / 200.0  # the iv_baseline tumour, scaled with the domain
    sc = load_scenario("iv_baseline", {"domain.x_voxels": n, "domain.y_voxels": n,
                                       "tumour.radius_um": radius, "run.replicates": replicates})
    t0 = time.perf_counter()
    sim = Simulation(sc)
    setup = time.perf_counter() - t0
    for _ in range(warmup):
        sim.step()
    sim.phase_seconds.clear()
    agents = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.step()
        agents += int(sim.state.t_count.sum())
    elapsed = time.perf_counter() - t0
    voxels = n * n
    split = {k: round(v / elapsed, 4) for k, v in sim.phase_seconds.items()}
    return {"scenario": "iv_baseline", "domain": [1, n, n], "voxels": voxels,
            "replicates": replicates, "timed_steps": steps, "warmup_steps": warmup,
            "setup_seconds": round(setup, 3), "step_seconds": round(elapsed / steps, 5),
            "voxel_steps_per_second": round(replicates * voxels * steps / elapsed),
            "car_t_steps_per_second": round(agents / elapsed),
            "mean_car_t_per_replicate": round(agents / steps / replicates, 1),
            "phase_fraction": split}


def bench_quickstart() -> dict:
    t0 = time.perf_counter()
    res = gpusim.run("quickstart")
    elapsed = time.perf_counter() - t0
    sc = load_scenario("quickstart")
    steps = int(res.attrs["steps_total"])
    R = res.replicates
    vox = int(np.prod(sc.shape))
    return {"scenario": "quickstart", "replicates": R, "steps": steps, "wall_seconds": round(elapsed, 2),
            "voxel_steps_per_second": round(R * vox * steps / elapsed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,200,400")
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=120)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine_numpy.json"))
    a = ap.parse_args()
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        row = bench_size(n, a.replicates, a.steps, a.warmup)
        print(json.dumps(row))
        rows.append(row)
    q = bench_quickstart()
    print(json.dumps(q))
    record = {"benchmark": "engine_numpy", "backend": "numpy", "device": cpu_description(),
              "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
              "commit": git_commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "numpy": np.__version__, "gpusim": gpusim.__version__,
              "sizes": rows, "quickstart": q}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

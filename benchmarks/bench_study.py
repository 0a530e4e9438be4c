"""Throughput of a Monte Carlo study: N replicates of a quickstart-size scenario (80 x 80 voxels)
split into chunks on a local Dask cluster, merged into one result file.

Writes JSON (device, commit, date, replicates/s, voxel-steps/s, ...) to
benchmarks/results/bench_study[_<tag>].json.  Usage::

    python benchmarks/bench_study.py                       # 1,000 replicates, 2 workers
    python benchmarks/bench_study.py --workers 16 --tag h100 --backend auto

Needs the optional extra gpusim[dask].  ``--workers 0`` runs in one process without Dask.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from gpusim import __version__  # noqa: E402
from gpusim.backends import select  # noqa: E402
from gpusim.engine import steps_for  # noqa: E402
from gpusim.study.runner import resolve, run  # noqa: E402


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="quickstart")
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--days", type=float, default=0.5,
                    help="simulated days (reduced from quickstart's 7 to keep the study to minutes)")
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (0: one process, no Dask)")
    ap.add_argument("--chunk", type=int, default=50, help="replicates per Dask task")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name (e.g. the machine)")
    ap.add_argument("--out", default=None, help="JSON path [default: benchmarks/results/bench_study[_TAG].json]")
    a = ap.parse_args(argv)

    sc = resolve(a.scenario, replicates=a.replicates, days=a.days, backend=a.backend)
    be = select(sc["run.backend"])
    steps = steps_for(sc["run.days"], sc["run.dt_min"])
    nvox = int(np.prod(sc.shape))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "study.h5"
        t0 = time.perf_counter()
        if a.workers > 0:
            from gpusim.study.distributed import Cluster, run_distributed

            with Cluster(workers=a.workers) as cl:
                t1 = time.perf_counter()
                res = run_distributed(sc, out, cl, n_chunks=-(-a.replicates // a.chunk))
                wall = time.perf_counter() - t1
            startup = t1 - t0
        else:
            res = run(sc, out)
            wall, startup = time.perf_counter() - t0, 0.0
        size = out.stat().st_size
        assert res.status == "complete" and res.replicates == a.replicates
    result = {
        "benchmark": "bench_study",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
        "gpusim_version": __version__,
        "device": be.device,
        "backend": be.name,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scenario": sc.name,
        "lattice": list(sc.shape),
        "replicates": a.replicates,
        "days": a.days,
        "steps": steps,
        "workers": a.workers,
        "replicates_per_chunk": a.chunk,
        "cluster_startup_s": round(startup, 3),
        "wall_s": round(wall, 3),
        "replicates_per_s": a.replicates / wall,
        "replicate_steps_per_s": a.replicates * steps / wall,
        "voxel_steps_per_s": a.replicates * steps * nvox / wall,
        "result_file_bytes": size,
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "note": "wall_s covers the chunked run and the merge into one HDF5 file, not the cluster start",
    }
    path = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / (
        f"bench_study{'_' + a.tag if a.tag else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

"""Set-up time of large 3D domains: the initial tissue, and the whole engine set-up (tissue plus
the fields' initial steady state), with the memory estimate of each size (issue 13).

For each edge N: the large_3d scenario at N^3 voxels (nodule radius scaled with N, one
replicate).  Timed apart:

* ``tissue_s``: model/tissue.initial_tissue_batch (array code);
* ``tissue_before_s`` (with ``--before COMMIT``): the per-replicate construction of that commit,
  loaded from git, for the before/after comparison (only for N <= --before-max);
* ``setup_s``: the engine set-up (Simulation(...)), split into tissue (``setup_tissue_s``), the fields solve and the
  TGF-β steady state (``FieldsPhase.solve`` / ``steady_tgfb``), with the sweeps (multigrid: cycles) per field;
  run only where the memory estimate fits in the available memory and N <= --full-max.
  Otherwise the record says why, and gives an extrapolation of the field solve from the largest
  full size (time per voxel-sweep x voxels x sweeps, sweeps taken as growing linearly with N),
  marked as such.

    python benchmarks/bench_setup.py [--sizes 128,256,512] [--before e5d4a5d] [--before-max 256]
                                     [--full-max 256] [--out benchmarks/results/setup_numpy.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import gpusim
from gpusim import memory
from gpusim.backends import cpu_description
from gpusim.study.bench import git_commit, timed
from gpusim.engine import Simulation
from gpusim.model import environment, tissue
from gpusim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def scenario(n: int):
    return load_scenario("large_3d", [f"domain.x_voxels={n}", f"domain.y_voxels={n}",
                                      f"domain.z_voxels={n}", f"tumour.radius_um={1200.0 * n / 160}"])


def load_before(rev: str):
    """The tissue module of commit ``rev``, imported as gpusim.model._tissue_before."""
    src = subprocess.run(["git", "show", f"{rev}:gpusim/model/tissue.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("gpusim.model._tissue_before", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "gpusim.model"
    exec(compile(src, f"{rev}:gpusim/model/tissue.py", "exec"), mod.__dict__)
    return mod


def timed_setup(sc) -> dict:
    """Simulation set-up of one replicate, split by part."""
    t: dict[str, float] = {}
    solve, steady = environment.FieldsPhase.solve, environment.FieldsPhase.steady_tgfb
    batch = tissue.initial_tissue_batch
    sweeps = {}

    def solve_w(self, st):
        timed(t, "fields_solve_s", solve)(self, st)
        sweeps.update({k: int(v.max()) for k, v in self.iterations.items()})

    environment.FieldsPhase.solve = solve_w
    environment.FieldsPhase.steady_tgfb = timed(t, "tgfb_steady_s", steady)
    tissue.initial_tissue_batch = timed(t, "setup_tissue_s", batch)
    try:
        t0 = time.perf_counter()
        Simulation(sc, replicates=1)
        t["setup_s"] = time.perf_counter() - t0
    finally:
        environment.FieldsPhase.solve, environment.FieldsPhase.steady_tgfb = solve, steady
        tissue.initial_tissue_batch = batch
    t["sor_sweeps"] = sweeps
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,256,512")
    ap.add_argument("--before", default=None, metavar="COMMIT",
                    help="also time the tissue construction of this commit")
    ap.add_argument("--before-max", type=int, default=256)
    ap.add_argument("--full-max", type=int, default=256)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "setup_numpy.json"))
    a = ap.parse_args()
    before = load_before(a.before) if a.before else None
    rows = []
    last_full = None
    for n in (int(s) for s in a.sizes.split(",")):
        sc = scenario(n)
        est = memory.estimate(sc, 1)
        avail = memory.host_available()
        row = {"edge": n, "voxels": n**3, "estimate_host_bytes": est.host,
               "estimate_bytes_per_voxel": est.per_voxel(),
               "estimate_parts": est.parts, "available_bytes": avail}
        t0 = time.perf_counter()
        tissue.initial_tissue_batch(sc, 1, [0])
        row["tissue_s"] = time.perf_counter() - t0
        print(f"{n}^3: tissue {row['tissue_s']:.2f} s", file=sys.stderr, flush=True)
        if before is not None and n <= a.before_max:
            t0 = time.perf_counter()
            before.initial_tissue(sc, 1, 0)
            row["tissue_before_s"] = time.perf_counter() - t0
            print(f"{n}^3: tissue before {row['tissue_before_s']:.2f} s", file=sys.stderr, flush=True)
        fits = avail is None or est.host <= avail
        if n <= a.full_max and fits:
            row.update(timed_setup(sc))
            row["peak_rss_bytes_so_far"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            last_full = row
            print(f"{n}^3: set-up {row['setup_s']:.1f} s (fields {row['fields_solve_s']:.1f} s, "
                  f"TGF-b steady {row['tgfb_steady_s']:.1f} s)", file=sys.stderr, flush=True)
        else:
            row["setup_skipped"] = ("memory estimate exceeds the available memory" if not fits
                                    else f"edge above --full-max {a.full_max}")
            if last_full is not None:
                k = n / last_full["edge"]
                field = last_full["fields_solve_s"] + last_full["tgfb_steady_s"]
                row["extrapolated_field_s"] = field * k**3 * k  # voxels x sweeps (linear in N)
                row["extrapolated_from_edge"] = last_full["edge"]
        rows.append(row)
    rec = {"benchmark": "setup", "backend": "numpy", "device": cpu_description(),
           "load_average_1_5_15": list(os.getloadavg()), "commit": git_commit(),
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "numpy": np.__version__, "gpusim": gpusim.__version__, "scenario": "large_3d (N^3, radius 1200 um x N/160), 1 replicate",
           "before_commit": a.before, "sizes": rows}
    Path(a.out).write_text(json.dumps(rec, indent=2, default=float) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

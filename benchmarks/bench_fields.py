"""The field solver: sweeps, accuracy and cost, against reference commits in the same run.

The measurement itself is :mod:`gpusim.study.fieldbench` (also behind ``gpusim bench --fields``, which
measures this checkout alone); this script adds the comparison: for each case (iv_baseline 2D at
100^2 and 400^2, a 75^3 large_3d tumour; 8 replicates in 2D, 1 in 3D unless told) and each code
version (this checkout, and every commit of ``--ref``, by default the commit before issue 14), a
worker process with that version first on its path runs :func:`gpusim.study.fieldbench.record_case`;
the main process then solves each recorded system in float64 and reports per field sweeps,
error against the converged solution in units of ``tol``, time per voxel-sweep, device bytes
per voxel-step and device launches per step (:func:`gpusim.study.fieldbench.summary`), and per
reference the step, fields, device-byte and launch ratios.  Workers of the versions alternate
case by case, so that all see the same machine load, in ``--repeat`` passes, every other one in
reverse order (no version always runs first), and each time reported is the fastest pass's: a
shared machine's timings vary by 10-30 % from run to run.  The record also holds the host time per
launch of this checkout's launch code (:func:`gpusim.study.fieldbench.launch_overhead_us`).

    python benchmarks/bench_fields.py [--cases 100,400,75x3] [--ref 88ac9d8,main] [--steps 3]
                                      [--warmup 4] [--repeat 2] [--ref-tolerance 1e-6]
                                      [--out benchmarks/results/fields_numpy.json]

``--ref-tolerance`` runs the references with a tighter ``run.field_tolerance``: the old stopping
rule then gets closer to the accuracy this checkout states, for a comparison at equal accuracy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REF = "88ac9d8"


def _fieldbench():
    """gpusim/study/fieldbench.py of THIS checkout, loaded by path: the worker's ``gpusim`` may be a
    reference commit that does not have it (its ``gpusim`` imports resolve to that commit)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fieldbench", ROOT / "gpusim" / "study" / "fieldbench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def worker(case: str, replicates: int, warmup: int, steps: int, out: str,
           tolerance: float | None = None) -> None:
    """Run in a subprocess with the version under test first on sys.path; writes a pickle."""
    res = _fieldbench().record_case(case, replicates, warmup, steps, tolerance)
    with open(out, "wb") as fh:
        pickle.dump(res, fh)


def run_worker(src: Path, case: str, replicates: int, warmup: int, steps: int,
               tolerance: float | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as tmp:
        path = tmp.name
    env = dict(os.environ, PYTHONPATH=str(src))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", case,
                    "--replicates", str(replicates), "--warmup", str(warmup), "--steps", str(steps),
                    "--out", path] + ([] if tolerance is None else ["--tolerance", str(tolerance)]),
                   check=True, env=env, cwd=str(src))
    with open(path, "rb") as fh:
        res = pickle.load(fh)
    os.unlink(path)
    return res


def git(*args, cwd=ROOT) -> str:
    return subprocess.check_output(["git", *args], text=True, cwd=cwd).strip()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="100,400,75x3")
    ap.add_argument("--replicates", type=int, default=None,
                    help="replicates per case (default: 8 in 2D, 1 in 3D)")
    ap.add_argument("--ref", default=REF,
                    help="reference commits, comma-separated (e.g. 88ac9d8,main; '' for none); "
                         "each is run in the same session and compared with this checkout")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2,
                    help="passes over the versions, every other one in reverse order; each time "
                         "reported is the fastest pass's")
    ap.add_argument("--out", default=str(HERE / "results" / "fields_numpy.json"))
    ap.add_argument("--ref-tolerance", type=float, default=None,
                    help="run.field_tolerance of the reference runs (e.g. tightened until the "
                         "reference reaches the accuracy this checkout states)")
    ap.add_argument("--tolerance", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker, a.replicates, a.warmup, a.steps, a.out, a.tolerance)
        return
    sys.path.insert(0, str(ROOT))
    from gpusim.backends import cpu_description
    from gpusim.study.fieldbench import launch_overhead_us, parse_cases, summary

    refs = [r for r in a.ref.split(",") if r]
    versions = {"this": ROOT}
    tmpdir = tempfile.TemporaryDirectory(prefix="gpusim-ref-")
    for ref in refs:
        ar = subprocess.run(["git", "archive", ref, "gpusim", "kernels"], cwd=ROOT,
                            check=True, capture_output=True).stdout
        dst = Path(tmpdir.name) / ref.replace("/", "_")
        dst.mkdir()
        subprocess.run(["tar", "-x", "-C", str(dst)], input=ar, check=True)
        versions[ref] = dst
    rows = []
    for case in parse_cases(a.cases.split(",")):
        R = a.replicates or (1 if case.endswith("x3") else 8)
        row = {"case": case}
        runs = {tag: [] for tag in versions}
        for k in range(a.repeat):   # the order reversed every other pass: no version always first
            for tag in (list(versions) if k % 2 == 0 else list(versions)[::-1]):
                print(f"[bench_fields] {case} x {R}: {tag} (pass {k + 1})", file=sys.stderr, flush=True)
                tol = a.ref_tolerance if tag != "this" else None
                runs[tag].append(run_worker(versions[tag], case, R, a.warmup, a.steps, tol))
        for tag, rs in runs.items():   # times: the fastest pass; the rest does not vary
            res = dict(rs[0])
            for key in ("step_seconds", "fields_seconds", "seconds_per_voxel_sweep"):
                res[key] = min(r[key] for r in rs)
            row[tag] = summary(res)
            row[tag]["step_seconds_passes"] = [round(r["step_seconds"], 4) for r in rs]
            row[tag]["field_tolerance"] = a.ref_tolerance if tag != "this" else None
        for ref in refs:   # > 1: this checkout is faster / moves fewer bytes
            this, other = row["this"], row[ref]
            row[f"vs_{ref}"] = dict(
                step_speedup=round(other["step_seconds"] / this["step_seconds"], 3),
                fields_speedup=round(other["fields_seconds"] / this["fields_seconds"], 3),
                device_bytes_ratio=round(this["device_bytes_per_voxel_step"]
                                         / other["device_bytes_per_voxel_step"], 3),
                device_launches_ratio=round(this["device_launches_per_step"]
                                            / other["device_launches_per_step"], 3))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k.startswith("vs_")}), file=sys.stderr)
    record = dict(benchmark="bench_fields", device=cpu_description(), backend="numpy",
                  commit=git("rev-parse", "HEAD"), dirty=bool(git("status", "--porcelain", "--",
                                                                  "gpusim", "kernels")),
                  ref_commits={ref: git("rev-parse", ref) for ref in refs},
                  date_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  launch_overhead_us=launch_overhead_us(), cases=rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)
    tmpdir.cleanup()


if __name__ == "__main__":
    main()

"""The field solver: sweeps, accuracy and cost, against a reference commit in the same run.

For each case (iv_baseline 2D at 100^2 and 400^2, a 75^3 large_3d tumour; 8 replicates in 2D,
1 in 3D unless told) and each code version (this checkout, and ``--ref COMMIT``, by default the
commit before issue 14), a worker process builds the engine, runs ``--warmup`` steps, then times
``--steps`` steps (the time of the whole step and of the fields phase).  During the last timed
step it records, per field, the inputs of each solve (the previous values, ``a``, ``s``, the
vessel mask) and the result.  The main process then solves each recorded system in float64
(:func:`gpusim.model.fields.exact_solution`, scipy.sparse direct) and reports per field:

* sweeps of the solve (mean and max over replicates),
* ``err``: max-norm distance of the float32 result to the float64 converged solution of the same
  discrete system, and ``tol``: the solver's tolerance (the bound the new stopping rule states);
* time per voxel-sweep of the fields phase (fields seconds / (voxels x replicates x all sweeps));
* device bytes per voxel-step: the bytes a device step's field solves move per voxel, counted
  from the kernels (:func:`device_bytes`) with the recorded sweeps.

Workers of the two versions alternate case by case, so that both see the same machine load.

    python benchmarks/bench_fields.py [--cases 100,400,75x3] [--ref 88ac9d8] [--steps 3]
                                      [--warmup 4] [--ref-tolerance 1e-6]
                                      [--out benchmarks/results/fields_numpy.json]

``--ref-tolerance`` runs the reference with a tighter ``run.field_tolerance``: its old stopping
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
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REF = "88ac9d8"
FIELDS = ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12")


# ----------------------------------------------------------------------------- device bytes
def device_bytes(sweeps: dict, cmax: bool) -> float:
    """Bytes per voxel-step that the field solves of one device step move, counted from
    kernels/fields.cu and field_coeffs.cu (one thread per voxel, C order, 32-byte sectors):

    * per solve: ``field_coeffs_kernel`` reads kind (1), amap (1), c_old (4), ifng (4), o2 (4) and
      writes a (4), s (4): 22 B; ``fields_prepare`` reads a (4), fixed (1), c (4) and writes
      den (4), c (4): 17 B; ``fields_cmax`` (from issue 14) reads c: 4 B;
    * per sweep, two colour passes: a pass updates every other voxel of a row, so its reads of
      c, s, den and fixed touch every sector of those arrays: 2 x 13 B; it writes half of c:
      2 x 2 B (counted as half sectors); neighbour values are the other colour's words of
      sectors just read (cache): 0.  30 B per voxel-sweep.

    ``sweeps``: field -> mean sweeps per replicate of a solve (0 for a skipped solve)."""
    total = 0.0
    for n in sweeps.values():
        if n > 0:
            total += 22 + 17 + (4 if cmax else 0) + 30 * n
    return total


# ----------------------------------------------------------------------------- worker
def scenario_for(case: str, replicates: int, tolerance: float | None = None):
    from gpusim.scenario import load_scenario

    extra = {} if tolerance is None else {"run.field_tolerance": tolerance}

    if case.endswith("x3"):
        n = int(case[:-2])
        return load_scenario("large_3d", {"domain.x_voxels": n, "domain.y_voxels": n,
                                          "domain.z_voxels": n, "tumour.radius_um": 1200.0 * n / 160,
                                          "run.replicates": replicates, **extra})
    n = int(case)
    return load_scenario("iv_baseline", {"domain.x_voxels": n, "domain.y_voxels": n,
                                         "tumour.radius_um": 1500.0 * n / 200.0,
                                         "run.replicates": replicates, **extra})


def worker(case: str, replicates: int, warmup: int, steps: int, out: str,
           tolerance: float | None = None) -> None:
    """Run in a subprocess with the version under test first on sys.path; writes a pickle."""
    from gpusim.engine import Simulation

    sim = Simulation(scenario_for(case, replicates, tolerance))
    f = sim.fields
    for _ in range(warmup):
        sim.step()
    fields_s, step_s = 0.0, 0.0
    record: dict = {}
    orig = f.solve

    def timed(st):
        nonlocal fields_s
        t0 = time.perf_counter()
        orig(st)
        fields_s += time.perf_counter() - t0

    f.solve = timed
    sweeps_total = 0
    for k in range(steps):
        last = k == steps - 1
        wrapped = []
        if last:  # record the inputs and results of every solve of this step
            for name in FIELDS:
                fs = getattr(f, name)
                inner = fs.solve

                def rec(c, a, s, fixed_mask=None, fixed_value=0.0, _n=name, _fs=fs, _inner=inner):
                    c0 = c.copy()
                    it = _inner(c, a, s, fixed_mask, fixed_value)
                    record[_n] = dict(c0=c0, a=np.array(a), s=np.array(s),
                                      fixed=None if fixed_mask is None else np.array(fixed_mask),
                                      fixed_value=float(fixed_value), c=c.copy(), sweeps=it.copy(),
                                      tol=_fs.tol, omega=_fs.omega, floor=_fs.floor,
                                      boundary=_fs.boundary, boundary_value=_fs.boundary_value,
                                      D=_fs.diffusion_um2_per_min, h=_fs.voxel_um,
                                      scale=getattr(_fs, "scale", 0.0))
                    return it

                fs.solve = rec
                wrapped.append(fs)
        t0 = time.perf_counter()
        sim.step()
        step_s += time.perf_counter() - t0
        sweeps_total += sum(int(np.sum(v)) for v in f.iterations.values())
        for fs in wrapped:
            del fs.solve
    st = sim.state
    vox = int(np.prod(st.kind.shape[1:]))
    res = dict(case=case, replicates=replicates, voxels=vox, steps=steps, warmup=warmup,
               step_seconds=step_s / steps, fields_seconds=fields_s / steps,
               seconds_per_voxel_sweep=fields_s / max(1, sweeps_total) / vox,
               record=record)
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


# ----------------------------------------------------------------------------- analysis
def analyse(res: dict, check: int = 2) -> dict:
    """Per-field sweeps (all replicates) and error against the float64 converged solution (the
    first ``check`` replicates: the exact solves are the slow part)."""
    from gpusim.model.fields import FieldSolver, exact_solution

    out = {}
    for name, r in res["record"].items():
        row = dict(sweeps_mean=float(np.mean(r["sweeps"])), sweeps_max=int(np.max(r["sweeps"])),
                   omega=r["omega"], tol=r["tol"])
        if r["floor"] is None:
            k = min(check, r["c"].shape[0])
            fs = FieldSolver((k,) + r["c"].shape[1:], diffusion_um2_per_min=r["D"],
                             voxel_um=r["h"], boundary=r["boundary"],
                             boundary_value=r["boundary_value"], omega=r["omega"], tol=r["tol"])
            ex = exact_solution(fs, r["a"][:k], r["s"][:k],
                                None if r["fixed"] is None else r["fixed"][:k], r["fixed_value"],
                                x0=r["c"][:k])
            err = float(np.abs(r["c"][:k].astype(np.float64) - ex).max())
            row.update(err=err, err_over_tol=err / r["tol"] if r["tol"] else None,
                       max_value=float(np.abs(ex).max()))
        out[name] = row
    return out


def summary(res: dict) -> dict:
    fields = analyse(res)
    sweeps = {k: v["sweeps_mean"] for k, v in fields.items()}
    return dict(case=res["case"], replicates=res["replicates"], voxels=res["voxels"],
                timed_steps=res["steps"], warmup_steps=res["warmup"],
                step_seconds=round(res["step_seconds"], 4),
                fields_seconds=round(res["fields_seconds"], 4),
                ns_per_voxel_sweep=round(res["seconds_per_voxel_sweep"] * 1e9, 3),
                device_bytes_per_voxel_step=round(device_bytes(
                    sweeps, any(r.get("scale", 0.0) > 0 for r in res["record"].values())), 1),
                fields=fields)


def git(*args, cwd=ROOT) -> str:
    return subprocess.check_output(["git", *args], text=True, cwd=cwd).strip()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="100,400,75x3")
    ap.add_argument("--replicates", type=int, default=None,
                    help="replicates per case (default: 8 in 2D, 1 in 3D)")
    ap.add_argument("--ref", default=REF, help="reference commit ('' for none)")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
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
    from bench_engine import device  # noqa: E402  (benchmarks/ helper: the CPU in words)

    versions = {"this": ROOT}
    tmpdir = None
    if a.ref:
        tmpdir = tempfile.TemporaryDirectory(prefix="gpusim-ref-")
        ar = subprocess.run(["git", "archive", a.ref, "gpusim", "kernels"], cwd=ROOT,
                            check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmpdir.name], input=ar, check=True)
        versions["ref"] = Path(tmpdir.name)
    rows = []
    for case in a.cases.split(","):
        R = a.replicates or (1 if case.endswith("x3") else 8)
        row = {"case": case}
        for tag, src in versions.items():
            print(f"[bench_fields] {case} x {R}: {tag}", file=sys.stderr, flush=True)
            tol = a.ref_tolerance if tag == "ref" else None
            row[tag] = summary(run_worker(src, case, R, a.warmup, a.steps, tol))
            row[tag]["field_tolerance"] = tol
        if "ref" in row:
            row["step_speedup"] = round(row["ref"]["step_seconds"] / row["this"]["step_seconds"], 3)
            row["fields_speedup"] = round(row["ref"]["fields_seconds"] / row["this"]["fields_seconds"], 3)
            row["device_bytes_ratio"] = round(row["this"]["device_bytes_per_voxel_step"]
                                              / row["ref"]["device_bytes_per_voxel_step"], 3)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("this", "ref")}), file=sys.stderr)
    record = dict(benchmark="bench_fields", device=device(), backend="numpy",
                  commit=git("rev-parse", "HEAD"), dirty=bool(git("status", "--porcelain", "--",
                                                                  "gpusim", "kernels")),
                  ref_commit=git("rev-parse", a.ref) if a.ref else None,
                  date_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  cases=rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)
    if tmpdir is not None:
        tmpdir.cleanup()


if __name__ == "__main__":
    main()

"""Everything a GPU machine should check, in one command (``make gpu-check``), under 8 minutes on
one H100/H200, with nothing fetched from the network; every result is JSON in one folder.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu-check

Stages, each in its own process with its own time limit (a stage that runs out is recorded as
timed out and the next one starts):

1. ``tests.json``: the GPU tests (``pytest -m gpu tests/test_gpu.py``) with
   ``GPUSIM_REQUIRE_GPU=1``, so a missing GPU or CuPy is a failure, not a skip;
2. ``selfcheck.json``: the backend's bitwise self-check on every bundled scenario (the cached
   check ``auto`` relies on covers a subset);
3. ``validate.log``: ``gpusim validate --backend cupy --quick`` (its tables);
4. ``bench_2d.json``, ``bench_3d.json``: ``benchmarks/bench_gpu.py``, short sizes first and
   512^3 last, each row with its own time limit (the JSON is rewritten after every row).
``summary.json`` lists each stage's exit status and wall time.  Exit status 0 only when every
stage passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SELFCHECK = r"""
import json, sys, time
from gpusim.backends import gpu_device
from gpusim.backends.cupy_backend import runtime
from gpusim.backends.selfcheck import verify
from gpusim.scenario import bundled
dev, driver, why = gpu_device()
if dev is None:
    sys.exit(why)
out = {"device": dev, "driver": driver, "steps": 40, "scenarios": {}}
ok = True
for name in sorted(bundled()):
    t0 = time.perf_counter()
    m = verify(runtime(), (name,), steps=40)
    out["scenarios"][name] = {"passed": m is None, "seconds": time.perf_counter() - t0,
                              "mismatch": None if m is None else m.__dict__}
    ok &= m is None
    print(name, "passed" if m is None else m, flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
sys.exit(0 if ok else 1)
"""


def stage(name: str, cmd: list[str], timeout: float, out: Path, env: dict) -> dict:
    shown = " ".join(c if "\n" not in c else "<script>" for c in cmd)
    print(f"== {name}: {shown} (limit {timeout:.0f} s)", flush=True)
    t0 = time.perf_counter()
    log = out / f"{name}.log"
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
            status = "passed" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            rc, status = None, f"timed out after {timeout:.0f} s"
    secs = time.perf_counter() - t0
    print(f"   {status} in {secs:.0f} s; log {log}", flush=True)
    return {"command": cmd, "exit": rc, "status": status, "seconds": secs, "log": log.name}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu-check")
    ap.add_argument("--quick", action="store_true", help="short limits (a dry run of the script)")
    a = ap.parse_args(argv)
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GPUSIM_REQUIRE_GPU="1", PYTHONPATH=str(ROOT),
               GPUSIM_CACHE_DIR=str(out / "cache"))
    py = sys.executable
    k = 0.2 if a.quick else 1.0
    stages = {
        "tests": stage("tests", [py, "-m", "pytest", "-q", "-m", "gpu", "tests/test_gpu.py",
                                 f"--junitxml={out / 'tests.xml'}"], 120 * k, out, env),
        "selfcheck": stage("selfcheck", [py, "-c", SELFCHECK, str(out / "selfcheck.json")], 75 * k, out, env),
        "validate": stage("validate", [py, "-m", "gpusim.cli", "validate", "--quick", "--backend", "cupy"],
                          100 * k, out, env),
        "bench_2d": stage("bench_2d", [py, "benchmarks/bench_gpu.py", "--backend", "cupy", "--steps", "50",
                                       "--time-limit", str(10 * k), "--json", str(out / "bench_2d.json"),
                                       "--scenario", "iv_baseline", "--size", "100", "--size", "400",
                                       "-r", "8"], 45 * k, out, env),
        "bench_3d": stage("bench_3d", [py, "benchmarks/bench_gpu.py", "--backend", "cupy", "--steps", "20",
                                       "--time-limit", str(10 * k), "--json", str(out / "bench_3d.json"),
                                       "--scenario", "large_3d", "--size", "75x75x75", "--size", "128x128x128",
                                       "--size", "256x256x256", "--size", "512x512x512", "-r", "1"],
                          120 * k, out, env),
    }
    summary = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stages": stages,
               "passed": all(s["exit"] == 0 for s in stages.values())}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {out / 'summary.json'}: {'all passed' if summary['passed'] else 'NOT all passed'}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

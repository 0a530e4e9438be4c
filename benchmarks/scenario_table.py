"""Every bundled scenario against its own untreated control: tumour ratio and infiltration depth.

For each bundled scenario (``large_3d`` only with ``--with-3d``; ``untreated`` is itself the
control) this runs, with the same seed and replicates (paired: the same initial tissue),

* the scenario as bundled, and
* its untreated control: the same scenario with no CAR-T dose (``delivery.dose_cells=0`` and an
  empty ``delivery.schedule``),

for ``--days`` days (14 by default), then records at the last output time the tumour cells of
therapy over control (ratio of means, and the per-replicate paired ratios) and the CAR-T
infiltration depth (mean over replicates of each replicate's mean T-cell depth from the tumour
boundary, inward positive, in um).  One JSON record with device, commit and date.

    python benchmarks/scenario_table.py [--replicates 2] [--days 14] [--seed 11]
                                        [--scenarios a,b] [--out FILE.json] [--workdir DIR]
                                        [--set KEY=VALUE ...]

``--workdir DIR`` keeps the result files there, and a control already there from the same seed,
replicates and days is reused instead of run again.  A control holds no CAR-T cell, so a change
of CAR-T or dose parameters leaves it as it is; after any other change use a fresh folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpusim.study.compare import ratio_to_untreated  # noqa: E402
from gpusim.backends import cpu_description  # noqa: E402
from gpusim.study.bench import git_commit  # noqa: E402
from gpusim.io.reader import open_results  # noqa: E402
from gpusim.scenario import bundled  # noqa: E402

CONTROL = ("--set", "delivery.dose_cells=0", "--set", "delivery.schedule=")


def run(name: str, out: Path, args, extra=()) -> None:
    cmd = [sys.executable, "-m", "gpusim.cli", "run", name, "-o", str(out), "--force", "-q",
           "-r", str(args.replicates), "--days", str(args.days), "--seed", str(args.seed),
           "--backend", "numpy", *(x for kv in args.set for x in ("--set", kv)), *extra]
    subprocess.run(cmd, check=True, cwd=ROOT)


def reusable(path: Path, args) -> bool:
    """A control file at ``path`` that a run with these arguments would write again."""
    if not path.exists():
        return False
    try:
        res = open_results(path)
    except Exception:  # noqa: BLE001 - an unreadable file is run again
        return False
    a = res.attrs
    return (res.status == "complete" and int(a["seed"]) == args.seed
            and int(a["replicates"]) == args.replicates
            and abs(float(res.time_days[-1]) - args.days) < 1e-6)


def depth(res) -> float:
    """Mean over replicates of the last recorded mean infiltration depth (NaN: no T cell)."""
    ts = res.timeseries.get("infiltration_depth_mean_um")
    if ts is None:
        return float("nan")
    last = np.asarray(ts[:, -1], dtype=np.float64)
    return float(np.nanmean(last)) if np.isfinite(last).any() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=2)
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--scenarios", default="")
    ap.add_argument("--with-3d", action="store_true")
    ap.add_argument("--out", default="")
    ap.add_argument("--workdir", default="", help="keep the files here and reuse controls")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a parameter override for every run (as gpusim run --set)")
    args = ap.parse_args()
    names = [s for s in args.scenarios.split(",") if s] or [
        s for s in sorted(bundled()) if s != "untreated" and (args.with_3d or s != "large_3d")]
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.workdir or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for name in names:
            therapy, control = Path(tmp, f"{name}.h5"), Path(tmp, f"{name}_control.h5")
            run(name, therapy, args)
            if not reusable(control, args):
                run(name, control, args, CONTROL)
            res, ctl = open_results(therapy), open_results(control)
            u = ratio_to_untreated(res, ctl)
            rows[name] = {"day": u.day, "ratio_of_means": u.ratio_of_means,
                          "paired_ratios": None if u.paired is None else [float(x) for x in u.paired],
                          "infiltration_depth_mean_um": depth(res)}
            print(f"{name:<18} day {u.day:5.1f}  ratio {u.ratio_of_means:6.3f}  "
                  f"depth {rows[name]['infiltration_depth_mean_um']:8.1f} um", flush=True)
    rec = {"benchmark": "scenario_table", "backend": "numpy", "device": cpu_description(),
           "commit": git_commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "replicates": args.replicates, "days": args.days, "seed": args.seed, "scenarios": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""One-at-a-time sensitivity of the TGF-β parameters (issue 11, item 2; docs/model.md section 9).

Each TGF-β parameter is set, alone, to a quarter and to four times its default (the exhaustion
gain to 0 and 4) with ``gpusim sweep`` (one sweep directory per parameter, all with the same seed
and replicates, so every point shares the initial tissue and random words with the baseline: paired
seeds), after one baseline run at the defaults.  Reported per point, at the last output time, the
replicate means of the live tumour cells, the tumour cells killed, the CAR-T cells in tissue, the
mean TGF-β1 over tumour cells (ng/mL) and the mean ECM density over tumour voxels, and the
elasticity of the tumour count, d ln(tumour) / d ln(parameter), between the two points.

    python benchmarks/tgfb_sensitivity.py [--scenario quickstart] [--replicates 4] [--days 3]
                                          [--seed 11] [--out benchmarks/results/tgfb_sensitivity.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpusim.study.bench import git_commit  # noqa: E402
from gpusim.io.reader import open_results  # noqa: E402
from gpusim.params import BY_KEY  # noqa: E402

#: the swept parameters and their multipliers of the default (or explicit values)
PARAMETERS = {
    "tgfb.secretion_tumour_pg_per_cell_per_day": (0.25, 4.0),
    "tgfb.secretion_fibroblast_pg_per_cell_per_day": (0.25, 4.0),
    "tgfb.hypoxic_secretion_multiplier": (0.25, 4.0),
    "tgfb.decay_per_min": (0.25, 4.0),
    "tgfb.diffusion_um2_per_min": (0.25, 4.0),
    "tgfb.active_fraction": (0.25, 4.0),
    "car_t.tgfb_half_ng_per_mL": (0.25, 4.0),
    "car_t.exhaustion_tgfb_gain": "0,4",
    "tgfb.caf_half_ng_per_mL": (0.25, 4.0),
    "tgfb.ecm_deposition_per_day": (0.25, 4.0),
}
METRICS = ("tumour_cells", "kills_tumour", "car_t_tissue", "mean_tgfb_tumour", "mean_ecm_tumour")


def values(key: str) -> list[str]:
    spec = PARAMETERS[key]
    if isinstance(spec, str):
        return spec.split(",")
    return [f"{BY_KEY[key].default * m:.6g}" for m in spec]


def summary(path: Path) -> dict:
    ts = open_results(path).timeseries
    return {m: float(np.mean(np.asarray(ts[m])[:, -1], dtype=np.float64)) for m in METRICS}


def common(args) -> list[str]:
    return ["-r", str(args.replicates), "--days", str(args.days), "--seed", str(args.seed), "-q",
            "--set", "run.backend=numpy", "--set", "run.snapshot_interval_hours=0",
            "--set", "run.checkpoint_interval_hours=0"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="quickstart")
    ap.add_argument("--replicates", type=int, default=4)
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tgfb_sensitivity.json"))
    args = ap.parse_args()
    cli = [sys.executable, "-m", "gpusim.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.h5"
        subprocess.run([*cli, "run", args.scenario, "-o", str(base), "--force", *common(args)],
                       check=True, cwd=ROOT)
        ref = summary(base)
        rows.append({"parameter": "(defaults)", "value": "", **ref})
        for key in PARAMETERS:
            d = Path(tmp) / key.replace(".", "_")
            vals = values(key)
            subprocess.run([*cli, "sweep", args.scenario, "-g", f"{key}={','.join(vals)}", "-o", str(d),
                            *common(args)], check=True, cwd=ROOT)
            index = json.loads((d / "index.json").read_text())
            pts = [summary(d / p["file"]) for p in index["points"]]
            x = [float(v) for v in vals]
            el = (math.log(pts[1]["tumour_cells"] / pts[0]["tumour_cells"]) / math.log(x[1] / x[0])
                  if min(x) > 0 and min(p["tumour_cells"] for p in pts) > 0 else float("nan"))
            for v, p in zip(vals, pts):
                rows.append({"parameter": key, "value": v, **p, "elasticity_tumour": el})
            print(f"{key}: {vals} -> tumour {[round(p['tumour_cells']) for p in pts]} "
                  f"(defaults {round(ref['tumour_cells'])}), elasticity {el:.2f}", flush=True)
    record = {"study": "tgfb_sensitivity", "scenario": args.scenario, "replicates": args.replicates,
              "days": args.days, "seed": args.seed, "commit": git_commit(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows": rows}
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(markdown(rows))


def markdown(rows) -> str:
    out = ["| parameter | value | tumour cells | kills | CAR-T in tissue | TGF-β1 tumour (ng/mL) | "
           "ECM tumour | elasticity (tumour) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        el = r.get("elasticity_tumour", float("nan"))
        out.append(f"| {r['parameter']} | {r['value']} | {r['tumour_cells']:.0f} | {r['kills_tumour']:.0f} | "
                   f"{r['car_t_tissue']:.0f} | {r['mean_tgfb_tumour']:.2f} | {r['mean_ecm_tumour']:.3f} | "
                   f"{'' if math.isnan(el) else f'{el:.2f}'} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()

"""Toxicity figures of docs/model.md: the iv_baseline dose sweep (CRS grade per replicate) and
regional_gbm's ICANS by route, dose and tumour burden, at a reduced size (36 x 36 voxels, 12-min
steps, 6 replicates with paired seeds).  Run from the repository root:

    .venv/bin/python docs/figures/toxicity/make.py

Writes dose_sweep.png, icans.png and numbers.json next to this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gpusim.engine import Simulation, steps_for
from gpusim.scenario import load_scenario

HERE = Path(__file__).resolve().parent
R = 6
IV = {"domain.x_voxels": 36, "domain.y_voxels": 36, "tumour.radius_um": 216.0, "run.days": 4.0,
      "run.dt_min": 12.0, "run.replicates": R, "run.checkpoint_interval_hours": 0.0}
GBM = {"domain.x_voxels": 36, "domain.y_voxels": 36, "tumour.radius_um": 180.0, "run.days": 8.0,
       "run.dt_min": 12.0, "run.replicates": R, "run.checkpoint_interval_hours": 0.0}
DOSES = [3e6, 1e7, 4.6e7, 2.2e8, 1e9]


def endpoints(name, over):
    sc = load_scenario(name, over)
    sim = Simulation(sc)
    il6, t = [], []
    for s in range(steps_for(sc["run.days"], sc["run.dt_min"])):
        sim.step()
        il6.append(sim.metrics()["il6"].mean())
        t.append(sim.time_days)
    ep = sim.endpoints()
    return {k: np.asarray(v).tolist() for k, v in ep.items()}, (t, il6)


def main():
    out = {"sweep": {}, "gbm": {}}
    curves = {}
    for d in DOSES:
        ep, curve = endpoints("iv_baseline", dict(IV, **{"delivery.dose_cells": d}))
        out["sweep"][f"{d:.2g}"] = {k: ep[k] for k in ("crs_grade", "icans_grade", "peak_il6", "crs_onset_days")}
        curves[d] = curve
        print("dose", d, ep["crs_grade"], ep["icans_grade"], flush=True)
    arms = {"ICV 1e7": {"delivery.schedule": "intraventricular 0 1e7"},
            "ICV 1e8": {"delivery.schedule": "intraventricular 0 1e8"},
            "ICV 1e7, 3x burden": {"delivery.schedule": "intraventricular 0 1e7", "tumour.radius_um": 300.0,
                                   "delivery.tumour_volume_cm3": 3.0},
            "IV 1e7": {"delivery.schedule": "iv 0 1e7"},
            "IV 1e8": {"delivery.schedule": "iv 0 1e8"},
            "IV 7e7 + ICV 3e7 d4": {"delivery.schedule": "iv 0 7e7; intraventricular 4 3e7"}}
    for label, o in arms.items():
        ep, _ = endpoints("regional_gbm", dict(GBM, **o))
        out["gbm"][label] = {k: ep[k] for k in ("crs_grade", "icans_grade", "peak_cns_cytokine", "peak_csf_car_t")}
        print(label, ep["crs_grade"], ep["icans_grade"], flush=True)
    (HERE / "numbers.json").write_text(json.dumps(out, indent=1) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        print("matplotlib missing: figures skipped")
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for i, d in enumerate(DOSES):
        g = np.asarray(out["sweep"][f"{d:.2g}"]["crs_grade"])
        ax[0].scatter(np.full(g.size, i) + np.linspace(-0.15, 0.15, g.size), g, s=20)
        ax[1].semilogy(*curves[d], label=f"{d:.2g} cells")
    ax[0].set_xticks(range(len(DOSES)), [f"{d:.2g}" for d in DOSES])
    ax[0].set_xlabel("IV dose (cells)")
    ax[0].set_ylabel("CRS grade (per replicate)")
    ax[0].set_title("iv_baseline dose sweep")
    ax[1].set_xlabel("day")
    ax[1].set_ylabel("plasma IL-6 (pg/mL, mean)")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "dose_sweep.png", dpi=110)
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = list(arms)
    for j, key in enumerate(("crs_grade", "icans_grade")):
        m = [np.mean(out["gbm"][lb][key]) for lb in labels]
        ax.bar(np.arange(len(labels)) + (j - 0.5) * 0.35, m, 0.35, label=key.replace("_", " "))
    ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ax.set_ylabel("mean grade")
    ax.set_title("regional_gbm: CRS and ICANS by route, dose and burden")
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "icans.png", dpi=110)


if __name__ == "__main__":
    main()

"""Figure docs/figures/untreated_growth.png: the bundled `untreated` scenario's tumour (equivalent
radius sqrt(N / pi) x voxel, mean and range over the replicates) against the EMT6/Ro spheroid
radii of Freyer & Sutherland 1986 and their Gompertz fit (docs/model.md, "Growth calibration").

    gpusim run untreated -o untreated.h5
    python docs/figures/untreated_growth.py untreated.h5 docs/figures/untreated_growth.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gpusim.io.reader import open_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_growth import T0_HOURS, gompertz_radius_um, spheroid_data  # noqa: E402


def main(h5: str, png: str) -> None:
    res = open_results(h5)
    t = np.asarray(res.time_days)
    n = np.asarray(res.timeseries["tumour_cells"], dtype=np.float64)
    r = 20.0 * np.sqrt(n / np.pi)
    th, rd = spheroid_data()
    fig, ax = plt.subplots(figsize=(6, 4))
    tt = np.linspace(0, t.max(), 200)
    ax.plot(tt, gompertz_radius_um(T0_HOURS + 24 * tt), "k--", lw=1, label="Gompertz fit of the data")
    m = th >= T0_HOURS - 1
    ax.plot((th[m] - T0_HOURS) / 24, rd[m], "ko", label="EMT6/Ro spheroids (Freyer & Sutherland 1986)")
    ax.plot(t, r.mean(axis=0), "C0-", lw=2, label=f"untreated, mean of {r.shape[0]} replicates")
    ax.fill_between(t, r.min(axis=0), r.max(axis=0), color="C0", alpha=0.25, label="replicate range")
    ax.fill_between(tt, 0.85 * gompertz_radius_um(T0_HOURS + 24 * tt),
                    1.15 * gompertz_radius_um(T0_HOURS + 24 * tt), color="0.5", alpha=0.15,
                    label="stated bound ±15 %")
    ax.set_xlabel("day (0 = 177 h of spheroid culture)")
    ax.set_ylabel("radius (µm)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Untreated tumour vs spheroid growth data")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Sweeps: a 3 x 3 grid runs into a directory with an index, is interrupted, continues where it
stopped (finished points untouched, the partial one resumed), and `compare` reads it."""

from __future__ import annotations

import csv
import json

import h5py
import pytest
from click.testing import CliRunner

from gpusim.cli import main
from gpusim.study.sweep import parse_grid, plan_sweep, sweep
from gpusim.errors import ScenarioError
from gpusim.io import open_results
from gpusim.study.runner import run
from h5diff import different_datasets

BASE = ["domain.x_voxels=16", "domain.y_voxels=16", "tumour.radius_um=80",
        "run.output_interval_hours=2", "run.snapshot_interval_hours=0",
        "run.checkpoint_interval_hours=1"]
GRID = ["run.seed=1,2,3", "delivery.dose_cells=1e7,1e8,1e9"]
OPTS = ["-r", "2", "--days", "0.25"] + [x for s in BASE for x in ("--set", s)]


def test_sweep_interrupt_continue_compare(tmp_path):
    out = tmp_path / "sw"
    grid = parse_grid(GRID)
    base, points = plan_sweep("quickstart", grid, replicates=2, days=0.25, overrides=BASE)
    assert [p.params for p in points][:4] == [
        {"run.seed": 1, "delivery.dose_cells": 1e7}, {"run.seed": 1, "delivery.dose_cells": 1e8},
        {"run.seed": 1, "delivery.dose_cells": 1e9}, {"run.seed": 2, "delivery.dose_cells": 1e7}]

    def stop(pid, done, total):  # interrupt point p004 at step 40 (checkpoint at step 30)
        if pid == "p004" and done >= 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(base, out, grid, progress=stop)
    status = {p.id: open_results(out / p.file).status for p in points if (out / p.file).exists()}
    assert status == {"p000": "complete", "p001": "complete", "p002": "complete",
                      "p003": "complete", "p004": "interrupted"}
    assert open_results(out / "p004.h5").checkpoint()[0] == 30
    kept = {p: (out / f"{p}.h5").read_bytes() for p in ("p000", "p003")}

    r = CliRunner().invoke(main, ["sweep", "quickstart", "-o", str(out)]
                           + [x for g in GRID for x in ("--grid", g)] + OPTS)
    assert r.exit_code == 0, r.output
    assert "continuing" in r.output and "p000" in r.output and "skipped" in r.output
    assert "p004" in r.output and "resumed" in r.output
    for p in points:
        assert open_results(out / p.file).status == "complete"
    for p, data in kept.items():
        assert (out / f"{p}.h5").read_bytes() == data  # finished points untouched
    # the resumed point equals a straight run of that point
    run(points[4].scenario, tmp_path / "p004_straight.h5")
    assert different_datasets(tmp_path / "p004_straight.h5", out / "p004.h5") == []
    with h5py.File(out / "p007.h5", "r") as f:
        assert f.attrs["sweep_point"] == "p007"
        assert json.loads(f.attrs["sweep_params"]) == {"run.seed": 3, "delivery.dose_cells": 1e8}
    index = json.loads((out / "index.json").read_text())
    assert index["schema"] == "gpusim-sweep/1" and len(index["points"]) == 9

    csv_path = tmp_path / "cmp.csv"
    r = CliRunner().invoke(main, ["compare", str(out), "--csv", str(csv_path)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(csv_path.open()))
    arms = {x["arm"] for x in rows} - {"all"}
    assert len(arms) == 9 and any(a.startswith("p008 run.seed=3") for a in arms)
    cleared = [x for x in rows if x["endpoint"] == "cleared"]
    for x in cleared:
        assert x["n"] == "2" and x["method"] == "Wilson"
    r = CliRunner().invoke(main, ["compare", f"{out}:p002", f"{out}:p005"])
    assert r.exit_code == 0 and "p002" in r.output and "p005" in r.output
    r = CliRunner().invoke(main, ["compare", f"{out}:p999"])
    assert r.exit_code == 2 and "no point 'p999'" in r.output

    # another grid in the same directory: refused, nothing changed
    before = sorted(p.name for p in out.iterdir())
    r = CliRunner().invoke(main, ["sweep", "quickstart", "-o", str(out), "--grid", "run.seed=5,6"] + OPTS)
    assert r.exit_code == 2 and "another sweep" in r.output
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("grid,message", [
    (["run.sed=1,2"], "unknown parameter 'run.sed' (did you mean 'run.seed'?)"),
    (["run.seed=1,,2"], "empty value"),
    (["run.seed="], "empty value"),
    (["run.seed"], "expected section.key=v1,v2"),
    (["run.seed=1,1"], "repeated value"),
    (["run.seed=1,2", "run.seed=3"], "given twice"),
    (["car_t.targets='A,B"], "unbalanced"),
    (["run.seed=1,x"], "expected an integer"),
    (["run.days=1,-2"], "run.days"),
])
def test_bad_grid_is_a_clear_error_and_writes_nothing(tmp_path, grid, message):
    out = tmp_path / "sw"
    r = CliRunner().invoke(main, ["sweep", "quickstart", "-o", str(out)]
                           + [x for g in grid for x in ("--grid", g)] + OPTS)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert r.output.count("\n") == 1  # one line
    assert not out.exists()


def test_parse_grid_keeps_quoted_and_list_values():
    g = parse_grid(["car_t.targets='A|B',A", "delivery.dose_days=[0.0,7.0],[0.0]"])
    assert g == {"car_t.targets": ["'A|B'", "A"], "delivery.dose_days": ["[0.0,7.0]", "[0.0]"]}
    with pytest.raises(ScenarioError, match="at least one"):
        parse_grid([])

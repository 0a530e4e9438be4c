"""gpusim bench: the NumPy record and the CLI (the GPU figures come from make gpu-check)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner


def test_bench_numpy_record_and_cli(tmp_path):
    from gpusim.study.bench import run_bench
    from gpusim.cli import main

    rec = run_bench(("quickstart",), (24,), ("numpy",), replicates=2, steps=3, warmup=1)
    (row,) = rec["results"]
    assert row["shape"] == [1, 24, 24] and row["steps"] == 3 and row["backend"] == "numpy"
    assert row["voxel_steps_per_s"] == pytest.approx(row["steps_per_s"] * 24 * 24 * 2)
    # the phases are timed inside the step loop, so together they cannot exceed it
    assert set(row["phase_s"]) >= {"fields", "tumour", "car_t", "systemic"}
    assert sum(row["phase_s"].values()) <= row["step_s"]
    assert rec["commit"] and rec["date_utc"].endswith("Z")
    out = tmp_path / "b.json"
    args = ["bench", "quickstart", "--size", "20", "-r", "1", "--steps", "1", "--warmup", "0",
            "--backend", "numpy", "--json", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "steps/s" in res.output and json.loads(out.read_text())["results"][0]["voxels"] == 400
    before = out.read_text()
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and out.read_text() == before, "overwrote without --force"

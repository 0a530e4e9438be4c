"""The command line: happy paths, bad input (exit 2, one line, nothing written), killed runs."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from gpusim import open_results
from gpusim.cli import main

QUICK = ["--set", "domain.x_voxels=30", "--set", "domain.y_voxels=30", "--set", "tumour.radius_um=200",
         "--days", "0.25", "-r", "2"]


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_version_and_help():
    r = invoke("--version")
    assert r.exit_code == 0 and "gpusim" in r.output and "0." in r.output
    r = invoke("--help")
    assert r.exit_code == 0 and "gpusim run quickstart" in r.output
    for cmd in ("info", "scenarios", "show", "run", "summary", "params"):
        assert invoke(cmd, "--help").exit_code == 0


def test_scenarios_and_info():
    r = invoke("scenarios")
    assert r.exit_code == 0 and "quickstart" in r.output and "iv_baseline" in r.output
    r = invoke("info")
    assert r.exit_code == 0 and "backend numpy: available" in r.output and "backend cupy:" in r.output


def test_show_prints_toml_that_runs_as_is(tmp_path):
    r = invoke("show", "quickstart", "--set", "run.days=0.25", "--set", "domain.x_voxels=30",
               "--set", "domain.y_voxels=30", "--set", "tumour.radius_um=200", "--set", "run.replicates=2")
    assert r.exit_code == 0
    f = tmp_path / "s.toml"
    f.write_text(r.output)
    out = tmp_path / "o.h5"
    r = invoke("run", str(f), "-o", str(out), "-q")
    assert r.exit_code == 0, r.output
    res = open_results(out)
    assert res.status == "complete" and res.replicates == 2
    assert res.time_days[-1] == pytest.approx(0.25)


def test_run_writes_and_summarises(tmp_path):
    out = tmp_path / "q.h5"
    r = invoke("run", "quickstart", "-o", str(out), *QUICK)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "cleared" in r.output
    r = invoke("summary", str(out))
    assert r.exit_code == 0 and "status complete" in r.output


@pytest.mark.parametrize("args,fragment", [
    (["--set", "tumour.radius=3"], "did you mean 'tumour.radius_um'"),
    (["--set", "run.days=soon"], "expected a number"),
    (["--set", "stroma.permeability=1.5"], "out of range"),
    (["--seed", "-1"], "out of range"),
])
def test_bad_scenario_input_exits_2_with_one_line_and_no_file(tmp_path, args, fragment):
    out = tmp_path / "o.h5"
    r = invoke("run", "quickstart", "-o", str(out), *args)
    assert r.exit_code == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("gpusim: error:") and fragment in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_scenario_file(tmp_path):
    r = invoke("run", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "o.h5"))
    assert r.exit_code == 2 and "does not exist" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unusable_output_paths(tmp_path):
    r = invoke("run", "quickstart", "-o", str(tmp_path / "no" / "dir" / "o.h5"), *QUICK)
    assert r.exit_code == 2 and "does not exist" in r.stderr
    plain = tmp_path / "plain"
    plain.write_text("x")
    r = invoke("run", "quickstart", "-o", str(plain / "o.h5"), *QUICK)
    assert r.exit_code == 2 and "gpusim: error:" in r.stderr


def test_existing_output_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "o.h5"
    out.write_bytes(b"precious")
    before = out.stat().st_mtime_ns
    r = invoke("run", "quickstart", "-o", str(out), *QUICK)
    assert r.exit_code == 2 and "exists; pass --force" in r.stderr
    assert out.read_bytes() == b"precious" and out.stat().st_mtime_ns == before
    r = invoke("run", "quickstart", "-o", str(out), "--force", "-q", *QUICK)
    assert r.exit_code == 0
    assert open_results(out).status == "complete"


def test_summary_of_a_non_result_file(tmp_path):
    f = tmp_path / "x.h5"
    f.write_text("not hdf5")
    r = invoke("summary", str(f))
    assert r.exit_code == 2 and "gpusim: error:" in r.stderr


def test_a_killed_run_keeps_every_flushed_interval(tmp_path):
    out = tmp_path / "k.h5"
    cmd = [sys.executable, "-m", "gpusim.cli", "run", "quickstart", "-o", str(out), "-q",
           "--days", "30", "--set", "run.output_interval_hours=0.6", "-r", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        t_seen = 0
        while time.time() < deadline:
            time.sleep(0.3)
            if out.exists():
                try:
                    t_seen = open_results(out).time_days.size
                except Exception:
                    continue
                if t_seen >= 4:
                    break
        assert t_seen >= 4, "the run did not get going"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    res = open_results(out)
    assert res.status == "running"  # it never got to finish
    T = res.time_days.size
    assert T >= t_seen
    assert np.all(np.diff(res.time_days) > 0)
    assert res.time_days[1] == pytest.approx(0.025)
    for k, v in res.timeseries.items():
        assert v.shape == (2, T), k
        if k.startswith(("infiltration_depth_", "car_t_inside_")):  # NaN: no CAR-T cell yet
            assert np.isfinite(v[res.timeseries["car_t_tissue"] > 0]).all(), k
            continue
        assert np.isfinite(v).all(), k

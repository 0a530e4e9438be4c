"""Resume: a run killed (SIGKILL) or interrupted after a checkpoint, resumed with `gpusim resume`,
holds exactly the datasets of a straight run (bitwise; only timing attributes differ)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gpusim.cli import main
from gpusim.io import ResultWriter, open_results
from gpusim.io.resume import reopen
from gpusim.study.runner import resume, run
from gpusim.scenario import load_scenario
from h5diff import different_attrs, different_datasets

REPO = Path(__file__).resolve().parents[1]
SMALL = ["domain.x_voxels=24", "domain.y_voxels=24", "tumour.radius_um=120",
         "run.output_interval_hours=2", "run.snapshot_interval_hours=3",
         "run.checkpoint_interval_hours=1", "run.replicates=2"]


def small(**kw):
    sc = load_scenario("quickstart", SMALL)
    return sc.replace(**kw) if kw else sc


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _checkpoint_step(path: Path) -> int:
    try:
        with h5py.File(path, "r", swmr=True) as f:
            g = f["checkpoint"]
            return int(g["step"][()]) if int(g["valid"][()]) == 1 else -1
    except (OSError, KeyError):
        return -1


def test_sigkill_then_resume_equals_straight(tmp_path):
    days = 1.0
    straight = tmp_path / "straight.h5"
    run(small(run__days=days), straight)
    killed = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "gpusim.cli", "run", "quickstart", "-o", str(killed), "-q",
           "--days", str(days)] + [x for s in SMALL for x in ("--set", s)]
    proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        # kill once the second checkpoint (step 20) is on disk: resume must then drop the
        # intervals written after it
        while _checkpoint_step(killed) < 20:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.02)
        live = CliRunner().invoke(main, ["summary", str(killed)])  # live reading while written
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert live.exit_code == 0, live.output
    assert "status running" in live.output and "endpoints: not yet written" in live.output
    res = open_results(killed)
    assert res.status == "running"
    assert res.time_days[-1] < days
    r = CliRunner().invoke(main, ["resume", str(killed)])
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "status complete" in r.output
    assert open_results(killed).status == "complete"
    assert different_datasets(straight, killed) == []
    assert different_attrs(straight, killed) == []
    with h5py.File(killed, "r") as f:
        assert f.attrs["resumes"] == 1


def test_interrupt_after_checkpoint_drops_later_rows_and_resumes(tmp_path):
    # outputs every 20 steps, checkpoints every 30: stopping in the progress call of step 100
    # leaves rows up to step 100 and the checkpoint of step 90
    sc = small(run__days=1.0, run__checkpoint_interval_hours=3.0)
    straight, cut = tmp_path / "a.h5", tmp_path / "b.h5"
    run(sc, straight)

    def stop(done, total):
        if done >= 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(sc, cut, progress=stop)
    before = open_results(cut)
    assert before.status == "interrupted"
    step, t_ck, _ = before.checkpoint()
    assert step == 90 and before.time_days[-1] > t_ck
    res = resume(cut)
    assert res.status == "complete"
    assert different_datasets(straight, cut) == []
    assert different_attrs(straight, cut) == []


def test_resume_errors_leave_the_file_untouched(tmp_path):
    done = tmp_path / "done.h5"
    run(small(run__days=0.1), done)
    before = done.read_bytes()
    r = CliRunner().invoke(main, ["resume", str(done)])
    assert r.exit_code == 2 and "already complete" in r.output
    assert done.read_bytes() == before

    # no checkpoint yet: interrupted before the first one
    nock = tmp_path / "nock.h5"

    def stop(done_steps, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(small(run__days=1.0, run__checkpoint_interval_hours=0.0), nock, progress=stop)
    before = nock.read_bytes()
    r = CliRunner().invoke(main, ["resume", str(nock)])
    assert r.exit_code == 2 and "no valid checkpoint" in r.output
    assert nock.read_bytes() == before

    # a file whose writer still runs on this host is not replaced under it
    live = tmp_path / "live.h5"
    with pytest.raises(KeyboardInterrupt):
        run(small(run__days=1.0, run__checkpoint_interval_hours=0.5), live,
            progress=lambda d, n: (_ for _ in ()).throw(KeyboardInterrupt) if d >= 20 else None)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with h5py.File(live, "r+") as f:
            f.attrs["status"] = "running"
            f.attrs["writer_pid"] = sleeper.pid
        before = live.read_bytes()
        r = CliRunner().invoke(main, ["resume", str(live)])
        assert r.exit_code == 2 and f"still being written by process {sleeper.pid}" in r.output
        assert live.read_bytes() == before
    finally:
        sleeper.kill()
        sleeper.wait()
    assert resume(live).status == "complete"  # once the writer is gone it resumes
    live.unlink()

    # a checkpoint of another engine version (other state arrays): refused, file untouched
    old = tmp_path / "old.h5"
    with pytest.raises(KeyboardInterrupt):
        run(small(run__days=1.0, run__checkpoint_interval_hours=0.5), old,
            progress=lambda d, n: (_ for _ in ()).throw(KeyboardInterrupt) if d >= 20 else None)
    with h5py.File(old, "r+") as f:
        f.move("checkpoint/state/kind", "checkpoint/state/kind_v0")
    before = old.read_bytes()
    r = CliRunner().invoke(main, ["resume", str(old)])
    assert r.exit_code == 2 and "missing ['kind'], unknown ['kind_v0']" in r.output
    assert old.read_bytes() == before
    old.unlink()

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "gpusim/2"
    r = CliRunner().invoke(main, ["resume", str(other)])
    assert r.exit_code == 2 and "gpusim/2" in r.output
    r = CliRunner().invoke(main, ["resume", str(tmp_path / "missing.h5")])
    assert r.exit_code == 2 and "no such file" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.h5", "nock.h5", "other.h5"]


def test_writer_resume_keeps_rows_up_to_checkpoint(tmp_path):
    path = tmp_path / "w.h5"
    w = ResultWriter(path, replicates=2, attrs={"seed": 3}, scenario_toml="x",
                     metrics={"m": ("cells", "d")}, endpoints={"e": ("f8", "", "d")},
                     snapshot_fields={"s": ("u1", "", "d")}, snapshot_shape=(1, 1, 2, 2),
                     checkpoint_spec={"a": ((2, 3), "i4")})
    with pytest.raises(KeyboardInterrupt), w:
        for i in range(6):
            w.append(i * 0.5, {"m": np.array([i, -i], float)})
            w.snapshot(i * 0.5, {"s": np.full((1, 1, 2, 2), i, np.uint8)})
            if i == 3:
                w.checkpoint(30, 1.5, {"a": np.arange(6).reshape(2, 3)})
        raise KeyboardInterrupt
    w2 = reopen(path)
    assert w2.resumed_from == (30, 1.5)
    w2.append(2.0, {"m": np.array([9, 9], float)})
    w2.finish({"e": np.array([1.0, 2.0])})
    res = open_results(path)
    np.testing.assert_array_equal(res.time_days, [0, 0.5, 1, 1.5, 2.0])
    np.testing.assert_array_equal(res.timeseries["m"][0], [0, 1, 2, 3, 9])
    np.testing.assert_array_equal(res.snapshot_times, [0, 0.5, 1, 1.5])
    assert res.attrs["seed"] == 3 and res.units["/timeseries/m"] == "cells"
    step, t, st = res.checkpoint()
    assert (step, t) == (30, 1.5) and st["a"].dtype == np.int32


def test_kill_during_a_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch):
    # a kill in the middle of writing the checkpoint of step 30 leaves /checkpoint invalid and
    # half overwritten; /checkpoint/previous still holds the checkpoint of step 10 (it is
    # mirrored at the next output interval: step 20 mirrored 10, the one of step 20 was not
    # mirrored yet), and resuming from it gives the straight run's datasets
    import gpusim.study.runner as runner_mod

    sc = small(run__days=0.5)
    straight, torn = tmp_path / "a.h5", tmp_path / "b.h5"
    run(sc, straight)
    real = runner_mod._Writer.checkpoint

    def tearing_checkpoint(self, sim):
        if sim.state.step < 30:
            return real(self, sim)
        f = self.w._file
        f["checkpoint/valid"][()] = np.int8(0)
        f.flush()
        f["checkpoint/state/kind"][...] = 99  # partly overwritten state
        f.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_mod._Writer, "checkpoint", tearing_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run(sc, torn)
    monkeypatch.undo()
    with h5py.File(torn, "r") as f:
        assert f["checkpoint/valid"][()] == 0 and f["checkpoint/previous/valid"][()] == 1
    assert open_results(torn).checkpoint()[0] == 10
    assert resume(torn).status == "complete"
    assert different_datasets(straight, torn) == []

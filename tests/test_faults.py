"""Faults and damaged files (issue 13): a full disk, two writers on one path, truncated result
files, a sweep index pointing outside its directory, a resume that cannot run, compare --csv.

Each case: exit status 2, one line on stderr naming the file, no traceback, nothing lost that
was flushed, no file clobbered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import gpusim.io.writer as writer_mod
from gpusim.cli import main
from gpusim.errors import OutputError
from gpusim.io import ResultWriter, open_results
from gpusim.study.runner import resume, run
from gpusim.scenario import load_scenario
from h5diff import different_datasets

REPO = Path(__file__).resolve().parents[1]
SMALL = ["domain.x_voxels=24", "domain.y_voxels=24", "tumour.radius_um=120",
         "run.output_interval_hours=2", "run.snapshot_interval_hours=3",
         "run.checkpoint_interval_hours=1", "run.replicates=2"]
SETS = [x for s in SMALL for x in ("--set", s)]


def small(**kw):
    sc = load_scenario("quickstart", SMALL)
    return sc.replace(**kw) if kw else sc


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(r, *fragments):
    """Exit 2, exactly one line on stderr, starting 'gpusim: error:', containing fragments."""
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("gpusim: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith((".partial", ".lock")))


# ---- 1. write errors: full disk -----------------------------------------------------------
def _FailingFlush(n):
    """A Dataset.flush whose n-th call (0-based) raises ENOSPC, as a full disk does."""
    real, calls = h5py.Dataset.flush, [0]

    def flush(ds):
        calls[0] += 1
        if calls[0] - 1 == n:
            flush.failed = True
            raise OSError(28, "No space left on device")
        return real(ds)

    flush.failed = False
    return flush


def test_injected_write_error_fails_cleanly_and_resumes(tmp_path, monkeypatch):
    sc = small(run__days=1.0)
    straight = tmp_path / "straight.h5"
    run(sc, straight)
    out = tmp_path / "q.h5"
    # in the middle of the run, after several intervals and checkpoints
    monkeypatch.setattr(h5py.Dataset, "flush", _FailingFlush(800))
    r = invoke("run", "quickstart", "-o", out, "--days", "1", *SETS)
    monkeypatch.undo()
    line = one_error_line(r, f"cannot write to '{out}'", "No space left on device", "gpusim resume")
    assert "status failed" in line
    res = open_results(out)  # readable, with every flushed interval
    assert res.status == "failed" and "No space left" in res.attrs["error"]
    T = res.time_days.size
    assert 2 < T < open_results(straight).time_days.size
    for k, v in res.timeseries.items():
        np.testing.assert_array_equal(v, open_results(straight).timeseries[k][:, :T], err_msg=k)
    with h5py.File(out, "r") as f:  # a plain (non-SWMR) open works too: flags are clear
        assert f.attrs["status"] == "failed"
    assert _leftovers(tmp_path) == []
    r = invoke("resume", out)
    assert r.exit_code == 0, r.output
    assert different_datasets(straight, out) == []


def test_write_error_with_no_room_to_record_it_still_leaves_a_readable_file(tmp_path, monkeypatch):
    # the error arrives in the middle of a write (HDF5 state dirty) and there is no room to
    # record the status: the file is left as of its last flush, readable and resumable
    sc = small(run__days=1.0)
    straight, out = tmp_path / "straight.h5", tmp_path / "q.h5"
    run(sc, straight)
    real_statvfs, failing = os.statvfs, _FailingFlush(700)

    def statvfs(p):  # room until the error, none after it
        st = real_statvfs(p)
        free = 0 if failing.failed else st.f_bavail
        return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, st.f_bfree, free, *tuple(st)[5:]))

    monkeypatch.setattr(writer_mod.os, "statvfs", statvfs)
    monkeypatch.setattr(h5py.Dataset, "flush", failing)
    with pytest.raises(OutputError, match="status not recorded"):
        run(sc, out)
    monkeypatch.undo()
    res = open_results(out)
    assert res.status == "running" and res.status_now == "interrupted"
    assert res.time_days.size > 2
    r = invoke("summary", out)
    assert r.exit_code == 0 and "status interrupted" in r.output
    assert resume(out).status == "complete"
    assert different_datasets(straight, out) == []


def test_no_empty_temporary_file_when_creation_fails(tmp_path, monkeypatch):
    real = h5py.File

    def failing_file(name, mode="r", *a, **kw):
        if mode == "x":
            Path(name).touch()  # what HDF5 leaves when the disk is full at creation
            raise OSError(28, "No space left on device")
        return real(name, mode, *a, **kw)

    monkeypatch.setattr(writer_mod.h5py, "File", failing_file)
    r = invoke("run", "quickstart", "-o", tmp_path / "q.h5", "--days", "0.1", *SETS)
    one_error_line(r, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip() or r.returncode}")


@pytest.fixture
def small_disk(tmp_path, request):
    d = tmp_path / "small"
    _mount_tmpfs(d, getattr(request, "param", "2m"))
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True, timeout=20)


DISK = ["domain.x_voxels=80", "domain.y_voxels=80", "tumour.radius_um=200",
        "run.output_interval_hours=1", "run.snapshot_interval_hours=0.5",
        "run.checkpoint_interval_hours=1", "run.replicates=2", "run.snapshot_replicates=2",
        "run.days=1",
        # one CAR-T slot per voxel, as when the disk sizes below were chosen: with the default 4
        # (crowding) the checkpoints are larger and the disk fills before the first one
        "car_t.max_per_voxel=1"]


@pytest.mark.parametrize("small_disk,margin", [("4m", getattr(writer_mod, "_SPACE_MARGIN", 1 << 20)), ("3m", -(10**15))],
                         ids=["precheck", "hdf5-enospc"], indirect=["small_disk"])
def test_real_full_disk_on_a_small_tmpfs(small_disk, tmp_path, monkeypatch, margin):
    # the default margin: the writer sees the disk is nearly full before a write, stops and
    # records status failed; a huge negative margin turns that check off, so HDF5 itself
    # meets ENOSPC in the middle of a write (the file is then left as of its last flush)
    sc = load_scenario("quickstart", DISK)
    straight = tmp_path / "straight.h5"
    run(sc, straight)  # about 5.6 MB
    monkeypatch.setattr(writer_mod, "_SPACE_MARGIN", margin)
    out = small_disk / "q.h5"
    r = invoke("run", "quickstart", "-o", out, *[x for s in DISK for x in ("--set", s)])
    line = one_error_line(r, f"cannot write to '{out}'", "No space left on device")
    res = open_results(out)
    assert res.time_days.size >= 2
    if margin > 0:
        assert res.status == "failed" and "status failed" in line
    else:
        assert res.status_now in ("failed", "interrupted")
    with h5py.File(out, "r") as f:  # a plain open works: consistency flags are clear
        assert f.attrs["schema"] == "gpusim/1"
    assert res.checkpoint() is not None
    assert _leftovers(small_disk) == []
    before = out.read_bytes()  # a resume on the still-full disk refuses, file untouched
    one_error_line(invoke("resume", out), "No space left on device")
    assert out.read_bytes() == before and _leftovers(small_disk) == []
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True, timeout=20)
    r = invoke("resume", out)
    assert r.exit_code == 0, r.output
    assert different_datasets(straight, out) == []


def test_full_tmpfs_at_creation_leaves_no_file(small_disk):
    with open(small_disk / "filler", "wb") as fh:  # fill the disk
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    r = invoke("run", "quickstart", "-o", small_disk / "q.h5", "--days", "0.1", *SETS)
    one_error_line(r, "No space left on device")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


# ---- 2. one live writer per output path ---------------------------------------------------
def test_second_writer_on_the_same_path_is_refused(tmp_path):
    out = tmp_path / "same.h5"
    cmd = [sys.executable, "-m", "gpusim.cli", "run", "quickstart", "-o", str(out), "-q",
           "--days", "30", "--set", "run.output_interval_hours=0.6", "-r", "2"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and writer_mod.writer_active(out)):
            assert proc.poll() is None and time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.1)
        before = out.stat().st_ino
        r = invoke("run", "quickstart", "-o", out, "--force", "--days", "0.1", *SETS)
        one_error_line(r, f"'{out}' is being written by another gpusim process")
        r = invoke("resume", out)
        one_error_line(r, "still being written")
        # the writer itself also refuses (a second process that got past the pre-check)
        with pytest.raises(OutputError, match="being written by another gpusim process"):
            ResultWriter(out, replicates=1, attrs={}, scenario_toml="", metrics={},
                         endpoints={}, force=True)
        r = invoke("summary", out)
        assert r.exit_code == 0 and "status running" in r.output
        assert out.stat().st_ino == before  # the live file was not replaced
    finally:
        proc.kill()
        proc.wait(30)
    r = invoke("summary", out)
    assert r.exit_code == 0 and "status interrupted" in r.output  # killed: no live writer


def test_lock_is_released_and_removed_after_a_run(tmp_path):
    out = tmp_path / "a.h5"
    run(small(run__days=0.1), out)
    assert not writer_mod.writer_active(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]
    run(small(run__days=0.1), out, force=True)  # the same process may write it again


# ---- 3. truncated / damaged result files ---------------------------------------------------
@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("res")
    run(small(run__days=0.25), d / "a.h5")
    run(small(run__days=0.25, run__seed=2), d / "b.h5")
    data = (d / "b.h5").read_bytes()
    (d / "half.h5").write_bytes(data[: len(data) // 2])
    (d / "head.h5").write_bytes(data[:4096])
    mangled = bytearray(data)
    mangled[2048:len(data) // 2] = b"\xff" * (len(data) // 2 - 2048)
    (d / "mangled.h5").write_bytes(bytes(mangled))
    return d


@pytest.fixture(scope="module")
def killed_half(tmp_path_factory):
    """The first half of a file whose writer was killed (still marked as being written)."""
    d = tmp_path_factory.mktemp("killed")
    path = d / "k.h5"
    proc = subprocess.Popen([sys.executable, "-m", "gpusim.cli", "run", "quickstart", "-o", str(path), "-q",
                             "--days", "1", *SETS], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not get going"
            try:
                if open_results(path).time_days.size >= 3:
                    break
            except OutputError:
                pass
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(30)
    data = path.read_bytes()
    (d / "killed_half.h5").write_bytes(data[: len(data) // 2])
    return d / "killed_half.h5"


@pytest.mark.parametrize("name", ["half.h5", "head.h5", "mangled.h5", "killed_half.h5"])
def test_damaged_file_is_refused_by_summary_and_resume(results, killed_half, name):
    # a killed file cut in half is opened by an SWMR reader, which used to retry its damaged
    # metadata for minutes: it must fail within seconds too
    f = killed_half if name == "killed_half.h5" else results / name
    t0 = time.monotonic()
    before = f.read_bytes()
    for cmd in ("summary", "resume"):
        one_error_line(invoke(cmd, f), f"'{f}'")
    assert f.read_bytes() == before
    assert time.monotonic() - t0 < 30


def test_compare_and_report_skip_a_damaged_file(results, tmp_path):
    r = invoke("compare", results / "a.h5", results / "half.h5", results / "b.h5")
    assert r.exit_code == 0, r.output
    assert "warning: skipping half" in r.stderr and "Traceback" not in r.output
    assert "a " in r.stdout or "a\n" in r.stdout
    pytest.importorskip("matplotlib")
    r = invoke("report", results / "half.h5", results / "a.h5", "-o", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert "warning: skipping half" in r.stderr and (tmp_path / "rep" / "index.html").exists()
    r = invoke("compare", results / "half.h5")
    one_error_line(r, "none of the inputs")


# ---- 5. sweep --force deletes only its own point files --------------------------------------
@pytest.mark.parametrize("bad", ["../victim.txt", "ABS", "sub/p000.h5", "p000.h5/../../victim.txt",
                                 "victim.txt", 7])
def test_sweep_force_never_deletes_outside_its_directory(tmp_path, bad):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    sw = tmp_path / "sw"
    sw.mkdir()
    (sw / "victim.txt").write_text("keep me too")
    entry = str(victim) if bad == "ABS" else bad
    index = {"schema": "gpusim-sweep/1", "scenario": "x", "grid": {},
             "points": [{"id": "p000", "file": entry, "params": {}}]}
    (sw / "index.json").write_text(json.dumps(index))
    r = invoke("sweep", "quickstart", "-g", "run.seed=1,2", "-o", sw, "--force", "--days", "0.05", *SETS)
    one_error_line(r, "not a point file of this sweep directory", "nothing was deleted")
    assert victim.read_text() == "keep me" and (sw / "victim.txt").read_text() == "keep me too"
    assert json.loads((sw / "index.json").read_text()) == index


def test_sweep_force_still_replaces_its_own_points(tmp_path):
    sw = tmp_path / "sw"
    sw.mkdir()
    (sw / "p000.h5").write_text("old point")
    (sw / "notes.txt").write_text("mine")
    index = {"schema": "gpusim-sweep/1", "scenario": "x", "grid": {},
             "points": [{"id": "p000", "file": "p000.h5", "params": {}}]}
    (sw / "index.json").write_text(json.dumps(index))
    r = invoke("sweep", "quickstart", "-g", "run.seed=1,2", "-o", sw, "--force", "--days", "0.05", "-q", *SETS)
    assert r.exit_code == 0, r.output
    assert open_results(sw / "p000.h5").status == "complete"
    assert (sw / "notes.txt").read_text() == "mine"


# ---- 6. a resume that cannot run leaves the file unchanged ----------------------------------
def test_resume_with_a_swapped_scenario_refuses_before_touching_the_file(tmp_path):
    path = tmp_path / "k.h5"
    with pytest.raises(KeyboardInterrupt):
        run(small(run__days=1.0), path,
            progress=lambda d, n: (_ for _ in ()).throw(KeyboardInterrupt) if d >= 20 else None)
    toml = open_results(path).scenario_toml.replace("x_voxels = 24", "x_voxels = 32")
    with h5py.File(path, "r+") as f:
        del f["scenario"]
        f.create_dataset("scenario", data=toml, dtype=h5py.string_dtype("utf-8"))
    before = path.read_bytes()
    r = invoke("resume", path)
    one_error_line(r, f"cannot resume '{path}'", "does not fit its stored scenario")
    assert path.read_bytes() == before
    with h5py.File(path, "r+") as f:
        del f["scenario"]
        f.create_dataset("scenario", data="[run\nnot toml", dtype=h5py.string_dtype("utf-8"))
    before = path.read_bytes()
    one_error_line(invoke("resume", path), "not valid TOML")
    assert path.read_bytes() == before


# ---- 7. compare --csv ---------------------------------------------------------------------
def test_compare_csv_never_replaces_without_force_and_checks_the_directory_first(results, tmp_path):
    csv_path = tmp_path / "arms.csv"
    csv_path.write_text("precious")
    r = invoke("compare", results / "a.h5", "--csv", csv_path)
    one_error_line(r, f"'{csv_path}' exists; pass --force")
    assert r.stdout == "" and csv_path.read_text() == "precious"
    r = invoke("compare", results / "a.h5", "--csv", tmp_path / "missing" / "arms.csv")
    one_error_line(r, "does not exist")
    assert r.stdout == ""
    r = invoke("compare", results / "a.h5", "--csv", csv_path, "--force")
    assert r.exit_code == 0 and csv_path.read_text().startswith("arm,endpoint")


# ---- 10/11. slips and conflicting options ---------------------------------------------------
def test_python_dash_m_cli_has_every_command():
    r = subprocess.run([sys.executable, "-m", "gpusim.cli", "bench", "--help"], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Time SCENARIOS" in r.stdout, r.stderr


@pytest.mark.parametrize("args,fragments", [
    (["--days", "2", "--set", "run.days=3"], ["--days", "--set run.days"]),
    (["-r", "2", "--set", "run.replicates=3"], ["-r/--replicates", "--set run.replicates"]),
    (["--seed", "2", "--set", "run.seed=3"], ["--seed", "--set run.seed"]),
])
def test_run_option_and_set_on_the_same_key_is_an_error(tmp_path, args, fragments):
    r = invoke("run", "quickstart", "-o", tmp_path / "o.h5", *args)
    one_error_line(r, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_sweep_grid_and_set_on_the_same_key_is_an_error(tmp_path):
    r = invoke("sweep", "quickstart", "-g", "run.seed=1,2", "--set", "run.seed=3", "-o", tmp_path / "sw")
    one_error_line(r, "-g/--grid run.seed", "--set run.seed")
    r = invoke("sweep", "quickstart", "-g", "run.days=1,2", "--days", "3", "-o", tmp_path / "sw")
    one_error_line(r, "-g/--grid run.days", "--days")
    assert list(tmp_path.iterdir()) == []


def test_bench_size_zero_refused_and_backend_auto_accepted():
    one_error_line(invoke("bench", "--size", "0"), "--size 0", "allowed")
    r = invoke("bench", "--backend", "auto", "--size", "16", "-r", "1", "--steps", "1", "--warmup", "0")
    assert r.exit_code == 0, r.output
    assert "numpy" in r.output


@pytest.mark.parametrize("make,fragment", [
    (lambda d: "", "is not a file name"),
    (lambda d: (d / "link.h5").symlink_to(d / "nowhere" / "x.h5") or str(d / "link.h5"), "dangling symbolic link"),
])
def test_unusable_output_names_have_specific_messages(tmp_path, make, fragment):
    out = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    one_error_line(invoke("run", "quickstart", "-o", out, "--days", "0.05", *SETS), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_output_errors_are_one_line(tmp_path, monkeypatch):
    # HDF5 messages span two lines; the CLI prints one
    def boom(*a, **kw):
        raise OutputError("first part\n, second part")

    monkeypatch.setattr("gpusim.study.runner.run", boom)
    one_error_line(invoke("run", "quickstart", "-o", tmp_path / "o.h5"), "first part , second part")


def test_a_file_system_without_flock_still_gets_written(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    out = tmp_path / "a.h5"
    assert not writer_mod.writer_active(out)
    run(small(run__days=0.05), out)
    assert open_results(out).status == "complete"

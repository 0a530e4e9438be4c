"""Tests of gpusim.io: the streaming HDF5 result writer and reader (schema gpusim/1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

import gpusim.io.writer as writer_mod
from gpusim.errors import OutputError
from gpusim.io import SCHEMA, ResultWriter, Results, open_results

REPO = Path(__file__).resolve().parents[1]

R = 3
RS, Z, Y, X = 2, 3, 4, 5
METRICS = {
    "tumor_cells": ("cells", "live tumour cells"),
    "cart_cells": ("cells", "live CAR-T cells"),
}
ENDPOINTS = {
    "cleared": ("bool", "", "tumour cleared by the end"),
    "time_to_clear": ("f8", "day", "time until no tumour cell is left"),
    "final_tumor": ("i8", "cells", "tumour cells at the end"),
}
SNAP_FIELDS = {
    "tumor": ("u2", "cells", "tumour cells per voxel"),
    "o2": ("f4", "mmHg", "oxygen partial pressure"),
}
CKPT = {"positions": ((10, 3), "i4"), "rng_counter": ((), "u8"), "o2": ((Z, Y, X), "f4", "mmHg", "oxygen")}
ATTRS = {"gpusim_version": "0.1.0", "backend": "numpy", "device": "cpu", "seed": 42, "first_replicate": 0}
TOML = '[run]\ndays = 2.0\nseed = 42\n# µm, unicode survives\n'


def make_writer(path, **kw) -> ResultWriter:
    args = dict(
        replicates=R, attrs=ATTRS, scenario_toml=TOML, metrics=METRICS, endpoints=ENDPOINTS,
        snapshot_fields=SNAP_FIELDS, snapshot_shape=(RS, Z, Y, X), checkpoint_spec=CKPT,
    )
    args.update(kw)
    return ResultWriter(path, **args)


def interval(i: int) -> dict[str, np.ndarray]:
    """Distinct, exactly representable values for interval i."""
    return {
        "tumor_cells": 1000.0 * (i + 1) + np.arange(R),
        "cart_cells": 0.25 * i - np.arange(R),
    }


def snap(i: int) -> dict[str, np.ndarray]:
    n = RS * Z * Y * X
    return {
        "tumor": ((np.arange(n) * (i + 3)) % 65000).astype("u2").reshape(RS, Z, Y, X),
        "o2": (np.arange(n, dtype="f4") * 0.5 + i).reshape(RS, Z, Y, X),
    }


def state(k: int) -> dict[str, np.ndarray]:
    return {
        "positions": np.arange(30, dtype="i4").reshape(10, 3) * k,
        "rng_counter": np.uint64(2**40 + k),
        "o2": np.full((Z, Y, X), 1.5 * k, dtype="f4"),
    }


FINAL = {
    "cleared": np.array([True, False, True]),
    "time_to_clear": np.array([1.5, np.nan, 0.75]),
    "final_tumor": np.array([0, 17, 0]),
}


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------------------------------------
def test_round_trip(tmp_path):
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        for i in range(5):
            w.append(0.5 * i, interval(i))
            if i % 2 == 0:
                w.snapshot(0.5 * i, snap(i))
        w.checkpoint(1234, 2.0, state(7))
        w.finish(FINAL)
    assert w.status == "complete"

    res = open_results(path)
    assert isinstance(res, Results)
    assert res.schema == SCHEMA == "gpusim/1"
    assert res.status == "complete"
    assert res.scenario_toml == TOML
    for key, value in ATTRS.items():
        assert res.attrs[key] == value
    assert res.replicates == R and res.attrs["replicates"] == R
    datetime.fromisoformat(res.attrs["created_utc"])
    datetime.fromisoformat(res.attrs["ended_utc"])
    assert "error" not in res.attrs

    np.testing.assert_array_equal(res.time_days, [0.0, 0.5, 1.0, 1.5, 2.0])
    assert res.time_days.dtype == np.float64
    assert set(res.timeseries) == set(METRICS)
    for name in METRICS:
        expect = np.stack([interval(i)[name] for i in range(5)], axis=1)
        assert res.timeseries[name].shape == (R, 5)
        np.testing.assert_array_equal(res.timeseries[name], expect)

    np.testing.assert_array_equal(res.snapshot_times, [0.0, 1.0, 2.0])
    for name, (dtype, _, _) in SNAP_FIELDS.items():
        arr = res.snapshots[name]
        assert arr.shape == (3, RS, Z, Y, X) and arr.dtype == np.dtype(dtype)
        for s, i in enumerate([0, 2, 4]):
            np.testing.assert_array_equal(arr[s], snap(i)[name])

    for name, (dtype, _, _) in ENDPOINTS.items():
        assert res.endpoints[name].shape == (R,) and res.endpoints[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(res.endpoints[name], FINAL[name])

    step, t, st = res.checkpoint()
    assert (step, t) == (1234, 2.0)
    assert set(st) == set(CKPT)
    for name, arr in state(7).items():
        assert st[name].shape == CKPT[name][0] and st[name].dtype == np.dtype(CKPT[name][1])
        np.testing.assert_array_equal(st[name], arr)

    assert res.units["/timeseries/time_days"] == "day"
    assert res.units["/snapshots/time_days"] == "day"
    assert res.units["/timeseries/tumor_cells"] == "cells"
    assert res.units["/snapshots/o2"] == "mmHg"
    assert res.units["/endpoints/time_to_clear"] == "day"
    assert res.units["/checkpoint/state/o2"] == "mmHg"
    assert res.descriptions["/timeseries/cart_cells"] == "live CAR-T cells"

    with res as same:  # usable as a (no-op) context manager
        assert same is res


def test_plain_h5py_layout(tmp_path):
    """The layout documented in docs/io_format.md, checked with plain h5py."""
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        w.append(0.1, interval(0))
        w.snapshot(0.1, snap(0))
        w.finish(FINAL)
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "gpusim/1" and f.attrs["status"] == "complete"
        assert f["scenario"].shape == () and f["scenario"].asstr()[()] == TOML
        ts = f["timeseries/tumor_cells"]
        assert ts.shape == (R, 1) and ts.maxshape == (R, None) and ts.chunks[0] == R
        assert f["timeseries/time_days"].maxshape == (None,)
        sn = f["snapshots/o2"]
        assert sn.maxshape == (None, RS, Z, Y, X) and sn.compression == "gzip"
        assert f["snapshots"].attrs["replicates"] == RS
        assert f["checkpoint/valid"][()] == 0 and f["checkpoint/step"][()] == -1

        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        assert len(datasets) == 1 + 3 + 3 + 3 + 3 + 3  # scenario, ts, snaps, endpoints, ckpt header, state
        for ds in datasets:
            assert isinstance(ds.attrs["units"], str), ds.name
            assert ds.attrs["description"], ds.name


def test_endpoints_hold_fill_values_until_finish(tmp_path):
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        w.append(0.0, interval(0))
        res = open_results(path)
        assert res.status == "running"
        assert np.isnan(res.endpoints["time_to_clear"]).all()
        np.testing.assert_array_equal(res.endpoints["final_tumor"], [-1, -1, -1])
        np.testing.assert_array_equal(res.endpoints["cleared"], [False] * R)
        assert res.checkpoint() is None
        w.finish(FINAL)


# ---------------------------------------------------------------------------------------------
def test_refuses_to_overwrite_and_force_replaces(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious data")

    def no_hdf5(*args, **kwargs):
        raise AssertionError("the refusal must come before any file is created")

    monkeypatch.setattr(h5py, "File", no_hdf5)
    with pytest.raises(OutputError, match=r"output file '.*run\.h5' exists; pass --force to overwrite it"):
        make_writer(path)
    monkeypatch.undo()
    assert path.read_bytes() == b"precious data"
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]

    with make_writer(path, force=True) as w:
        w.append(0.0, interval(0))
        w.finish(FINAL)
    res = open_results(path)
    assert res.status == "complete" and res.timeseries["tumor_cells"].shape == (R, 1)
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]


def test_missing_directory(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(OutputError, match=r"directory '.*no/such' does not exist"):
        make_writer(missing / "run.h5")
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_unwritable_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(OutputError, match=r"directory '.*ro' is not writable"):
        make_writer(ro / "run.h5")


def test_no_partial_file_when_construction_fails(tmp_path):
    path = tmp_path / "run.h5"
    # Fails inside the HDF5 file (after it was created): an attribute HDF5 cannot store.
    with pytest.raises(OutputError, match="seed"):
        make_writer(path, attrs={**ATTRS, "seed": 2**70})
    assert os.listdir(tmp_path) == []

    # An existing file is untouched even with force, when construction fails.
    path.write_bytes(b"old")
    with pytest.raises(OutputError):
        make_writer(path, attrs={**ATTRS, "seed": 2**70}, force=True)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["run.h5"]


def test_no_partial_file_when_final_move_fails(tmp_path, monkeypatch):
    def boom(tmp, path, force):
        raise OSError("disk full")

    monkeypatch.setattr(writer_mod, "move_into_place", boom)
    with pytest.raises(OutputError, match="disk full"):
        make_writer(tmp_path / "run.h5")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"replicates": 0}, "replicates"),
        ({"metrics": {"bad name": ("cells", "x")}}, "bad name"),
        ({"metrics": {"time_days": ("day", "x")}}, "reserved"),
        ({"endpoints": {"e": ("U8", "", "x")}}, "dtype"),
        ({"snapshot_shape": None}, "snapshot_shape"),
        ({"attrs": {"status": "complete"}}, "status"),
        ({"attrs": {"thing": None}}, "thing"),
    ],
)
def test_invalid_declarations_are_refused_before_any_file(tmp_path, kw, match):
    with pytest.raises(OutputError, match=match):
        make_writer(tmp_path / "run.h5", **kw)
    assert os.listdir(tmp_path) == []


def test_invalid_appends_are_refused(tmp_path):
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        w.append(1.0, interval(0))
        with pytest.raises(OutputError, match="shape"):
            w.append(2.0, {"tumor_cells": np.zeros(R + 1), "cart_cells": np.zeros(R)})
        with pytest.raises(OutputError, match="missing"):
            w.append(2.0, {"tumor_cells": np.zeros(R)})
        with pytest.raises(OutputError, match="undeclared"):
            w.append(2.0, {**interval(1), "extra": np.zeros(R)})
        with pytest.raises(OutputError, match="after the previous"):
            w.append(1.0, interval(1))
        with pytest.raises(OutputError, match="shape"):
            w.snapshot(1.0, {"tumor": np.zeros((RS, Z, Y)), "o2": np.zeros((RS, Z, Y, X))})
        with pytest.raises(OutputError, match="shape"):
            w.checkpoint(1, 1.0, {**state(1), "positions": np.zeros((9, 3))})
        with pytest.raises(OutputError, match="missing"):
            w.finish({"cleared": FINAL["cleared"]})
        w.finish(FINAL)
    with pytest.raises(OutputError, match="closed"):
        w.append(5.0, interval(2))
    res = open_results(path)
    assert res.status == "complete" and res.time_days.tolist() == [1.0]


# ---------------------------------------------------------------------------------------------
def test_exception_marks_failed_and_keeps_data(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="kernel exploded"):
        with make_writer(path) as w:
            w.append(0.0, interval(0))
            w.append(0.5, interval(1))
            raise RuntimeError("kernel exploded")
    res = open_results(path)
    assert res.status == "failed"
    assert res.attrs["error"] == "RuntimeError: kernel exploded"
    np.testing.assert_array_equal(res.time_days, [0.0, 0.5])
    np.testing.assert_array_equal(res.timeseries["tumor_cells"][:, 1], interval(1)["tumor_cells"])
    assert np.isnan(res.endpoints["time_to_clear"]).all()


def test_keyboard_interrupt_marks_interrupted(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        with make_writer(path) as w:
            w.append(0.0, interval(0))
            w.checkpoint(10, 0.0, state(1))
            raise KeyboardInterrupt
    res = open_results(path)
    assert res.status == "interrupted"
    assert res.attrs["error"] == "KeyboardInterrupt"
    np.testing.assert_array_equal(res.timeseries["cart_cells"], interval(0)["cart_cells"][:, None])
    assert res.checkpoint()[0] == 10


def test_leaving_without_finish_marks_failed(tmp_path):
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        w.append(0.0, interval(0))
    res = open_results(path)
    assert res.status == "failed" and "finish" in res.attrs["error"]


# ---------------------------------------------------------------------------------------------
def test_read_while_writing_same_process(tmp_path):
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        assert open_results(path).time_days.shape == (0,)
        for i in range(4):
            w.append(float(i), interval(i))
            res = open_results(path)
            assert res.status == "running"
            assert res.timeseries["tumor_cells"].shape == (R, i + 1)
            np.testing.assert_array_equal(res.timeseries["tumor_cells"][:, i], interval(i)["tumor_cells"])
        w.snapshot(3.0, snap(3))
        np.testing.assert_array_equal(open_results(path).snapshots["o2"][0], snap(3)["o2"])
        w.checkpoint(5, 3.0, state(2))
        step, _, st = open_results(path).checkpoint()
        assert step == 5 and st["positions"][9, 2] == 29 * 2
        w.finish(FINAL)
    assert open_results(path).status == "complete"


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from gpusim.io import ResultWriter
    path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    w = ResultWriter(path, replicates=3, attrs={"seed": 1}, scenario_toml="x = 1\\n",
                     metrics={"m": ("cells", "metric")}, endpoints={"e": ("f8", "day", "endpoint")},
                     checkpoint_spec={"s": ((4,), "i8")})
    for i in range(n):
        w.append(float(i), {"m": np.arange(3) + 10.0 * i})
        if i == n // 2:
            w.checkpoint(i, float(i), {"s": np.arange(4) * i})
        if mode == "step":
            print(i, flush=True)
            sys.stdin.readline()
    print("ready", flush=True)
    if mode == "kill":
        time.sleep(60)
    else:
        sys.stdin.readline()
        w.finish({"e": np.array([1.0, 2.0, 3.0])})
        print("done", flush=True)
    """
)


def start_writer(path: Path, n: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), str(n), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=run_env(),
    )


def test_read_while_writing_other_process(tmp_path):
    path = tmp_path / "run.h5"
    proc = start_writer(path, 3, "step")
    try:
        for i in range(3):
            assert proc.stdout.readline().strip() == str(i)
            res = open_results(path)
            assert res.status == "running"
            np.testing.assert_array_equal(res.time_days, np.arange(i + 1, dtype=float))
            np.testing.assert_array_equal(res.timeseries["m"][:, i], np.arange(3) + 10.0 * i)
            proc.stdin.write("\n")
            proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ready"
        assert open_results(path).checkpoint()[0] == 1
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    res = open_results(path)
    assert res.status == "complete"
    np.testing.assert_array_equal(res.endpoints["e"], [1.0, 2.0, 3.0])


def test_sigkill_keeps_every_flushed_interval(tmp_path):
    path = tmp_path / "run.h5"
    n = 6
    proc = start_writer(path, n, "kill")
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    res = open_results(path)
    assert res.status == "running"
    assert res.schema == SCHEMA
    np.testing.assert_array_equal(res.time_days, np.arange(n, dtype=float))
    expect = np.arange(3)[:, None] + 10.0 * np.arange(n)[None, :]
    np.testing.assert_array_equal(res.timeseries["m"], expect)
    assert np.isnan(res.endpoints["e"]).all()
    step, t, st = res.checkpoint()  # written mid-run; the later appends flushed on their own
    assert (step, t) == (n // 2, float(n // 2))
    np.testing.assert_array_equal(st["s"], np.arange(4) * (n // 2))
    # Only the temporary-name-free result file is there, and the killed writer's lock file
    # (empty, no longer locked: the next writer of run.h5, or a resume, takes it and removes it).
    assert sorted(os.listdir(tmp_path)) == [".run.h5.lock", "run.h5"]
    assert res.status_now == "interrupted"


def test_finish_while_another_process_holds_the_file(tmp_path, monkeypatch):
    """A live reader keeping the file open (and locked) must not block the end of the run."""
    monkeypatch.setattr(writer_mod, "_REOPEN_WAIT_S", 0.2)
    path = tmp_path / "run.h5"
    holder = textwrap.dedent(
        """
        import sys, h5py
        f = h5py.File(sys.argv[1], "r", swmr=True)
        print("open", flush=True)
        sys.stdin.readline()
        """
    )
    with make_writer(path) as w:
        w.append(0.0, interval(0))
        proc = subprocess.Popen([sys.executable, "-c", holder, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=run_env())
        try:
            assert proc.stdout.readline().strip() == "open"
            w.finish(FINAL)
        finally:
            proc.communicate("\n", timeout=10)
    res = open_results(path)
    assert res.status == "complete"
    np.testing.assert_array_equal(res.endpoints["final_tumor"], FINAL["final_tumor"])


# ---------------------------------------------------------------------------------------------
def test_checkpoint_is_marked_invalid_until_complete(tmp_path, monkeypatch):
    """At every flush during checkpoint(), valid == 1 only once the new state and step are in."""
    path = tmp_path / "run.h5"
    seen = []
    with make_writer(path) as w:
        w.checkpoint(1, 0.5, state(1))
        real_flush = h5py.File.flush

        def recording_flush(f):
            real_flush(f)
            g = f["checkpoint"]
            seen.append((int(g["valid"][()]), int(g["step"][()]), g["state/positions"][...].copy()))

        monkeypatch.setattr(h5py.File, "flush", recording_flush)
        w.checkpoint(2, 1.0, state(2))
        monkeypatch.undo()
        w.finish(FINAL)
    assert [v for v, _, _ in seen] == [0] * (len(seen) - 1) + [1]
    assert seen[-1][1] == 2
    np.testing.assert_array_equal(seen[-1][2], state(2)["positions"])
    assert seen[0][0] == 0  # invalidated before any state array was overwritten
    np.testing.assert_array_equal(seen[0][2], state(1)["positions"])


def test_reader_drops_a_partly_written_interval(tmp_path):
    """If a kill happens mid-append (a metric grew, time_days did not), T stays consistent."""
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        for i in range(3):
            w.append(float(i), interval(i))
        ds = w._file["timeseries/tumor_cells"]  # emulate the first half of a 4th append
        ds.resize((R, 4))
        ds[:, 3] = 99.0
        w._file.flush()
        res = open_results(path)
        assert res.time_days.shape == (3,)
        assert res.timeseries["tumor_cells"].shape == (R, 3)
        assert res.timeseries["cart_cells"].shape == (R, 3)
        # A writer that grew time_days first: still the shortest length wins.
        td = w._file["timeseries/time_days"]
        td.resize((5,))
        td[3:] = [3.0, 4.0]
        w._file.flush()
        res = open_results(path)
        np.testing.assert_array_equal(res.time_days, [0.0, 1.0, 2.0])
        assert res.timeseries["tumor_cells"].shape == (R, 3)
        w.close("interrupted", "test")
    assert open_results(path).status == "interrupted"


def test_reader_refuses_other_files(tmp_path):
    with pytest.raises(OutputError, match="no such file"):
        open_results(tmp_path / "missing.h5")

    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n" * 100)
    with pytest.raises(OutputError, match="not an HDF5 file"):
        open_results(text)

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "other/2"
    with pytest.raises(OutputError, match=r"'.*other\.h5' is a other/2 file; this gpusim reads gpusim/1"):
        open_results(other)

    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f["x"] = 1
    with pytest.raises(OutputError, match="this gpusim reads gpusim/1"):
        open_results(bare)


def test_checkpoint_read_is_repeated_if_the_checkpoint_changes(tmp_path, monkeypatch):
    import gpusim.io.reader as reader_mod

    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        w.checkpoint(3, 1.0, state(3))
        w.finish(FINAL)
    res = open_results(path)
    real_head = reader_mod._checkpoint_head
    calls = []

    def moving_head(f):  # a writer replacing the checkpoint between every two reads
        calls.append(1)
        step, t = real_head(f)
        return step + len(calls), t

    monkeypatch.setattr(reader_mod, "_checkpoint_head", moving_head)
    with pytest.raises(OutputError, match="kept changing"):
        res.checkpoint()
    assert len(calls) == 10

    calls.clear()

    def settles(f):  # changes once, between the first read and its check
        calls.append(1)
        step, t = real_head(f)
        return (step - 1, t) if len(calls) == 1 else (step, t)

    monkeypatch.setattr(reader_mod, "_checkpoint_head", settles)
    assert res.checkpoint()[0] == 3 and len(calls) == 4

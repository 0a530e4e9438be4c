"""Replicate chunks on a local Dask cluster, merged into one file: bitwise identical datasets to a
single-process run (2 and 4 workers); clear errors for an unreachable scheduler and bad options."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from gpusim.cli import main
from gpusim.study.distributed import chunks, merge, run_part
from gpusim.errors import ClusterError, MissingExtraError, OutputError
from gpusim.io import open_results
from gpusim.study.runner import run
from gpusim.scenario import load_scenario
from h5diff import different_attrs, different_datasets

pytest.importorskip("distributed", reason="Dask is an optional extra (pip install 'gpusim[dask]')")

# 5 replicates: 2 workers -> chunks (3, 2); 4 workers -> (2, 1, 1, 1), so the 3 snapshot
# replicates span two chunks
SMALL = ["domain.x_voxels=20", "domain.y_voxels=20", "tumour.radius_um=100",
         "run.output_interval_hours=2", "run.snapshot_interval_hours=3",
         "run.checkpoint_interval_hours=2.5", "run.snapshot_replicates=3", "run.days=0.4",
         "run.replicates=5", "run.first_replicate=7"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    path = tmp_path_factory.mktemp("single") / "single.h5"
    run(load_scenario("quickstart", SMALL), path)
    return path


def test_chunks_cover_replicates():
    assert chunks(7, 5, 2) == [(7, 3), (10, 2)]
    assert chunks(0, 5, 4) == [(0, 2), (2, 1), (3, 1), (4, 1)]
    assert chunks(0, 2, 8) == [(0, 1), (1, 1)]


def test_merge_of_parts_equals_single_without_dask(single, tmp_path):
    sc = load_scenario("quickstart", SMALL)
    parts = [run_part(sc.to_toml(), k, n, str(tmp_path / f"p{k}.h5")) for k, n in chunks(7, 5, 3)]
    merged = merge(parts, tmp_path / "m.h5", sc.to_toml())
    assert merged.replicates == 5 and merged.attrs["first_replicate"] == 7
    assert different_datasets(single, tmp_path / "m.h5") == []
    assert different_attrs(single, tmp_path / "m.h5") == []
    with pytest.raises(OutputError, match="starts at replicate"):
        merge(parts[::-1], tmp_path / "bad.h5", sc.to_toml())
    assert not (tmp_path / "bad.h5").exists()


def test_two_workers_cli_bitwise(single, tmp_path):
    out = tmp_path / "w2.h5"
    r = CliRunner().invoke(main, ["run", "quickstart", "-o", str(out), "-q", "--workers", "2"]
                           + [x for s in SMALL for x in ("--set", s)])
    assert r.exit_code == 0, r.output
    assert different_datasets(single, out) == []
    assert different_attrs(single, out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w2.h5"]  # part files removed


def test_four_workers_bitwise(single, tmp_path):
    from gpusim.study.distributed import Cluster, run_distributed

    out = tmp_path / "w4.h5"
    with Cluster(workers=4) as cl:
        assert cl.n_workers == 4
        res = run_distributed(load_scenario("quickstart", SMALL), out, cl)
    assert res.status == "complete"
    assert different_datasets(single, out) == []
    np.testing.assert_array_equal(res.snapshots["kind"], open_results(single).snapshots["kind"])


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    out = tmp_path / "x.h5"
    r = CliRunner().invoke(main, ["run", "quickstart", "-o", str(out), "--dask", "tcp://127.0.0.1:9",
                                  "--days", "0.1"])
    assert r.exit_code == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in r.output
    assert list(tmp_path.iterdir()) == []


def test_bad_options(tmp_path, monkeypatch):
    from gpusim.study.distributed import Cluster

    with pytest.raises(ClusterError, match="positive"):
        Cluster(workers=0)
    with pytest.raises(ClusterError, match="not both"):
        Cluster(workers=2, address="tcp://x:1")
    existing = tmp_path / "e.h5"
    existing.write_bytes(b"keep")
    r = CliRunner().invoke(main, ["run", "quickstart", "-o", str(existing), "--workers", "2"])
    assert r.exit_code == 2 and "exists" in r.output and existing.read_bytes() == b"keep"
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(MissingExtraError, match=r"gpusim\[dask\]"):
        Cluster(workers=1)


def test_sweep_on_two_workers_equals_sequential_sweep(tmp_path):
    base = [x for x in SMALL if not x.startswith(("run.replicates", "run.first_replicate"))]
    args = ["--grid", "run.seed=1,2", "-r", "3", "-q"] + [x for s in base for x in ("--set", s)]
    r = CliRunner().invoke(main, ["sweep", "quickstart", "-o", str(tmp_path / "seq")] + args)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["sweep", "quickstart", "-o", str(tmp_path / "par"), "--workers", "2"] + args)
    assert r.exit_code == 0, r.output
    for p in ("p000.h5", "p001.h5"):
        assert different_datasets(tmp_path / "seq" / p, tmp_path / "par" / p) == []
        assert different_attrs(tmp_path / "seq" / p, tmp_path / "par" / p) == []

"""Results.to_xarray: the arrays, dims, coordinates, units and descriptions of a result file as an
xarray.Dataset, and the one-line error without xarray."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from gpusim.errors import MissingExtraError
from gpusim.io import open_results
from gpusim.scenario import load_scenario
from gpusim.study.runner import run

SMALL = ["domain.x_voxels=20", "domain.y_voxels=20", "tumour.radius_um=100",
         "run.output_interval_hours=2", "run.snapshot_interval_hours=2", "run.days=0.3",
         "run.replicates=3", "run.first_replicate=5"]


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    path = tmp_path_factory.mktemp("xr") / "a.h5"
    run(load_scenario("quickstart", SMALL), path)
    return open_results(path)


def test_to_xarray_holds_every_array_with_dims_units_and_descriptions(res):
    xr = pytest.importorskip("xarray", reason="xarray not installed (extra gpusim[xarray])")
    ds = res.to_xarray()
    assert isinstance(ds, xr.Dataset)
    R, T = res.replicates, res.time_days.size
    assert ds.sizes["replicate"] == R and ds.sizes["time"] == T
    np.testing.assert_array_equal(ds["replicate"].values, np.arange(5, 5 + R))
    np.testing.assert_array_equal(ds["time"].values, res.time_days)
    assert ds["time"].attrs["units"] == "day"
    for name, arr in res.timeseries.items():
        v = ds[name]
        assert v.dims == ("replicate", "time")
        np.testing.assert_array_equal(v.values, arr)
        assert v.attrs["units"] == res.units[f"/timeseries/{name}"]
        assert v.attrs["description"] == res.descriptions[f"/timeseries/{name}"]
    for name, arr in res.endpoints.items():
        np.testing.assert_array_equal(ds[f"endpoint_{name}"].values, arr)
        assert ds[f"endpoint_{name}"].dims == ("replicate",)
    for name, arr in res.events.items():
        np.testing.assert_array_equal(ds[f"event_{name}"].values, arr)
    assert res.snapshots, "the small run writes snapshots"
    for name, arr in res.snapshots.items():
        v = ds[f"snapshot_{name}"]
        assert v.dims == ("snapshot_time", "snapshot_replicate", "z", "y", "x")
        np.testing.assert_array_equal(v.values, arr)
        assert v.dtype == arr.dtype
    for name, arr in res.profiles.items():
        assert ds[name].dims == ("replicate", "time", f"{name}_bin")
        np.testing.assert_array_equal(ds[f"{name}_bin_edges"].values, res.profile_edges[name])
    assert ds.attrs["seed"] == res.attrs["seed"] and ds.attrs["scenario_toml"] == res.scenario_toml
    assert ds.attrs["status"] == "complete"


def test_to_xarray_without_xarray_is_one_line_naming_the_extra(res, monkeypatch):
    real_import = builtins.__import__

    def no_xarray(name, *args, **kwargs):
        if name == "xarray" or name.startswith("xarray."):
            raise ImportError("No module named 'xarray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_xarray)
    with pytest.raises(MissingExtraError) as e:
        res.to_xarray()
    msg = str(e.value)
    assert "\n" not in msg and "gpusim[xarray]" in msg

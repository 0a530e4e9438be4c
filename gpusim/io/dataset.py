"""A result file as an ``xarray.Dataset`` (optional extra ``gpusim[xarray]``).

Dimensions: ``replicate`` (R, coordinate: the global replicate index), ``time`` (T output
times, day), ``z``, ``y``, ``x`` (lattice voxels); snapshots have their own times and keep the
first Rs replicates, so they use ``snapshot_time`` and ``snapshot_replicate``; a profile ``p``
has its bins along ``p_bin`` (coordinate: the bin centres, edges in ``p_bin_edges``).  Every
variable carries the file's ``units`` and ``description`` as attrs; the root attributes become
the dataset's attrs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpusim.errors import MissingExtraError


def _xarray():
    try:
        import xarray
    except ImportError as e:
        raise MissingExtraError(f"Results.to_xarray needs xarray ({e}); install the extra: "
                                "pip install 'gpusim[xarray]'") from None
    return xarray


def _attrs(res, path: str) -> dict[str, str]:
    return {"units": res.units.get(path, ""), "description": res.descriptions.get(path, "")}


def _attr_value(v: Any) -> Any:
    """A root attribute as netCDF stores it (bools as int8)."""
    return np.int8(v) if isinstance(v, (bool, np.bool_)) else v


def _profiles(res, xr) -> dict[str, Any]:
    out = {}
    for name, arr in res.profiles.items():
        edges = res.profile_edges[name]
        dim = f"{name}_bin"
        out[name] = xr.Variable(("replicate", "time", dim), arr, _attrs(res, f"/profiles/{name}"))
        out[f"{name}_bin_edges"] = xr.Variable((f"{name}_bin_edge",), edges,
                                               _attrs(res, f"/profiles/bin_edges/{name}"))
    return out


def to_xarray(res) -> Any:
    """``res`` (a :class:`gpusim.io.Results`) as an ``xarray.Dataset``; see the module text.

    Raises MissingExtraError (one line) when xarray is not installed.
    """
    xr = _xarray()
    first = int(res.attrs.get("first_replicate", 0))
    rs = next(iter(res.snapshots.values())).shape[1] if res.snapshots else 0
    coords = {"replicate": ("replicate", np.arange(first, first + res.replicates),
                            {"description": "global replicate index"}),
              "time": ("time", res.time_days, _attrs(res, "/timeseries/time_days")),
              "snapshot_time": ("snapshot_time", res.snapshot_times, _attrs(res, "/snapshots/time_days")),
              "snapshot_replicate": ("snapshot_replicate", np.arange(first, first + rs),
                                     {"description": "global replicate index (the first Rs replicates)"})}
    for name, edges in res.profile_edges.items():
        coords[f"{name}_bin"] = (f"{name}_bin", (edges[1:] + edges[:-1]) / 2,
                                 {"units": res.units.get(f"/profiles/bin_edges/{name}", ""),
                                  "description": "bin centre"})
    data: dict[str, Any] = {}
    for name, arr in res.timeseries.items():
        data[name] = xr.Variable(("replicate", "time"), arr, _attrs(res, f"/timeseries/{name}"))
    for name, arr in res.events.items():
        data[f"event_{name}"] = xr.Variable(("replicate", "time"), arr, _attrs(res, f"/events/{name}"))
    data.update(_profiles(res, xr))
    for name, arr in res.snapshots.items():
        data[f"snapshot_{name}"] = xr.Variable(("snapshot_time", "snapshot_replicate", "z", "y", "x"), arr,
                                               _attrs(res, f"/snapshots/{name}"))
    for name, arr in res.endpoints.items():
        data[f"endpoint_{name}"] = xr.Variable(("replicate",), arr, _attrs(res, f"/endpoints/{name}"))
    attrs = {k: _attr_value(v) for k, v in res.attrs.items()}
    attrs["scenario_toml"] = res.scenario_toml
    return xr.Dataset(data, coords=coords, attrs=attrs)

"""Observations of the host state: infiltration depth, radial profiles, exhaustion histogram,
soluble-signal summaries, and the endpoints derived from the output time series (time to
progression, CAR-T persistence, signal peaks).

Everything here only reads NumPy arrays (the host state ``Simulation.state`` or stored time
series); nothing draws a random number or changes the state, so the outputs are the same on
every backend and cannot change the dynamics.  Definitions (also in docs/io_format.md):

* **Tumour mass**: the voxels whose tissue slot holds a tumour cell or necrotic debris
  (``Kind.TUMOUR``, ``Kind.NECROTIC``), closed morphologically by ``outputs.boundary_closing_voxels``
  (a cube: dilation then erosion) so that small holes left by killed cells are inside the mass.
* **Boundary and depth**: the boundary is the set of faces between tumour-mass voxels and other
  voxels (the domain's outer faces are not boundary).  The signed depth of a voxel centre is
  ``+ (d_out - h/2)`` inside the tumour mass, where ``d_out`` is the Euclidean distance (µm) from
  its centre to the nearest centre of a voxel outside the mass, and ``- (d_in - h/2)`` outside it,
  with ``d_in`` the distance to the nearest tumour-mass voxel centre (``h``: voxel edge).  A
  voxel on the rim of the mass has depth ``+h/2``, the voxel just outside ``-h/2``: the distance
  from a flat boundary, positive inward.  Distances are the exact Euclidean distance transform on
  the lattice (:func:`edt_sq`, NumPy only).
* **Radial shells**: distance of a voxel centre from the initial nodule centre
  (``tumour.centre_*_fraction``), in equal-width shells from 0 to the largest such distance in the
  domain.
"""

from __future__ import annotations

import numpy as np

from .lattice import Kind, dilate

#: exhaustion histogram: 10 equal bins over [0, 1]; the last bin includes 1
EXHAUSTION_EDGES = np.linspace(0.0, 1.0, 11)
#: depth quantiles reported (as fractions)
DEPTH_QUANTILES = (0.1, 0.5, 0.9)
#: soluble signals summarised: state array -> label
SIGNALS = {"ifng": "IFN-γ", "il12": "IL-12", "tgfb": "TGF-β"}


# -- Euclidean distance transform ---------------------------------------------------------------
def _scan_axis0(feature: np.ndarray, h: float) -> np.ndarray:
    """Squared distance (µm²) along axis 0 to the nearest True of ``feature`` in the same line
    (inf where the line has none).  O(n) scans, few temporaries (see :func:`work_bytes`)."""
    n = feature.shape[0]
    if n == 1:
        return np.where(feature, 0.0, np.inf)
    idx = np.arange(n, dtype=np.float64).reshape((n,) + (1,) * (feature.ndim - 1))
    d = np.where(feature, idx, -np.inf)
    np.maximum.accumulate(d, axis=0, out=d)
    np.subtract(idx, d, out=d)  # distance to the nearest feature at or before
    right = np.where(feature, idx, np.inf)
    right = np.flip(right, axis=0)
    np.minimum.accumulate(right, axis=0, out=right)
    right = np.flip(right, axis=0)
    right -= idx  # distance to the nearest feature at or after
    np.minimum(d, right, out=d)
    del right
    d *= h
    d *= d
    return d


def _minplus_axis(f: np.ndarray, axis: int, h: float) -> np.ndarray:
    """``g(x) = min_i f(i) + ((x - i) h)²`` along ``axis`` (the 1D step of a separable squared
    EDT), by increasing offsets, stopping once the offset's cost reaches the largest value (every
    value finite)."""
    f = np.moveaxis(f, axis, 0)
    n = f.shape[0]
    g = f.copy()
    tmp = np.empty_like(f[1:])
    for k in range(1, n):
        c = (k * h) ** 2
        if c >= g.max():  # inf while some value is still inf
            break
        t = tmp[: n - k]
        np.add(f[:-k], c, out=t)
        np.minimum(g[k:], t, out=g[k:])
        np.add(f[k:], c, out=t)
        np.minimum(g[:-k], t, out=g[:-k])
    return np.moveaxis(g, 0, axis)


def work_bytes(shape: tuple[int, int, int]) -> int:
    """Bytes of the largest working set of the depth computation of one replicate on a lattice of
    ``shape``: four float64 lattice arrays (scan, min-plus pass and its temporary, result) and
    four bool ones (the mass, its complement, the closing's two buffers); memory.estimate adds it,
    with the observer's shell index (int64 per voxel)."""
    V = int(np.prod(shape))
    return V * (4 * 8 + 4 * 1)


def edt_sq(feature: np.ndarray, h: float, points: tuple | None = None) -> np.ndarray:
    """Exact squared Euclidean distance (µm²) from voxel centres to the nearest True voxel centre
    of ``feature`` (Z, Y, X); inf when ``feature`` has no True voxel.

    With ``points`` (a tuple of index arrays ``(z, y, x)``) only those voxels' values are
    returned (the last axis is then evaluated at the points only)."""
    f = _scan_axis0(np.asarray(feature, dtype=bool), h)
    f = _minplus_axis(f, 1, h)
    if points is None:
        return _minplus_axis(f, 2, h)
    z, y, x = (np.asarray(p, dtype=np.int64) for p in points)
    out = np.empty(z.size, dtype=np.float64)
    X = f.shape[2]
    cols = np.arange(X, dtype=np.float64)
    step = max(1, (1 << 22) // max(X, 1))
    for a in range(0, z.size, step):
        b = min(z.size, a + step)
        rows = f[z[a:b], y[a:b], :]
        out[a:b] = (rows + ((x[a:b, None] - cols[None, :]) * h) ** 2).min(axis=1)
    return out


def tumour_mass(kind: np.ndarray, closing: int = 0) -> np.ndarray:
    """Boolean (Z, Y, X) mask of the tumour mass: voxels holding a tumour cell or necrotic debris,
    morphologically closed by a cube of half-width ``closing`` voxels (dilation, then erosion), so
    that holes and channels narrower than about ``2 closing + 1`` voxels (killed cells, single
    T cells' paths) count as inside the tumour, not as boundary."""
    m = (kind == Kind.TUMOUR) | (kind == Kind.NECROTIC)
    if closing > 0 and m.any():
        m = ~dilate(~dilate(m, closing), closing)
    return m


def signed_depth(mass: np.ndarray, h: float, flat_pos: np.ndarray) -> np.ndarray:
    """Signed depth (µm, inward positive) of the voxels ``flat_pos`` of one replicate's lattice
    (``mass``: (Z, Y, X) tumour-mass mask); NaN if there is no tumour mass, or (inside) no voxel
    outside it."""
    flat_pos = np.asarray(flat_pos, dtype=np.int64)
    out = np.full(flat_pos.size, np.nan)
    if flat_pos.size == 0 or not mass.any():
        return out
    zyx = np.unravel_index(flat_pos, mass.shape)
    inside = mass.reshape(-1)[flat_pos]
    if inside.any():
        pts = tuple(a[inside] for a in zyx)
        d = np.sqrt(edt_sq(~mass, h, pts))
        out[inside] = np.where(np.isfinite(d), d - 0.5 * h, np.nan)
    if (~inside).any():
        pts = tuple(a[~inside] for a in zyx)
        out[~inside] = -(np.sqrt(edt_sq(mass, h, pts)) - 0.5 * h)
    return out


def _quantile(s: np.ndarray, q: float) -> float:
    """Quantile ``q`` of the sorted sample ``s`` by linear interpolation between order statistics
    (NumPy's default method; written out so that no NumPy submodule is imported mid-run)."""
    pos = q * (s.size - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, s.size - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def depth_stats(depths: np.ndarray) -> dict[str, float]:
    """Mean and :data:`DEPTH_QUANTILES` (NumPy's linear quantiles) of finite depths; NaN if none."""
    d = np.sort(depths[np.isfinite(depths)])
    out = {"mean": float(d.mean()) if d.size else np.nan}
    for q in DEPTH_QUANTILES:
        out[f"p{round(q * 100)}"] = _quantile(d, q) if d.size else np.nan
    return out


def radial_edges(distance: np.ndarray, nbins: int) -> np.ndarray:
    """``nbins`` equal shells from 0 to the largest voxel-centre distance (µm), ``nbins + 1`` edges."""
    dmax = float(np.max(distance)) if np.size(distance) else 0.0
    return np.linspace(0.0, dmax if dmax > 0 else 1.0, nbins + 1)


def shell_index(distance: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shell of every voxel (flat int64); the outermost edge belongs to the last shell."""
    nb = edges.size - 1
    return np.clip(np.searchsorted(edges, np.ravel(distance), side="right") - 1, 0, nb - 1).astype(np.int64)


def histogram_counts(values: np.ndarray, rows: np.ndarray, edges: np.ndarray, R: int) -> np.ndarray:
    """int64 (R, nbins): count of ``values`` (row ``rows``) per bin [e_i, e_i+1), the last bin
    closed; values outside the edges are clipped into the end bins."""
    nb = edges.size - 1
    b = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, nb - 1)
    return np.bincount(rows * nb + b, minlength=R * nb).reshape(R, nb).astype(np.int64)


class Observer:
    """The observation outputs of a :class:`gpusim.engine.Simulation` (built once per run)."""

    def __init__(self, scenario, shape: tuple[int, int, int]):
        from .tissue import tumour_geometry

        self.h = float(scenario["domain.voxel_um"])
        self.shape = tuple(shape)
        d, _ = tumour_geometry(scenario)
        d = np.broadcast_to(d, self.shape)
        self.radial_edges = radial_edges(d, int(scenario["outputs.profile_bins"]))
        self.shell = shell_index(d, self.radial_edges)  # (V,)
        self.shell_voxels = np.bincount(self.shell, minlength=self.radial_edges.size - 1)
        self.closing = int(scenario["outputs.boundary_closing_voxels"])
        from ..scenario import dose_plan, products
        self.products = products(scenario)  # the target rule of each product id
        self.doses = [f"{d.route} day {d.day:g} {d.targets}" for d in dose_plan(scenario)] or ["none"]

    # -- per output interval --------------------------------------------------------------------
    def depth_metrics(self, st, rows: np.ndarray, slots: np.ndarray) -> dict[str, np.ndarray]:
        R = st.kind.shape[0]
        cols = {k: np.full(R, np.nan) for k in ("mean", *(f"p{round(q * 100)}" for q in DEPTH_QUANTILES))}
        inside = np.full(R, np.nan)
        for r in range(R):
            pos = st.t_pos[r, slots[rows == r]]
            if pos.size == 0:
                continue
            dep = signed_depth(tumour_mass(st.kind[r], self.closing), self.h, pos)
            for k, v in depth_stats(dep).items():
                cols[k][r] = v
            fin = np.isfinite(dep)
            if fin.any():
                inside[r] = float(np.mean(dep[fin] > 0))
        out = {f"infiltration_depth_{k}_um": v for k, v in cols.items()}
        out["car_t_inside_tumour_fraction"] = inside
        return out

    def profiles(self, st, rows: np.ndarray, slots: np.ndarray) -> dict[str, np.ndarray]:
        R = st.kind.shape[0]
        nb = self.radial_edges.size - 1
        tum = (st.kind.reshape(R, -1) == Kind.TUMOUR)
        rr, vv = np.nonzero(tum)
        tumour = np.bincount(rr * nb + self.shell[vv], minlength=R * nb).reshape(R, nb)
        pos = st.t_pos[rows, slots].astype(np.int64)
        car = np.bincount(rows * nb + self.shell[pos], minlength=R * nb).reshape(R, nb)
        exh = histogram_counts(st.t_exh[rows, slots].astype(np.float64), rows, EXHAUSTION_EDGES, R)
        P = len(self.products)
        prod = np.bincount(rows * P + st.t_prod[rows, slots], minlength=R * P).reshape(R, P)
        return {"car_t_radial": car.astype(np.int64), "tumour_radial": tumour.astype(np.int64),
                "exhaustion_histogram": exh, "car_t_product": prod.astype(np.int64),
                "entered_product": st.entered_product.astype(np.int64),
                "entered_dose": st.entered_dose.astype(np.int64)}

    @staticmethod
    def signal_metrics(st) -> dict[str, np.ndarray]:
        R = st.kind.shape[0]
        out = {}
        for k in SIGNALS:
            a = getattr(st, k).reshape(R, -1)
            out[f"mean_{k}"] = a.mean(axis=1, dtype=np.float64)
            out[f"max_{k}"] = a.max(axis=1).astype(np.float64)
        return out


def profile_specs(observer: "Observer | None" = None) -> dict[str, tuple]:
    """``name -> (edges, edge_units, edge_description, units, description)`` of the profiles."""
    radial = observer.radial_edges if observer is not None else None
    shell = "distance of the voxel centre from the initial nodule centre (tumour.centre_*_fraction)"
    prods = observer.products if observer is not None else None
    pedges = None if prods is None else np.arange(len(prods) + 1, dtype=np.float64)
    named = "" if prods is None else ": " + ", ".join(f"{k} = '{t}'" for k, t in enumerate(prods))
    pdesc = ("product id k in bin [k, k+1), the target rule of the doses that brought the cells "
             f"in (product 0: car_t.targets){named}")
    doses = observer.doses if observer is not None else None
    dedges = None if doses is None else np.arange(len(doses) + 1, dtype=np.float64)
    dnamed = "" if doses is None else ": " + ", ".join(f"{k} = '{t}'" for k, t in enumerate(doses))
    ddesc = f"dose id k in bin [k, k+1), the doses in the schedule's order (route day product){dnamed}"
    return {
        "car_t_radial": (radial, "µm", f"radial shell edges: {shell}", "cells",
                         "CAR-T cells in the domain per radial shell from the tumour centre"),
        "tumour_radial": (radial, "µm", f"radial shell edges: {shell}", "cells",
                          "live tumour cells per radial shell from the tumour centre"),
        "exhaustion_histogram": (EXHAUSTION_EDGES, "fraction",
                                 "exhaustion bin edges: 10 equal bins, [e_i, e_i+1), the last closed",
                                 "cells", "CAR-T cells in the domain per exhaustion bin"),
        "car_t_product": (pedges, "1", pdesc, "cells", "CAR-T cells in the domain per product"),
        "entered_product": (pedges, "1", pdesc, "cells",
                            "CAR-T cells of each product that entered the domain so far (cumulative, "
                            "all routes)"),
        "entered_dose": (dedges, "1", ddesc, "cells",
                         "CAR-T cells of each dose that entered the domain so far (cumulative, all "
                         "routes; a product's doses share its pools and an entrant is attributed to "
                         "one of them in proportion to their cells in the pool it left)"),
    }


# -- endpoints from the output time series ------------------------------------------------------
def progression(time_days: np.ndarray, tumour: np.ndarray, multiple: float) -> tuple[np.ndarray, np.ndarray]:
    """Time to progression on the output series ``tumour`` (R, T) at ``time_days`` (T,).

    The running nadir at output k is the smallest tumour size at outputs 0..k.  Progression is
    the first output time at which the tumour exceeds ``multiple`` × its running nadir (strictly,
    and is not empty).  Returns (time (R,) float64, NaN when censored: no progression by the last
    output; event (R,) int8, 1 when progression was observed)."""
    tumour = np.asarray(tumour, dtype=np.float64)
    R = tumour.shape[0]
    ttp = np.full(R, np.nan)
    if tumour.shape[1] == 0:
        return ttp, np.zeros(R, np.int8)
    nadir = np.minimum.accumulate(tumour, axis=1)
    hit = (tumour > multiple * nadir) & (tumour > 0)
    any_hit = hit.any(axis=1)
    first = np.argmax(hit, axis=1)
    ttp[any_hit] = np.asarray(time_days, dtype=np.float64)[first[any_hit]]
    return ttp, any_hit.astype(np.int8)


def persistence(time_days: np.ndarray, functional: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """CAR-T persistence on the output series ``functional`` (R, T): functional CAR-T cells
    (effector + memory in the domain, plus the blood pool).

    Persistence is the last output time at which ``functional`` was at least ``fraction`` × its
    peak over all outputs (0 if there never was a cell); censored (flag 1) when it still is at the
    last output, i.e. the cells had not contracted below that level by the end of the run.
    Returns (days (R,) float64, censored (R,) int8)."""
    f = np.asarray(functional, dtype=np.float64)
    t = np.asarray(time_days, dtype=np.float64)
    R, T = f.shape
    days = np.zeros(R)
    cens = np.zeros(R, np.int8)
    if T == 0:
        return days, cens
    peak = f.max(axis=1)
    above = (f >= fraction * peak[:, None]) & (peak[:, None] > 0)
    has = above.any(axis=1)
    last = T - 1 - np.argmax(above[:, ::-1], axis=1)
    days[has] = t[last[has]]
    cens[has & above[:, -1]] = 1
    return days, cens


def series_endpoints(time_days: np.ndarray, ts: dict[str, np.ndarray], multiple: float,
                     fraction: float) -> dict[str, np.ndarray]:
    """The endpoints computed from the output time series (see SERIES_ENDPOINTS in engine)."""
    ttp, ev = progression(time_days, ts["tumour_cells"], multiple)
    functional = (np.asarray(ts["car_t_tissue"], np.float64) - ts["car_t_exhausted"] + ts["car_t_blood"])
    pers, cens = persistence(time_days, functional, fraction)
    out = {"time_to_progression_days": ttp, "progressed": ev,
           "car_t_persistence_days": pers, "car_t_persistence_censored": cens}
    for k in SIGNALS:
        for stat in ("mean", "max"):
            a = np.asarray(ts[f"{stat}_{k}"], dtype=np.float64)
            out[f"peak_{stat}_{k}"] = a.max(axis=1) if a.shape[1] else np.full(a.shape[0], np.nan)
    return out


"""States built for the validation cases: blank lattices, founder cells, stirring."""

from __future__ import annotations

import functools
import numpy as np

from .core import scenario


@functools.lru_cache(maxsize=1)
def state_template() -> dict:
    """dtype, kind (lattice / agent / per replicate) and fill value of every state array, read off
    a tiny engine Simulation, so that states built here follow the engine's layout."""
    from ..engine import STATE_ARRAYS, Simulation

    sc = scenario({"domain.x_voxels": 3, "domain.y_voxels": 3, "domain.z_voxels": 1,
                   "tumour.radius_um": 0.0, "healthy.cell_fraction": 0.0,
                   "vessels.density_normal_fraction": 0.0, "vessels.density_tumour_fraction": 0.0,
                   "car_t.capacity_per_replicate": 2, "delivery.dose_cells": 0.0})
    st = Simulation(sc, replicates=1).state
    lat = st.kind.shape
    out = {}
    for k in STATE_ARRAYS:
        a = np.asarray(getattr(st, k))
        if a.shape == lat:
            out[k] = ("lattice", a.dtype, 0)
        elif a.ndim == 2 and a.shape[1] == st.t_state.shape[1]:
            out[k] = ("agent", a.dtype, a[0, -1])  # padding value of an empty slot
        else:
            out[k] = ("replicate", a.dtype, 0, a.shape[1:])
    return out


def blank_state(shape, R: int, capacity: int = 1, o2: float = 38.0, glucose: float = 5.0,
                 first: int = 0):
    """An engine State with no cells, no ECM, no signals, uniform oxygen and glucose."""
    from ..engine import State

    arrays = {}
    for k, spec in state_template().items():
        if spec[0] == "lattice":
            arrays[k] = np.zeros((R,) + tuple(shape), spec[1])
        elif spec[0] == "agent":
            arrays[k] = np.full((R, capacity), spec[2], spec[1])
        else:
            arrays[k] = np.zeros((R,) + spec[3], spec[1])
    arrays["o2"][:] = o2
    arrays["glucose"][:] = glucose
    return State(arrays, np.arange(first, first + R, dtype=np.int64), 0)


def lineage_lattice(G: int, s: int, R: int, first: int):
    """3D lattice of G^3 blocks of edge s per replicate, one founder at each block centre."""
    shape = (G * s,) * 3
    st = blank_state(shape, R, first=first)
    c = np.arange(G) * s + s // 2
    v = np.ravel_multi_index(np.meshgrid(c, c, c, indexing="ij"), shape).ravel()
    place_tumour(st, np.arange(R)[:, None], v[None, :])
    return st


def place_tumour(st, r, v) -> None:
    """Put antigen-A+B+ tumour cells (levels and baselines 1.0) at the flat voxels ``v`` of
    replicates ``r`` (index arrays broadcast together)."""
    R = st.kind.shape[0]
    st.kind.reshape(R, -1)[r, v] = 1  # Kind.TUMOUR
    for k in ("antigen_a", "antigen_b", "antigen_a_base", "antigen_b_base"):
        getattr(st, k).reshape(R, -1)[r, v] = 100


def per_block(mask: np.ndarray, G: int, s: int) -> np.ndarray:
    R = mask.shape[0]
    return mask.reshape(R, G, s, G, s, G, s).sum(axis=(2, 4, 6)).reshape(-1)

#: per-cell lattice arrays: what a tissue cell carries when it is moved
CELL_ARRAYS = ("kind", "antigen_a", "antigen_b", "antigen_a_base", "antigen_b_base", "pdl1")


def stir(st, gen: np.random.Generator, block: int, margin: int = 0) -> None:
    """The well-mixed limit realised on the lattice: move every tissue cell (with its per-cell
    arrays, ``CELL_ARRAYS``) to a uniformly random voxel of its own cubic block of edge
    ``block`` (``block`` = the lattice edge: one block), at least ``margin`` voxels inside the
    block's faces; all cells of a replicate end on distinct voxels.

    Called between two engine steps, it removes the spatial structure that the non-spatial
    references lack (clusters of relatives, whose daughters compete for the same free voxels,
    and cells boxed in by their relatives); the engine's phases still do all the biology.  With
    ``margin`` >= 1 a cell's daughter lands inside its block, so lineages grown in separate
    blocks never mix.  ``gen`` is the validation's own generator, not an engine stream."""
    R = st.kind.shape[0]
    shape = st.kind.shape[1:]
    V = st.nvox
    kind = st.kind.reshape(R, V)
    r, v = np.nonzero(kind)
    if r.size == 0:
        return
    coords = np.stack(np.unravel_index(v, shape), axis=-1)
    edge = np.minimum(block, np.array(shape))
    inner = edge - 2 * margin
    if (inner < 1).any():
        raise ValueError(f"block {block} leaves no interior with margin {margin}")
    base = (coords // edge) * edge + margin
    new = np.full(r.size, -1, dtype=np.int64)
    taken = np.zeros(R * V, dtype=bool)
    todo = np.arange(r.size)
    while todo.size:  # rejection: redraw the cells whose voxel another cell took
        c = base[todo] + gen.integers(0, inner, size=(todo.size, 3))
        g = r[todo] * V + np.ravel_multi_index(tuple(c.T), shape)
        ok = np.zeros(todo.size, dtype=bool)
        ok[np.unique(g, return_index=True)[1]] = True
        ok &= ~taken[g]
        taken[g[ok]] = True
        new[todo[ok]] = g[ok] - r[todo[ok]] * V
        todo = todo[~ok]
    for k in CELL_ARRAYS:
        a = getattr(st, k).reshape(R, V)
        vals = a[r, v].copy()
        a[r, v] = 0
        a[r, new] = vals


def place_grid(st, spacing: int):
    """One CAR-T cell at the centre of every spacing x spacing block of a 2D lattice."""
    R = st.kind.shape[0]
    _, Y, X = st.kind.shape[1:]
    ys = np.arange(Y // spacing) * spacing + spacing // 2
    xs = np.arange(X // spacing) * spacing + spacing // 2
    pos = (ys[:, None] * X + xs[None, :]).ravel()
    n = pos.size
    st.t_state[:, :n] = 1  # TState.EFFECTOR
    st.t_pos[:, :n] = pos
    st.t_count[:] = n
    return pos


def stir_agents(st, gen: np.random.Generator, spacing: int = 3) -> None:
    """Move every live CAR-T cell of a 2D lattice to a uniformly random site of the coarse grid
    (spacing·i + 1, spacing·j + 1), distinct sites: with spacing 3 the 3x3 neighbourhoods of
    two cells never overlap and always lie inside the lattice, so no two cells ever compete for
    a target or a daughter's voxel and every cell sees exactly 9 voxels."""
    R = st.kind.shape[0]
    _, Y, X = st.kind.shape[1:]
    gy, gx = Y // spacing, X // spacing
    for r in range(R):
        n = int(st.t_count[r])
        if n > gy * gx:
            raise ValueError(f"{n} CAR-T cells do not fit on {gy * gx} sites")
        site = gen.choice(gy * gx, n, replace=False)
        st.t_pos[r, :n] = (spacing * (site // gx) + 1) * X + spacing * (site % gx) + 1
        st.t_dir[r, :n] = -1

"""The lattice: cell kinds, voxel indexing, the Moore neighbourhood and box dilation.

A voxel is addressed within its replicate by the flat index ``v = (z * Y + y) * X + x``; across a
batch by ``r * V + v``.  Neighbour offsets are listed in one fixed order (lexicographic in
(dz, dy, dx), the centre left out), which every phase and the CUDA kernels share.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Kind(IntEnum):
    """What a voxel's tissue slot holds (uint8)."""

    EMPTY = 0
    TUMOUR = 1
    HEALTHY = 2
    FIBROBLAST = 3
    APOPTOTIC = 4  #: dying cell (also a cell killed by CAR-T); frees the voxel after clearance
    NECROTIC = 5  #: necrotic debris; cleared slowly
    VESSEL = 6  #: a vessel voxel: supplies oxygen and glucose, entry point of CAR-T cells


class TState(IntEnum):
    """CAR-T agent state (uint8)."""

    NONE = 0  #: empty slot
    EFFECTOR = 1
    EXHAUSTED = 2
    MEMORY = 3  #: memory phenotype: no killing or division; reactivated by a recognised target


#: antigen level = stored uint8 / ANTIGEN_SCALE (0 = antigen-negative; 255 -> 2.55)
ANTIGEN_SCALE = 100.0


def to_host(a) -> np.ndarray:
    """A NumPy array of ``a``: a device (CuPy) array is copied to the host, a NumPy array returned."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def moore_offsets(nz: int) -> np.ndarray:
    """(K, 3) int offsets (dz, dy, dx) of the Moore neighbourhood: K = 8 in 2D, 26 in 3D."""
    dzs = (0,) if nz == 1 else (-1, 0, 1)
    return np.array([(dz, dy, dx) for dz in dzs for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if (dz, dy, dx) != (0, 0, 0)], dtype=np.int64)


def coords(v: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, y, x) of flat voxel indices ``v`` within a replicate."""
    _, ny, nx = shape
    x = v % nx
    t = v // nx
    return t // ny, t % ny, x


def neighbours(v: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Moore neighbours of voxels ``v`` (1-D int64).

    Returns ``(nb, valid)``, both (n, K): flat indices (arbitrary where not valid) and whether the
    neighbour lies inside the domain.
    """
    nz, ny, nx = shape
    off = moore_offsets(nz)
    z, y, x = coords(v, shape)
    zz = z[:, None] + off[:, 0]
    yy = y[:, None] + off[:, 1]
    xx = x[:, None] + off[:, 2]
    valid = (zz >= 0) & (zz < nz) & (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    nb = (zz * ny + yy) * nx + xx
    return np.where(valid, nb, v[:, None]), valid


def voxel_centres_um(shape: tuple[int, int, int], voxel_um: float):
    """Broadcastable (Z,1,1), (1,Y,1), (1,1,X) voxel-centre coordinates in µm."""
    nz, ny, nx = shape
    z = (np.arange(nz, dtype=np.float64) + 0.5) * voxel_um
    y = (np.arange(ny, dtype=np.float64) + 0.5) * voxel_um
    x = (np.arange(nx, dtype=np.float64) + 0.5) * voxel_um
    return z[:, None, None], y[None, :, None], x[None, None, :]


def resolve_claims(target: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Claims: several claimants may want the same voxel; the smallest 64-bit key wins.

    ``target`` (int64, global voxel index ``r * V + v``) and ``key`` (uint64, ``priority << 32 |
    claimant index``, unique per target) are 1-D and aligned.  Returns the boolean winner mask.
    Equivalent to ``atomicMin`` on a lattice of claims (the CUDA kernels) or ``np.minimum.at``,
    but costs O(n log n) in the claimants only.
    """
    n = target.size
    win = np.zeros(n, dtype=bool)
    if n == 0:
        return win
    order = np.lexsort((key, target))
    t = target[order]
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(t[1:], t[:-1], out=first[1:])
    win[order[first]] = True
    return win


def dilate(mask, radius: int):
    """Dilation by a cube of half-width ``radius`` voxels (Chebyshev distance).

    Parameters
    ----------
    mask : numpy.ndarray or cupy.ndarray
        Boolean, shape (..., Z, Y, X): any leading (batch) axes, then the lattice.
    radius : int
        Half-width of the cube, in voxels; z is left out when Z = 1 (a 2D lattice).

    Returns
    -------
    array of the same module, shape and dtype
        True where a voxel of ``mask`` lies within the cube; voxels beyond the domain count as
        absent.
    """
    out = mask.copy()
    lead = mask.ndim - 3
    for ax in range(lead + (1 if mask.shape[lead] == 1 else 0), mask.ndim):
        cur = out.copy()
        n = mask.shape[ax]
        for d in range(1, min(radius, n - 1) + 1):
            a = [slice(None)] * mask.ndim
            b = [slice(None)] * mask.ndim
            a[ax], b[ax] = slice(d, None), slice(None, n - d)
            out[tuple(a)] |= cur[tuple(b)]
            out[tuple(b)] |= cur[tuple(a)]
    return out

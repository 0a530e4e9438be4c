"""Initial tissue: tumour nodule, capsule and septa, vessels, healthy tissue, antigen landscape.

Built once per replicate on the host (NumPy, for every backend) from Philox words keyed by
(seed, replicate), so a replicate's tissue does not depend on its batch.  Per voxel ``v``:
block (v, draw 0) of stream INIT_TISSUE gives words: 0 vessel, 1 cell present (healthy or
fibroblast), 2 subclone, 3 antigen-A level; block (v, draw 1) gives 0 antigen-B level,
1 healthy antigen A, 2 healthy antigen B.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from .. import rng
from ..rng import Stream
from ..scenario import Scenario
from .lattice import ANTIGEN_SCALE, Kind, voxel_centres_um


@lru_cache(maxsize=16)
def level_table(mean: float, sd: float) -> np.ndarray:
    """uint8 antigen level for each 16-bit quantile index: a lognormal of the given mean and sd.

    Positive cells keep a level of at least 1/ANTIGEN_SCALE so they stay positive.
    """
    if sd == 0:
        q = np.full(65536, mean)
    else:
        s2 = math.log(1.0 + (sd / mean) ** 2)
        mu, s = math.log(mean) - 0.5 * s2, math.sqrt(s2)
        nd = NormalDist()
        q = np.array([math.exp(mu + s * nd.inv_cdf((k + 0.5) / 65536)) for k in range(65536)])
    return np.clip(np.rint(q * ANTIGEN_SCALE), 1, 255).astype(np.uint8)


def tumour_centre_um(sc: Scenario) -> tuple[float, float, float]:
    """(z, y, x) of the nodule centre in µm (in 2D, z is the centre of the single layer)."""
    nz, ny, nx = sc.shape
    h = sc["domain.voxel_um"]
    cz = sc["tumour.centre_z_fraction"] * nz * h if nz > 1 else 0.5 * h
    return cz, sc["tumour.centre_y_fraction"] * ny * h, sc["tumour.centre_x_fraction"] * nx * h


def tumour_geometry(sc: Scenario):
    """Distance (µm) of every voxel centre from the nodule centre, shape (Z, Y, X), and the centre."""
    z, y, x = voxel_centres_um(sc.shape, sc["domain.voxel_um"])
    cz, cy, cx = tumour_centre_um(sc)
    d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
    return d, (cz, cy, cx)


def _septa(sc: Scenario, seed: int, rep: int, dist: np.ndarray, centre) -> np.ndarray:
    """Boolean (Z,Y,X) mask of septa: strands from the capsule inwards along random directions."""
    n = sc["stroma.septa_count"]
    out = np.zeros(dist.shape, dtype=bool)
    radius = sc["tumour.radius_um"]
    if n == 0 or radius <= 0 or sc["stroma.septa_width_um"] <= 0:
        return out
    b = rng.blocks(seed, rep, 0, Stream.INIT_SEPTA, np.arange(n)).astype(np.float64) / rng.TWO32
    z, y, x = voxel_centres_um(sc.shape, sc["domain.voxel_um"])
    cz, cy, cx = centre
    px, py, pz = x - cx, y - cy, z - cz
    outer = radius + sc["stroma.capsule_thickness_um"]
    half_w = 0.5 * sc["stroma.septa_width_um"]
    for i in range(n):
        if sc.shape[0] == 1:
            ang = 2 * math.pi * b[i, 0]
            d = (math.cos(ang), math.sin(ang), 0.0)
        else:
            cos_t = 2 * b[i, 0] - 1
            sin_t = math.sqrt(max(0.0, 1 - cos_t * cos_t))
            phi = 2 * math.pi * b[i, 1]
            d = (sin_t * math.cos(phi), sin_t * math.sin(phi), cos_t)
        length = min(radius, sc["stroma.septa_length_fraction"] * radius * (0.5 + b[i, 2]))
        t = px * d[0] + py * d[1] + pz * d[2]  # projection on the strand's axis
        perp2 = px * px + py * py + pz * pz - t * t
        out |= (t >= radius - length) & (t <= outer) & (perp2 <= half_w * half_w)
    return out


def _patch_subclone(sc: Scenario, seed: int, rep: int, shape, cum: np.ndarray) -> np.ndarray:
    """Subclone index (Z,Y,X) of the nearest of ``patch_count`` random patch centres."""
    n = sc["tumour.patch_count"]
    b = rng.blocks(seed, rep, 0, Stream.INIT_PATCHES, np.arange(n))
    nz, ny, nx = shape
    pz = rng.choose(b[:, 0], nz)
    py = rng.choose(b[:, 1], ny)
    px = rng.choose(b[:, 2], nx)
    sub = np.searchsorted(cum, b[:, 3].astype(np.uint64), side="right")
    z = np.arange(nz)[:, None, None]
    y = np.arange(ny)[None, :, None]
    x = np.arange(nx)[None, None, :]
    best = np.full(shape, np.iinfo(np.int64).max, dtype=np.int64)
    out = np.zeros(shape, dtype=np.int64)
    for i in range(n):  # ties go to the lower patch index
        d2 = (z - pz[i]) ** 2 + (y - py[i]) ** 2 + (x - px[i]) ** 2
        closer = d2 < best
        best = np.where(closer, d2, best)
        out = np.where(closer, sub[i], out)
    return out


def initial_tissue(sc: Scenario, seed: int, rep: int) -> dict[str, np.ndarray]:
    """Tissue of one replicate: ``kind``, ``antigen_a``, ``antigen_b`` (uint8) and ``ecm``
    (float32), each of shape (Z, Y, X)."""
    shape = sc.shape
    nvox = int(np.prod(shape))
    dist, centre = tumour_geometry(sc)
    radius = sc["tumour.radius_um"]
    in_tumour = dist <= radius
    capsule = (~in_tumour) & (dist <= radius + sc["stroma.capsule_thickness_um"])
    ecm = np.full(shape, sc["stroma.background_density"], dtype=np.float32)
    ecm[capsule] = np.float32(sc["stroma.capsule_density"])
    septa = _septa(sc, seed, rep, dist, centre)
    ecm = np.where(septa, np.maximum(ecm, np.float32(sc["stroma.septa_density"])), ecm).astype(np.float32)

    v = np.arange(nvox)
    w = rng.blocks(seed, rep, 0, Stream.INIT_TISSUE, v).reshape(shape + (4,))
    w1 = rng.blocks(seed, rep, 0, Stream.INIT_TISSUE, v, draw=1).reshape(shape + (4,))

    dense = ecm > np.float32(sc["stroma.block_density"])
    core = dist <= sc["vessels.core_radius_fraction"] * radius
    p_vessel = np.where(in_tumour, sc["vessels.density_tumour_fraction"],
                        sc["vessels.density_normal_fraction"]).astype(np.float32)
    vessel = rng.below(w[..., 0], p_vessel) & ~core & ~capsule & ~dense

    kind = np.zeros(shape, dtype=np.uint8)
    kind[in_tumour & ~dense] = Kind.TUMOUR
    fib = dense & (ecm >= np.float32(sc["stroma.fibroblast_density"])) & rng.below(
        w[..., 1], np.float32(sc["stroma.fibroblast_fraction"]))
    kind[fib] = Kind.FIBROBLAST
    healthy = ~in_tumour & ~dense & rng.below(w[..., 1], np.float32(sc["healthy.cell_fraction"]))
    kind[healthy] = Kind.HEALTHY
    kind[vessel] = Kind.VESSEL

    # subclones: 0 A+B+, 1 A+B-, 2 A-B+, 3 A-B-  (cumulative uint64 thresholds)
    fr = np.array([sc["tumour.fraction_a_pos_b_pos"], sc["tumour.fraction_a_pos_b_neg"],
                   sc["tumour.fraction_a_neg_b_pos"], sc["tumour.fraction_a_neg_b_neg"]])
    cum = np.floor(np.cumsum(fr)[:3] * rng.TWO32).astype(np.uint64)
    if sc["tumour.layout"] == "mixed":
        sub = np.searchsorted(cum, w[..., 2].astype(np.uint64).ravel(), side="right").reshape(shape)
    else:
        sub = _patch_subclone(sc, seed, rep, shape, cum)
    table = level_table(sc["tumour.antigen_level_mean"], sc["tumour.antigen_level_sd"])
    tum = kind == Kind.TUMOUR
    a_pos = tum & ((sub == 0) | (sub == 1))
    b_pos = tum & ((sub == 0) | (sub == 2))
    ag_a = np.where(a_pos, table[w[..., 3] >> 16], 0).astype(np.uint8)
    ag_b = np.where(b_pos, table[w1[..., 0] >> 16], 0).astype(np.uint8)

    hl = np.uint8(np.clip(round(sc["healthy.antigen_level"] * ANTIGEN_SCALE), 1, 255))
    hk = kind == Kind.HEALTHY
    ag_a[hk & rng.below(w1[..., 1], np.float32(sc["healthy.antigen_a_fraction"]))] = hl
    ag_b[hk & rng.below(w1[..., 2], np.float32(sc["healthy.antigen_b_fraction"]))] = hl
    return {"kind": kind, "antigen_a": ag_a, "antigen_b": ag_b, "ecm": ecm}

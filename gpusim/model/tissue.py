"""Initial tissue: tumour nodule, capsule and septa, vessels, healthy tissue, antigen landscape.

Built once on the host (NumPy, for every backend) from Philox words keyed by (seed, replicate),
so a replicate's tissue does not depend on its batch.  :func:`initial_tissue_batch` builds a whole
batch with array code, box by box (a bounded number of (replicate, voxel) pairs at a time, the
septa only inside each strand's bounding box), bitwise the former per-replicate construction
(tests/test_tissue_setup.py).  Per voxel ``v``:
block (v, draw 0) of stream INIT_TISSUE gives words: 0 vessel, 1 cell present (healthy or
fibroblast), 2 subclone, 3 antigen-A level; block (v, draw 1) gives 0 antigen-B level,
1 healthy antigen A, 2 healthy antigen B.

Clonal patches (``layout = "patches"``) are placed so that the realised subclone fractions are
the declared ones in every replicate (up to one shell of equal distance, a few voxels): each
tumour voxel belongs to its nearest patch centre (a Voronoi cell); the patches are put in a
random order (per replicate), the tumour voxels are ranked by (patch position in that order,
squared distance to the patch centre), and the first ``f1 N`` of the ``N`` tumour voxels form
subclone 1 (A+B+), the next ``f2 N`` subclone 2, and so on.  A subclone is thus a run of whole
patches plus, at each boundary between subclones, the core (or the rim) of one patch.  This needs
the replicate's tumour voxel count, so the batch is built in two passes over the boxes (the first
one only counts the ranks).  (Before: each patch drew its subclone independently, so a declared
30 % came out anywhere between 10 and 60 % with a dozen patches.)
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


def _septa_axes(sc: Scenario, seed: int, reps: np.ndarray):
    """Per (replicate, septum): unit direction (Rg, n, 3) and the strand's inner end t0 (Rg, n), µm
    along the direction from the nodule centre (the strand spans t0 <= t <= outer)."""
    n = sc["stroma.septa_count"]
    radius = sc["tumour.radius_um"]
    b = rng.blocks(seed, reps[:, None], 0, Stream.INIT_SEPTA,
                   np.arange(n)[None, :]).astype(np.float64) / rng.TWO32  # (Rg, n, 4)
    # directions with Python's math (the sin/cos of NumPy may differ from libm in the last ulp)
    flat = b.reshape(-1, 4)
    if sc.shape[0] == 1:
        dirs = [(math.cos(2 * math.pi * b0), math.sin(2 * math.pi * b0), 0.0) for b0 in flat[:, 0].tolist()]
    else:
        dirs = []
        for b0, b1 in zip(flat[:, 0].tolist(), flat[:, 1].tolist()):
            cos_t = 2 * b0 - 1
            sin_t = math.sqrt(max(0.0, 1 - cos_t * cos_t))
            phi = 2 * math.pi * b1
            dirs.append((sin_t * math.cos(phi), sin_t * math.sin(phi), cos_t))
    d = np.array(dirs, dtype=np.float64).reshape(b.shape[:2] + (3,))
    length = np.minimum(radius, sc["stroma.septa_length_fraction"] * radius * (0.5 + b[..., 2]))
    return d, radius - length


def _septum_mask(px, py, pz, d, t0, outer, hw2):
    """The strand test of one septum on broadcastable offsets from the centre (µm)."""
    t = px * d[0] + py * d[1] + pz * d[2]  # projection on the strand's axis
    perp2 = px * px + py * py + pz * pz - t * t
    return (t >= t0) & (t <= outer) & (perp2 <= hw2)


def _index_range(lo_um: float, hi_um: float, h: float, n: int) -> tuple[int, int]:
    """Voxel indices [i0, i1) whose centres (i + 0.5) h may lie in [lo, hi] (one voxel to spare)."""
    i0 = max(0, math.floor(lo_um / h - 0.5) - 1)
    i1 = min(n, math.ceil(hi_um / h - 0.5) + 2)
    return i0, max(i0, i1)

def _patch_plan(sc: Scenario, seed: int, reps: np.ndarray):
    """Per (replicate, patch): centre voxel (z, y, x), each (Rg, n) int64, and the patch's position
    in the replicate's random patch order (word 3; ties by patch index)."""
    n = sc["tumour.patch_count"]
    b = rng.blocks(seed, reps[:, None], 0, Stream.INIT_PATCHES, np.arange(n)[None, :])  # (Rg, n, 4)
    nz, ny, nx = sc.shape
    order = np.argsort(b[..., 3], axis=1, kind="stable")
    pos = np.empty_like(order)
    np.put_along_axis(pos, order, np.arange(n, dtype=order.dtype)[None, :], axis=1)
    return rng.choose(b[..., 0], nz), rng.choose(b[..., 1], ny), rng.choose(b[..., 2], nx), pos


def _patch_key_span(shape) -> int:
    """Squared distances within the lattice are below this (the rank key's patch stride)."""
    nz, ny, nx = shape
    return nz * nz + ny * ny + nx * nx


def _patch_subclone(plan, rs: slice, z0: int, z1: int, y0: int, y1: int, nx: int,
                    span: int) -> np.ndarray:
    """Rank key (Rg, bz, by, X) int64 of each voxel: position of its nearest patch centre in the
    patch order × ``span`` + squared distance to that centre; ties of distance go to the lower
    patch index.  Squared distances are exact integers (int64), so the order of the sums does not
    matter."""
    pz, py, px, sub = (p[rs] for p in plan)
    col = lambda a: a[:, None, None, None]
    z = np.arange(z0, z1, dtype=np.int64)[None, :, None, None]
    y = np.arange(y0, y1, dtype=np.int64)[None, None, :, None]
    x = np.arange(nx, dtype=np.int64)[None, None, None, :]
    shape = (pz.shape[0], z1 - z0, y1 - y0, nx)
    best = np.full(shape, np.iinfo(np.int64).max, dtype=np.int64)
    out = np.zeros(shape, dtype=np.int64)
    d2 = np.empty(shape, dtype=np.int64)
    closer = np.empty(shape, dtype=bool)
    for i in range(pz.shape[1]):
        np.add((z - col(pz[:, i])) ** 2 + (y - col(py[:, i])) ** 2, (x - col(px[:, i])) ** 2, out=d2)
        np.less(d2, best, out=closer)
        np.copyto(best, d2, where=closer)
        np.copyto(out, col(sub[:, i]) * span + d2, where=closer)
    return out


def _patch_bounds(keys: list, cum_frac: np.ndarray) -> np.ndarray:
    """Per replicate, the rank keys B (3,) at which subclones 1, 2, 3 start: subclone =
    searchsorted(B, key, 'right').  ``keys``: (unique keys, counts) pairs of the replicate's tumour
    voxels from every box.  Subclone k starts at the first key group with at least round(F_k N)
    voxels before it (F_k: the cumulative declared fraction)."""
    big = np.iinfo(np.int64).max
    if not keys:
        return np.full(3, big, dtype=np.int64)
    u = np.concatenate([k for k, _ in keys])
    c = np.concatenate([n for _, n in keys])
    uk, inv = np.unique(u, return_inverse=True)
    cnt = np.bincount(inv, weights=c).astype(np.int64)
    before = np.concatenate(([0], np.cumsum(cnt)[:-1]))
    n = int(cnt.sum())
    t = np.floor(cum_frac * n + 0.5).astype(np.int64)
    j = np.searchsorted(before, t, side="left")  # first group with before >= t
    return np.where(j < uk.size, uk[np.minimum(j, uk.size - 1)], big).astype(np.int64)


#: (replicate, voxel) pairs built at once; bounds the temporaries (about 150 bytes a pair)
CHUNK = 1 << 18


def _boxes(shape, R: int, chunk: int):
    """Work units (r0, r1, z0, z1, y0, y1): replicates r0..r1-1 over a box of whole x-rows whose
    voxels form one contiguous flat range (whole z-layers, or rows of one z-layer)."""
    nz, ny, nx = shape
    V = nz * ny * nx
    if V <= chunk:
        g = max(1, chunk // V)
        for r0 in range(0, R, g):
            yield r0, min(R, r0 + g), 0, nz, 0, ny
        return
    for r in range(R):
        if ny * nx <= chunk:
            dz = max(1, chunk // (ny * nx))
            for z0 in range(0, nz, dz):
                yield r, r + 1, z0, min(nz, z0 + dz), 0, ny
        else:
            dy = max(1, chunk // nx)
            for z in range(nz):
                for y0 in range(0, ny, dy):
                    yield r, r + 1, z, z + 1, y0, min(ny, y0 + dy)


def initial_tissue_batch(sc: Scenario, seed: int, replicates, *, chunk: int = CHUNK,
                         out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Tissue of a batch of replicates (global indices ``replicates``): ``kind``, ``antigen_a``,
    ``antigen_b`` (uint8) and ``ecm`` (float32), each of shape (R, Z, Y, X).

    Array code over boxes of ``chunk`` (replicate, voxel) pairs, so the temporaries stay small
    whatever the lattice; every voxel's value depends only on (scenario, seed, replicate, voxel),
    not on the boxes.  ``out``: preallocated arrays to fill (else new ones).
    """
    reps = np.asarray(replicates, dtype=np.int64).ravel()
    R = reps.size
    shape = sc.shape
    full = (R,) + shape
    if out is None:
        out = {"kind": np.empty(full, np.uint8), "antigen_a": np.empty(full, np.uint8),
               "antigen_b": np.empty(full, np.uint8), "ecm": np.empty(full, np.float32)}
    tb = _TissueBuilder(sc, seed, reps, out)
    bounds = None
    if not tb.mixed:
        for box in _boxes(shape, R, chunk):
            tb.build(*box, None)
        cum_frac = np.cumsum(tb.fr)[:3]
        bounds = np.stack([_patch_bounds(tb.ranks[r], cum_frac) for r in range(R)])
    for box in _boxes(shape, R, chunk):
        tb.build(*box, bounds)
    return out


class _TissueBuilder:
    """The per-batch constants of :func:`initial_tissue_batch` and the build of one box."""

    def __init__(self, sc: Scenario, seed: int, reps: np.ndarray, out: dict[str, np.ndarray]):
        self.sc, self.seed, self.reps, self.out = sc, seed, reps, out
        self.shape = sc.shape
        self.h = sc["domain.voxel_um"]
        self.centre = tumour_centre_um(sc)
        self.zc, self.yc, self.xc = voxel_centres_um(self.shape, self.h)
        self.radius = sc["tumour.radius_um"]
        cap = sc["stroma.capsule_thickness_um"]
        self.outer = self.radius + cap
        self._septa_setup()
        self._subclone_setup()
        self.ranks: list[list] = [[] for _ in range(reps.size)]

    def _septa_setup(self) -> None:
        """Septa: directions and inner ends of every (replicate, septum), and each strand's voxel
        bounding box (segment from t0 to outer along d, widened by half_w)."""
        sc, h = self.sc, self.h
        nz, ny, nx = self.shape
        cz, cy, cx = self.centre
        self.n_septa = n_septa = sc["stroma.septa_count"]
        self.septa_on = not (n_septa == 0 or self.radius <= 0 or sc["stroma.septa_width_um"] <= 0)
        if not self.septa_on:
            return
        sdir, st0 = _septa_axes(sc, self.seed, self.reps)
        half_w = 0.5 * sc["stroma.septa_width_um"]
        self.hw2 = half_w * half_w
        sbox = np.empty(sdir.shape[:2] + (3, 2), dtype=np.int64)
        for k, (c, n) in enumerate(((cz, nz), (cy, ny), (cx, nx))):
            dk = sdir[..., 2 - k]
            a, b = c + dk * st0, c + dk * self.outer
            for idx in np.ndindex(*sdir.shape[:2]):
                sbox[idx + (k,)] = _index_range(min(a[idx], b[idx]) - half_w,
                                                max(a[idx], b[idx]) + half_w, h, n)
        self.sdir, self.st0, self.sbox = sdir, st0, sbox

    def _subclone_setup(self) -> None:
        """Subclones: 0 A+B+, 1 A+B-, 2 A-B+, 3 A-B- (cumulative uint64 thresholds), the patch
        plan, antigen level tables and vessel densities."""
        sc, f32 = self.sc, np.float32
        self.fr = np.array([sc["tumour.fraction_a_pos_b_pos"], sc["tumour.fraction_a_pos_b_neg"],
                            sc["tumour.fraction_a_neg_b_pos"], sc["tumour.fraction_a_neg_b_neg"]])
        self.cum = np.floor(np.cumsum(self.fr)[:3] * rng.TWO32).astype(np.uint64)
        self.mixed = sc["tumour.layout"] == "mixed"
        self.plan = None if self.mixed else _patch_plan(sc, self.seed, self.reps)
        self.span = _patch_key_span(self.shape)
        self.table = level_table(sc["tumour.antigen_level_mean"], sc["tumour.antigen_level_sd"])
        self.hl = np.uint8(np.clip(round(sc["healthy.antigen_level"] * ANTIGEN_SCALE), 1, 255))
        self.p_vt = f32(sc["vessels.density_tumour_fraction"])
        self.p_vn = f32(sc["vessels.density_normal_fraction"])

    def build(self, r0: int, r1: int, z0: int, z1: int, y0: int, y1: int, bounds) -> None:
        """Fill the box (replicates r0:r1, z0:z1, y0:y1, every x) of ``out``; a first pass of
        the patch layout (``bounds`` None) only counts the tumour voxels of each rank key."""
        seed, reps = self.seed, self.reps
        nz, ny, nx = self.shape
        cz, cy, cx = self.centre
        rs = slice(r0, r1)
        Rg = r1 - r0
        z, y, x = self.zc[z0:z1], self.yc[:, y0:y1], self.xc
        bshape = (z1 - z0, y1 - y0, nx)
        dist = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
        in_tumour = dist <= self.radius
        capsule = (~in_tumour) & (dist <= self.outer)
        ecm = self._ecm(r0, Rg, (z0, z1, y0, y1), bshape, capsule, (z, y, x))

        v0 = (z0 * ny + y0) * nx
        v = np.arange(v0, v0 + int(np.prod(bshape)), dtype=np.int64)
        w = rng.blocks(seed, reps[rs, None], 0, Stream.INIT_TISSUE, v[None, :]).reshape((Rg,) + bshape + (4,))
        w1 = rng.blocks(seed, reps[rs, None], 0, Stream.INIT_TISSUE, v[None, :], draw=1).reshape((Rg,) + bshape + (4,))

        kind = self._kinds(Rg, bshape, ecm, dist, in_tumour, capsule, w)
        tum = kind == Kind.TUMOUR
        sub = self._subclones(r0, r1, (z0, z1, y0, y1), kind, tum, w, bounds)
        if sub is None:
            return
        ag_a, ag_b = self._antigens(kind, tum, sub, w, w1)
        at = (rs, slice(z0, z1), slice(y0, y1))
        out = self.out
        out["kind"][at], out["antigen_a"][at], out["antigen_b"][at], out["ecm"][at] = kind, ag_a, ag_b, ecm

    def _ecm(self, r0: int, Rg: int, box, bshape, capsule, centres) -> np.ndarray:
        """float32 ECM density of a box: background, capsule, then the septa."""
        sc, f32 = self.sc, np.float32
        z0, z1, y0, y1 = box
        z, y, x = centres
        cz, cy, cx = self.centre
        ecm = np.full((Rg,) + bshape, sc["stroma.background_density"], dtype=f32)
        ecm[:, capsule] = f32(sc["stroma.capsule_density"])
        if self.septa_on:
            septa = np.zeros((Rg,) + bshape, dtype=bool)
            px, py, pz = x - cx, y - cy, z - cz
            for g in range(Rg):
                for i in range(self.n_septa):
                    (za, zb), (ya, yb), (xa, xb) = self.sbox[r0 + g, i]
                    za, zb, ya, yb = max(za, z0), min(zb, z1), max(ya, y0), min(yb, y1)
                    if za >= zb or ya >= yb or xa >= xb:
                        continue
                    sub_box = (slice(za - z0, zb - z0), slice(ya - y0, yb - y0), slice(xa, xb))
                    septa[g][sub_box] |= _septum_mask(
                        px[..., xa:xb], py[:, ya - y0:yb - y0], pz[za - z0:zb - z0],
                        self.sdir[r0 + g, i], self.st0[r0 + g, i], self.outer, self.hw2)
            ecm = np.where(septa, np.maximum(ecm, f32(sc["stroma.septa_density"])), ecm).astype(f32)
        return ecm

    def _kinds(self, Rg: int, bshape, ecm, dist, in_tumour, capsule, w) -> np.ndarray:
        """uint8 cell kinds of a box: tumour, fibroblasts, healthy cells, then vessels."""
        sc, f32 = self.sc, np.float32
        dense = ecm > f32(sc["stroma.block_density"])
        core = dist <= sc["vessels.core_radius_fraction"] * self.radius
        vessel = (np.where(in_tumour, rng.below(w[..., 0], self.p_vt), rng.below(w[..., 0], self.p_vn))
                  & ~core & ~capsule & ~dense)

        kind = np.zeros((Rg,) + bshape, dtype=np.uint8)
        kind[in_tumour & ~dense] = Kind.TUMOUR
        fib = dense & (ecm >= f32(sc["stroma.fibroblast_density"])) & rng.below(
            w[..., 1], f32(sc["stroma.fibroblast_fraction"]))
        kind[fib] = Kind.FIBROBLAST
        healthy = ~in_tumour & ~dense & rng.below(w[..., 1], f32(sc["healthy.cell_fraction"]))
        kind[healthy] = Kind.HEALTHY
        kind[vessel] = Kind.VESSEL
        return kind

    def _subclones(self, r0: int, r1: int, box, kind, tum, w, bounds):
        """Subclone (0..3) of every voxel of a box, or None after a first counting pass."""
        z0, z1, y0, y1 = box
        if self.mixed:
            return np.searchsorted(self.cum, w[..., 2].astype(np.uint64).ravel(), side="right").reshape(kind.shape)
        key = _patch_subclone(self.plan, slice(r0, r1), z0, z1, y0, y1, self.shape[2], self.span)
        if bounds is None:  # first pass: count the tumour voxels of each rank key
            for g in range(r1 - r0):
                self.ranks[r0 + g].append(np.unique(key[g][tum[g]], return_counts=True))
            return None
        sub = np.empty_like(key)
        for g in range(r1 - r0):
            sub[g] = np.searchsorted(bounds[r0 + g], key[g], side="right")
        return sub

    def _antigens(self, kind, tum, sub, w, w1):
        """uint8 antigen A and B levels of a box (tumour subclones, then healthy cells)."""
        sc, f32 = self.sc, np.float32
        a_pos = tum & ((sub == 0) | (sub == 1))
        b_pos = tum & ((sub == 0) | (sub == 2))
        ag_a = np.where(a_pos, self.table[w[..., 3] >> 16], 0).astype(np.uint8)
        ag_b = np.where(b_pos, self.table[w1[..., 0] >> 16], 0).astype(np.uint8)
        hk = kind == Kind.HEALTHY
        ag_a[hk & rng.below(w1[..., 1], f32(sc["healthy.antigen_a_fraction"]))] = self.hl
        ag_b[hk & rng.below(w1[..., 2], f32(sc["healthy.antigen_b_fraction"]))] = self.hl
        return ag_a, ag_b


def initial_tissue(sc: Scenario, seed: int, rep: int) -> dict[str, np.ndarray]:
    """Tissue of one replicate: ``kind``, ``antigen_a``, ``antigen_b`` (uint8) and ``ecm``
    (float32), each of shape (Z, Y, X) (:func:`initial_tissue_batch` of one replicate)."""
    return {k: v[0] for k, v in initial_tissue_batch(sc, seed, [rep]).items()}

"""Tissue-cell phase: tumour apoptosis, necrosis, division (claims) with antigen loss; clearance of
dead cells; vessel collapse.  MODEL.md section 4.  A daughter inherits its parent's current
antigen levels, baseline levels (``antigen_a_base``/``antigen_b_base``, set to 0 with a loss) and
PD-L1; a cleared voxel has all of them reset to 0.

Division with shoving (MODEL.md section 4): a dividing cell's daughter goes to a free neighbour
(EMPTY, ECM <= block density) if there is one; otherwise the cell shoves its neighbours along the
shortest path to space: the target is a voxel of the nearest Chebyshev ring d = 1 ..
``push_radius`` around the parent that holds a free voxel, or, when no free voxel lies within
``push_radius``, of the nearest ring holding a displaceable voxel (a healthy cell, a fibroblast,
or cell-free dense stroma).  The target is chosen uniformly within its ring (offsets in the fixed
order of :func:`push_offsets`).  A push into a displaceable voxel succeeds with probability
``p_push * clip((push_ecm_max - ecm) / push_ecm_max, 0, 1)``; a displaced healthy cell or
fibroblast is compressed (removed, counted as ``healthy_displaced`` / ``fibroblast_displaced``).
The tumour cells on the path shift by one voxel; as they are alike in kind, only the end of the
path changes kind, and the daughter's attributes (antigen levels, baselines, PD-L1) are written
there (a subclone pattern is thereby smeared by at most ``push_radius`` voxels).  Conflicts:
claims on the target voxel, the smallest key wins, as for free neighbours.

Reads the state as it was at the phase start and writes the new state; nothing depends on the
order in which cells are visited.  Probabilities are float32 computed in the order written here,
decisions are ``word < threshold(p)`` (see :mod:`gpusim.rng`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import rng
from ..rng import Stream
from .lattice import Kind, neighbours, resolve_claims

F32 = np.float32


@dataclass(frozen=True)
class TumourParams:
    """Per-step constants, float32 as the kernels use them."""

    p_apoptosis: np.float32  # 1 - exp(-rate dt)
    p_division_max: np.float32
    p_necrosis_max: np.float32
    p_clear_apoptotic: np.float32
    p_clear_necrotic: np.float32
    p_antigen_loss: np.float32
    o2_full: np.float32
    o2_zero: np.float32
    o2_hypoxic: np.float32
    o2_nec_onset: np.float32
    o2_nec_max: np.float32
    glucose_half: np.float32
    block_density: np.float32
    p_push: np.float32
    push_ecm_max: np.float32
    collapse_neighbours: int
    push_radius: int

    @classmethod
    def from_scenario(cls, sc) -> "TumourParams":
        dt = sc["run.dt_min"]
        return cls(
            p_apoptosis=F32(-np.expm1(-sc["tumour.apoptosis_rate_per_min"] * dt)),
            p_division_max=F32(-np.expm1(-sc["tumour.division_rate_per_min"] * dt)),
            p_necrosis_max=F32(-np.expm1(-sc["tumour.necrosis_max_rate_per_min"] * dt)),
            p_clear_apoptotic=F32(-np.expm1(-dt / sc["tumour.apoptotic_clearance_min"])),
            p_clear_necrotic=F32(-np.expm1(-dt / (sc["tumour.necrotic_clearance_days"] * 1440.0))),
            p_antigen_loss=F32(sc["tumour.antigen_loss_per_division"]),
            o2_full=F32(sc["tumour.o2_proliferation_full_mmHg"]),
            o2_zero=F32(sc["tumour.o2_proliferation_zero_mmHg"]),
            o2_hypoxic=F32(sc["tumour.o2_hypoxic_mmHg"]),
            o2_nec_onset=F32(sc["tumour.o2_necrosis_onset_mmHg"]),
            o2_nec_max=F32(sc["tumour.o2_necrosis_max_mmHg"]),
            glucose_half=F32(sc["tumour.glucose_half_mM"]),
            block_density=F32(sc["stroma.block_density"]),
            p_push=F32(sc["tumour.push_probability"]),
            push_ecm_max=F32(sc["tumour.push_ecm_max"]),
            collapse_neighbours=int(sc["vessels.collapse_necrotic_neighbours"]),
            push_radius=int(sc["tumour.push_radius_voxels"]),
        )


def event_probabilities(tp: TumourParams, o2: np.ndarray, glucose: np.ndarray):
    """Per-step apoptosis, necrosis and division probabilities (float32) of tumour cells at the
    given oxygen (mmHg) and glucose (mM).

    division = p_div_max * ramp * g/(g + K), ramp = clip((o2 - zero)/(full - zero), 0, 1), and 0
    below the hypoxic threshold (quiescence); necrosis = p_nec_max * clip((onset - o2)/(onset -
    max), 0, 1).
    """
    ramp = np.clip((o2 - tp.o2_zero) / (tp.o2_full - tp.o2_zero), F32(0), F32(1))
    gf = glucose / (glucose + tp.glucose_half) if tp.glucose_half > 0 else np.ones_like(glucose)
    p_div = (tp.p_division_max * ramp) * gf
    p_div = np.where(o2 < tp.o2_hypoxic, F32(0), p_div).astype(F32)
    nec = np.clip((tp.o2_nec_onset - o2) / (tp.o2_nec_onset - tp.o2_nec_max), F32(0), F32(1))
    p_nec = (tp.p_necrosis_max * nec).astype(F32)
    p_apo = np.full(o2.shape, tp.p_apoptosis, dtype=F32)
    return p_apo, p_nec, p_div


def push_offsets(nz: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3) offsets (dz, dy, dx) of the cube of Chebyshev radius ``radius`` (centre left out),
    ordered by ring d = max(|dz|, |dy|, |dx|), then lexicographically; and the ring of each (K,).
    Ring 1 is the Moore neighbourhood in the order of :func:`~.lattice.moore_offsets`.  The
    kernels enumerate the same order (tumour_logic.cuh)."""
    rz = 0 if nz == 1 else radius
    off = [(dz, dy, dx) for dz in range(-rz, rz + 1) for dy in range(-radius, radius + 1)
           for dx in range(-radius, radius + 1) if (dz, dy, dx) != (0, 0, 0)]
    off.sort(key=lambda o: max(abs(o[0]), abs(o[1]), abs(o[2])))  # stable: lexicographic in a ring
    off = np.array(off, dtype=np.int64).reshape(-1, 3)
    return off, np.abs(off).max(axis=1)


def push_probability(tp: TumourParams, ecm: np.ndarray) -> np.ndarray:
    """float32 probability that a push into a voxel of ECM density ``ecm`` succeeds."""
    f = np.clip((tp.push_ecm_max - ecm) / tp.push_ecm_max, F32(0), F32(1))
    return (tp.p_push * f).astype(F32)


def division_targets(tp: TumourParams, shape, kind, ecm, seed, reps, step, dr, dv, b):
    """Target voxel of each dividing cell (replicate row ``dr``, voxel ``dv``, division block
    ``b``) and whether it posts a claim (see the module docstring)."""
    nz, ny, nx = shape
    off, ring = push_offsets(nz, tp.push_radius)
    z = dv // (ny * nx)
    y = (dv // nx) % ny
    x = dv % nx
    zz = z[:, None] + off[:, 0]
    yy = y[:, None] + off[:, 1]
    xx = x[:, None] + off[:, 2]
    valid = (zz >= 0) & (zz < nz) & (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    nb = np.where(valid, (zz * ny + yy) * nx + xx, dv[:, None])
    k = kind[dr[:, None], nb]
    e = ecm[dr[:, None], nb]
    empty = k == Kind.EMPTY
    free = valid & empty & (e <= tp.block_density)
    push = valid & ((k == Kind.HEALTHY) | (k == Kind.FIBROBLAST) | (empty & (e > tp.block_density)))
    L = tp.push_radius
    big = L + 1
    d_free = np.where(free, ring[None, :], big).min(axis=1)
    d_push = np.where(push, ring[None, :], big).min(axis=1)
    use_free = d_free <= L
    use_push = ~use_free & (d_push <= L)
    cand = np.where(use_free[:, None], free & (ring[None, :] == d_free[:, None]),
                    use_push[:, None] & push & (ring[None, :] == d_push[:, None]))
    ncand = cand.sum(axis=1)
    has = ncand > 0
    kk = rng.choose(b[:, 0], ncand)
    rank = np.cumsum(cand, axis=1) - 1
    pick = np.argmax(cand & (rank == kk[:, None]), axis=1)
    rows = np.arange(dv.size)
    target = nb[rows, pick]
    ok = has.copy()
    pi = np.flatnonzero(use_push)
    if pi.size:
        w = rng.blocks(seed, reps[dr[pi]], step, Stream.TUMOUR_DIVISION, dv[pi], draw=1)[:, 0]
        ok[pi] = rng.below(w, push_probability(tp, e[pi, pick[pi]]))
    return target, ok


def tumour_phase(st, tp: TumourParams, seed: int, step: int, events: dict) -> None:
    """Advance the tissue cells of every replicate by one step (in place on ``st``)."""
    R = st.kind.shape[0]
    shape = st.kind.shape[1:]
    V = st.nvox
    kind = st.kind.reshape(R, V)
    o2 = st.o2.reshape(R, V)
    glu = st.glucose.reshape(R, V)
    ecm = st.ecm.reshape(R, V)
    reps = st.replicates  # global replicate indices (R,)

    # --- tumour cell events: one word each -------------------------------------------------
    r_idx, v_idx = np.nonzero(kind == Kind.TUMOUR)
    u = rng.words(seed, reps[r_idx], step, Stream.TUMOUR_EVENT, v_idx).astype(np.uint64)
    p_apo, p_nec, p_div = event_probabilities(tp, o2[r_idx, v_idx], glu[r_idx, v_idx])
    t_apo = rng.threshold(p_apo)
    t_nec = t_apo + rng.threshold(p_nec)
    t_div = t_nec + rng.threshold(p_div)
    apo = u < t_apo
    nec = (u >= t_apo) & (u < t_nec)
    div = (u >= t_nec) & (u < t_div)

    dead_r, dead_v, cleared = _clearance(tp, kind, seed, reps, step)

    born_r, born_v, parent_v, lose_a, lose_b = _divisions(tp, shape, kind, ecm, seed, reps, step,
                                                          r_idx[div], v_idx[div])

    collapse_r, collapse_v = _collapse(tp, shape, kind)

    # --- write the new state ---------------------------------------------------------------
    kind[r_idx[apo], v_idx[apo]] = Kind.APOPTOTIC
    kind[r_idx[nec], v_idx[nec]] = Kind.NECROTIC
    cr, cv = dead_r[cleared], dead_v[cleared]
    kind[cr, cv] = Kind.EMPTY
    st.antigen_a.reshape(R, V)[cr, cv] = 0
    st.antigen_b.reshape(R, V)[cr, cv] = 0
    extra = [getattr(st, k, None) for k in ("antigen_a_base", "antigen_b_base", "pdl1")]
    for arr in extra:
        if arr is not None:
            arr.reshape(R, V)[cr, cv] = 0
    kind[collapse_r, collapse_v] = Kind.NECROTIC
    displaced = kind[born_r, born_v]  # the target's kind: unchanged by the events above
    if born_r.size:
        _write_daughters(st, extra, born_r, born_v, parent_v, lose_a, lose_b)

    _count(events, "tumour_apoptosis", r_idx[apo], R)
    _count(events, "tumour_necrosis", r_idx[nec], R)
    _count(events, "tumour_divisions", born_r, R)
    _count(events, "healthy_displaced", born_r[displaced == Kind.HEALTHY], R)
    _count(events, "fibroblast_displaced", born_r[displaced == Kind.FIBROBLAST], R)
    _count(events, "antigen_a_loss", born_r[lose_a], R)
    _count(events, "antigen_b_loss", born_r[lose_b], R)
    _count(events, "cleared", cr, R)
    _count(events, "vessel_collapse", collapse_r, R)


def _count(events: dict, name: str, r: np.ndarray, R: int) -> None:
    events[name] = events.get(name, 0) + np.bincount(r, minlength=R).astype(np.int64)


def _clearance(tp: TumourParams, kind, seed: int, reps, step: int):
    """Dead-cell clearance, one word each: (replicate, voxel) of the dead cells and whether each
    is cleared."""
    dead_r, dead_v = np.nonzero((kind == Kind.APOPTOTIC) | (kind == Kind.NECROTIC))
    if dead_r.size:
        ud = rng.words(seed, reps[dead_r], step, Stream.CLEARANCE, dead_v)
        p_clear = np.where(kind[dead_r, dead_v] == Kind.APOPTOTIC, tp.p_clear_apoptotic,
                           tp.p_clear_necrotic).astype(F32)
        cleared = rng.below(ud, p_clear)
    else:
        cleared = np.zeros(0, dtype=bool)
    return dead_r, dead_v, cleared


def _divisions(tp: TumourParams, shape, kind, ecm, seed: int, reps, step: int, dr, dv):
    """Division: claims on a free neighbour, else on the end of a shoving path.  Returns the
    daughters' replicate, voxel and parent voxel, and their antigen A / B losses."""
    V = kind.shape[1]
    born_r = born_v = parent_v = np.zeros(0, dtype=np.int64)
    lose_a = lose_b = np.zeros(0, dtype=bool)
    if dr.size:
        b = rng.blocks(seed, reps[dr], step, Stream.TUMOUR_DIVISION, dv)  # (n, 4)
        target, ok = division_targets(tp, shape, kind, ecm, seed, reps, step, dr, dv, b)
        dr, dv, target, b = dr[ok], dv[ok], target[ok], b[ok]
        key = (b[:, 1].astype(np.uint64) << np.uint64(32)) | dv.astype(np.uint64)
        gidx = dr.astype(np.int64) * V + target
        win = resolve_claims(gidx, key)
        born_r, born_v, parent_v = dr[win], target[win], dv[win]
        lose_a = rng.below(b[win, 2], tp.p_antigen_loss)
        lose_b = rng.below(b[win, 3], tp.p_antigen_loss)
    return born_r, born_v, parent_v, lose_a, lose_b


def _collapse(tp: TumourParams, shape, kind):
    """Vessel collapse: (replicate, voxel) of each vessel with enough necrotic neighbours."""
    vr, vv = np.nonzero(kind == Kind.VESSEL)
    if vr.size:
        nb, valid = neighbours(vv, shape)
        n_nec = (valid & (kind[vr[:, None], nb] == Kind.NECROTIC)).sum(axis=1)
        col = n_nec >= tp.collapse_neighbours
        collapse_r, collapse_v = vr[col], vv[col]
    else:
        collapse_r = collapse_v = np.zeros(0, dtype=np.int64)
    return collapse_r, collapse_v


def _write_daughters(st, extra, born_r, born_v, parent_v, lose_a, lose_b) -> None:
    """Place the daughters: tumour kind, the parent's antigen levels (lost: 0), baselines, PD-L1."""
    R, V = st.kind.shape[0], st.nvox
    kind = st.kind.reshape(R, V)
    aa = st.antigen_a.reshape(R, V)
    ab = st.antigen_b.reshape(R, V)
    kind[born_r, born_v] = Kind.TUMOUR
    aa[born_r, born_v] = np.where(lose_a, 0, aa[born_r, parent_v])
    ab[born_r, born_v] = np.where(lose_b, 0, ab[born_r, parent_v])
    # daughters inherit the baseline antigen levels (lost: 0) and the parent's PD-L1
    ba, bb, pd = extra
    if ba is not None:
        ba.reshape(R, V)[born_r, born_v] = np.where(lose_a, 0, ba.reshape(R, V)[born_r, parent_v])
        bb.reshape(R, V)[born_r, born_v] = np.where(lose_b, 0, bb.reshape(R, V)[born_r, parent_v])
    if pd is not None:
        pd.reshape(R, V)[born_r, born_v] = pd.reshape(R, V)[born_r, parent_v]

"""Systemic compartment, delivery routes and toxicity.  MODEL.md sections 7 and 8.

Everything here is per replicate float64 host arithmetic in a fixed order (identical on every
backend) except the per-voxel entry decisions, which compare Philox words with float32
probabilities.  Each step (:func:`systemic_phase`, before the fields):

1. doses due at this step (``delivery.dose_days``, ``delivery.dose_cells`` each), by route:
   * intravenous: the dose enters the blood pool;
   * intratumoral: ``leak_fraction`` of it enters the blood; the domain receives
     ``n = floor(dose × (1 − leak) × V_domain / V_tumour + 0.5)`` cells, placed at the ``n`` voxels
     without a CAR-T cell nearest to the injection sites (ties broken by a random word: block
     (v, draw 1) of stream EXTRAVASATION, word 0), i.e. a ball around the sites;
   * regional: ``regional_blood_fraction`` enters the blood, the rest the CSF / cavity pool
     ``csf``; over the infusion (``infusion_hours``) the domain's face receives, per step,
     ``λ = dose × (1 − bf) × A_face / A_surface / n_infusion_steps`` cells: each face voxel
     without a CAR-T cell admits one with probability ``float32(λ / n_free)`` (capped at 1; word 0
     of block (v, draw 2) of stream EXTRAVASATION); the pool loses ``entrants × A_surface / A_face``;
2. intravenous extravasation from the blood pool (all routes): the whole tumour receives
   ``blood × homing`` cells; the domain expects ``λ = blood × homing × V_domain / V_tumour``;
   each vessel voxel without a CAR-T cell admits one with probability ``p_v = float32(λ / W) ×
   w_v`` (capped at 1), ``w_v = 256 + floor(256 × weight × c_v)`` an integer chemokine weight and
   ``W`` its exact integer sum over the replicate's free vessel voxels (word: ``rng.words`` of
   stream EXTRAVASATION);
3. ``blood ← (blood − entrants − blood × homing) × exp(−ln 2 dt / half-life)`` (floor 0), the
   CSF pool decays with the same half-life.
Entrants are appended to the agent table in voxel order (intratumoral, regional, then vessels).

:func:`toxicity_phase` (after the CAR-T phase): plasma IL-6 (pg/mL) ``il6 ← (il6 + P) × exp(−ln 2
dt / half-life)`` with ``P = (lysed × k_lysis + engaged × k_act × dt_days × m_truck) / 1e6 /
share``, where lysed and engaged are the domain's counts this step and ``share = V_domain /
V_tumour`` scales them to the whole tumour; ``il6_peak`` = running max, ``il6_auc`` += il6 ×
dt_days, ``csf_peak`` = running max of the CSF pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import rng
from ..errors import CapacityError
from ..rng import Stream
from .lattice import Kind, TState, coords, to_host, voxel_centres_um
from .tissue import tumour_centre_um

F32 = np.float32


@dataclass(frozen=True)
class SystemicParams:
    dose_steps: dict[int, float]
    homing_per_step: float
    domain_share: float
    clearance_factor: float
    weight256: np.float32
    max_divisions: int
    route: str = "intravenous"
    leak: float = 0.0
    inject_order: np.ndarray | None = None  # (V,) int64 voxels sorted by (distance to the nearest site, v)
    inject_shells: tuple | None = None  # (starts, ends) int64 (S,): runs of equal distance in that order
    face_voxels: np.ndarray | None = None  # (F,) int64
    face_share: float = 0.0
    regional_bf: float = 0.0
    infusion_steps: int = 1
    il6_lysis: float = 0.0
    il6_act_step: float = 0.0
    il6_decay: float = 1.0
    dt_days: float = 0.0

    @classmethod
    def from_scenario(cls, sc, nvox: int) -> "SystemicParams":
        dt = sc["run.dt_min"]
        doses: dict[int, float] = {}
        for day in sc["delivery.dose_days"]:
            s = int(round(day * 1440.0 / dt))
            doses[s] = doses.get(s, 0.0) + sc["delivery.dose_cells"]
        h = sc["domain.voxel_um"]
        vox_cm3 = (h * 1e-4) ** 3
        route = sc["delivery.route"]
        shape = sc.shape
        order = shells = face = None
        face_share = 0.0
        if route == "intratumoral":
            order, shells = _shells(_site_distance2(sc))
        elif route == "regional":
            face, area_vox = _face(sc["delivery.regional_face"], shape)
            face_share = area_vox * (h * 1e-4) ** 2 / sc["delivery.regional_surface_cm2"]
        truck = sc["toxicity.il6_truck_multiplier"] if sc["car_t.generation"] == "fourth" else 1.0
        return cls(
            dose_steps=doses,
            homing_per_step=sc["delivery.tumour_homing_fraction_per_day"] * dt / 1440.0,
            domain_share=nvox * vox_cm3 / sc["delivery.tumour_volume_cm3"],
            clearance_factor=math.exp(-math.log(2.0) * dt / (sc["delivery.blood_half_life_days"] * 1440.0)),
            weight256=F32(256.0 * sc["delivery.chemokine_weight"]),
            max_divisions=int(sc["car_t.max_divisions"]),
            route=route,
            leak=float(sc["delivery.leak_fraction"]),
            inject_order=order,
            inject_shells=shells,
            face_voxels=face,
            face_share=face_share,
            regional_bf=float(sc["delivery.regional_blood_fraction"]),
            infusion_steps=max(1, int(round(sc["delivery.infusion_hours"] * 60.0 / dt))),
            il6_lysis=float(sc["toxicity.il6_per_million_lysed_pg_per_mL"]),
            il6_act_step=float(sc["toxicity.il6_per_million_activated_per_day_pg_per_mL"]) * dt / 1440.0 * truck,
            il6_decay=math.exp(-math.log(2.0) * dt / (sc["toxicity.il6_half_life_hours"] * 60.0)),
            dt_days=dt / 1440.0,
        )


def _site_distance2(sc) -> np.ndarray:
    """Squared distance (in voxel units, float64) of every voxel centre to the nearest injection
    site: one site at the tumour centre, or ``n`` sites evenly on a ring of radius
    ``injection_offset_fraction × tumour radius`` in the z-centre plane."""
    shape = sc.shape
    h = sc["domain.voxel_um"]
    z, y, x = voxel_centres_um(shape, h)
    cz, cy, cx = tumour_centre_um(sc)
    n = sc["delivery.injection_sites"]
    off = sc["delivery.injection_offset_fraction"] * sc["tumour.radius_um"] if n > 1 else 0.0
    best = None
    for k in range(n):
        ang = 2.0 * math.pi * k / n
        sx, sy = cx + off * math.cos(ang), cy + off * math.sin(ang)
        d2 = ((x - sx) ** 2 + (y - sy) ** 2 + (z - cz) ** 2) / (h * h)
        best = d2 if best is None else np.minimum(best, d2)
    return np.broadcast_to(best, shape).ravel().copy()


def _shells(site_d2: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The voxels sorted by (squared distance to the nearest site, v) and the (start, end)
    positions of the runs of equal distance ("shells") in that order."""
    order = np.argsort(site_d2, kind="stable")
    d = site_d2[order]
    starts = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1])))
    ends = np.concatenate((starts[1:], [d.size]))
    return order.astype(np.int64), (starts.astype(np.int64), ends.astype(np.int64))


def _face(face: str, shape) -> tuple[np.ndarray, int]:
    """Flat voxel indices of a domain face (sorted) and its area in voxel faces."""
    nz, ny, nx = shape
    v = np.arange(nz * ny * nx)
    z, y, x = coords(v, shape)
    sel = {"x_low": x == 0, "x_high": x == nx - 1, "y_low": y == 0, "y_high": y == ny - 1,
           "z_low": z == 0, "z_high": z == nz - 1}[face]
    idx = v[sel]
    return idx, int(idx.size)


def occupied(xp, st):
    """bool (R, V): the voxels holding a CAR-T cell (array code for NumPy or CuPy)."""
    R, C = st.t_state.shape
    occ = xp.zeros((R, st.nvox), dtype=bool)
    live = xp.arange(C)[None, :] < st.t_count[:, None]
    rr, ss = xp.nonzero(live)
    occ[rr, st.t_pos[rr, ss]] = True
    return occ


def doses_due(sp: SystemicParams, step: int, blood: np.ndarray, csf: np.ndarray) -> tuple[int, float]:
    """Step 1 of the phase, host float64: the doses due at ``step`` into the blood and CSF pools
    (in place).  Returns ``(n_inject, lam_face)``: the cells the intratumoral placement puts into
    the domain (0 unless an intratumoral dose is due) and the cells the regional face receives
    this step (0.0 outside a regional infusion)."""
    dose = sp.dose_steps.get(step, 0.0)
    n_inject, lam_face = 0, 0.0
    if sp.route == "intravenous":
        blood += dose
    elif sp.route == "intratumoral":
        if dose > 0:
            blood += dose * sp.leak
            n_inject = int(math.floor(dose * (1.0 - sp.leak) * sp.domain_share + 0.5))
    else:  # regional
        if dose > 0:
            blood += dose * sp.regional_bf
            csf += dose * (1.0 - sp.regional_bf)
        for s0, dd in sp.dose_steps.items():
            if s0 <= step < s0 + sp.infusion_steps:
                lam_face += dd * (1.0 - sp.regional_bf) * sp.face_share / sp.infusion_steps
    return n_inject, lam_face


def regional_csf(sp: SystemicParams, csf: np.ndarray, entered: np.ndarray) -> None:
    """The CSF pool loses the face entrants scaled to the whole surface (host, in place)."""
    if sp.face_share > 0:
        csf -= entered / sp.face_share
        np.maximum(csf, 0.0, out=csf)


def blood_after_entry(sp: SystemicParams, blood: np.ndarray, csf: np.ndarray,
                      entered: np.ndarray) -> None:
    """Step 3, host float64 (in place): homing, clearance (floor 0) and the CSF decay."""
    blood -= entered
    blood -= blood * sp.homing_per_step
    blood *= sp.clearance_factor
    np.maximum(blood, 0.0, out=blood)
    csf *= sp.clearance_factor


def inject_select(xp, st, sp: SystemicParams, seed: int, step: int, n: int, order=None):
    """Intratumoral placement (array code for NumPy or CuPy): bool (R, V), the ``n`` voxels without
    a CAR-T cell nearest to the injection sites, ties of distance broken by the word of block
    (v, draw 1) of stream EXTRAVASATION, then by v, i.e. the first ``n`` free voxels in the order
    (site_d2, word, v).  Whole distance shells are taken while they fit (exact integer prefix
    sums); only the free voxels of the shell that overflows are ranked by their words, on the host
    (at most one shell per replicate).  ``order`` is ``sp.inject_order`` on the array's device."""
    R = st.kind.shape[0]
    V = st.nvox
    order = xp.asarray(sp.inject_order) if order is None else order
    starts, ends = sp.inject_shells
    free = ~occupied(xp, st)[:, order]  # (R, V) in distance order
    cum = xp.cumsum(free, axis=1, dtype=xp.int64)
    end_cnt = cum[:, xp.asarray(ends - 1)]  # (R, S) free voxels up to the end of each shell
    full = end_cnt <= n  # a prefix of the shells: those taken whole
    nfull = to_host(full.sum(axis=1))
    shell_of = xp.asarray(np.repeat(np.arange(starts.size), ends - starts))
    take = free & full[:, shell_of]
    before = np.where(nfull > 0, to_host(end_cnt[xp.arange(R), xp.asarray(np.maximum(nfull - 1, 0))]), 0)
    for r in np.flatnonzero(nfull < starts.size):
        k = n - int(before[r])
        a, b = int(starts[nfull[r]]), int(ends[nfull[r]])
        if k <= 0:
            continue
        fr = to_host(free[r, a:b])
        vox = sp.inject_order[a:b][fr]
        w = rng.blocks(seed, st.replicates[r], step, Stream.EXTRAVASATION, vox, draw=1)[:, 0]
        pick = np.flatnonzero(fr)[np.lexsort((vox, w))[:k]]
        take[r, xp.asarray(a + pick)] = True
    enter = xp.zeros((R, V), dtype=bool)
    enter[:, order] = take
    return enter


def regional_entry(st, sp: SystemicParams, seed: int, step: int, lam: float) -> np.ndarray:
    """Regional entry (NumPy): bool (R, V), the face voxels without a CAR-T cell that admit one,
    each with probability ``float32(min(lam / n_free, 1))`` (word 0 of block (v, draw 2) of stream
    EXTRAVASATION)."""
    R = st.kind.shape[0]
    face = sp.face_voxels
    free = ~occupied(np, st)[:, face]  # (R, F)
    nfree = free.sum(axis=1)
    p = np.zeros(R, dtype=F32)
    ok = nfree > 0
    p[ok] = np.minimum(lam / nfree[ok], 1.0).astype(F32)
    enter = np.zeros((R, st.nvox), dtype=bool)
    fr, fi = np.nonzero(free)
    if fr.size:
        u = rng.blocks(seed, st.replicates[fr], step, Stream.EXTRAVASATION, face[fi], draw=2)[:, 0]
        e = rng.below(u, p[fr])
        enter[fr[e], face[fi[e]]] = True
    return enter


def vessel_entry(st, sp: SystemicParams, seed: int, step: int, lam: np.ndarray) -> np.ndarray:
    """Intravenous extravasation (NumPy): bool (R, V), the vessel voxels without a CAR-T cell that
    admit one (module docstring, step 2)."""
    R = st.kind.shape[0]
    V = st.nvox
    kind = st.kind.reshape(R, V)
    enter = np.zeros((R, V), dtype=bool)
    vr, vv = np.nonzero((kind == Kind.VESSEL) & ~occupied(np, st))
    if vr.size:
        c = st.chemokine.reshape(R, V)[vr, vv]
        w = 256 + np.floor(sp.weight256 * c).astype(np.int64)
        wsum = np.zeros(R, dtype=np.int64)
        np.add.at(wsum, vr, w)
        scale = np.zeros(R, dtype=F32)
        nz = wsum > 0
        scale[nz] = (lam[nz] / wsum[nz]).astype(F32)
        p = np.minimum(scale[vr] * w.astype(F32), F32(1)).astype(F32)
        u = rng.words(seed, st.replicates[vr], step, Stream.EXTRAVASATION, vv)
        e = rng.below(u, p)
        enter[vr[e], vv[e]] = True
    return enter


def append_entrants(xp, st, enter, max_div: int) -> np.ndarray:
    """Append a CAR-T cell at every voxel marked in ``enter`` ((R, V) bool or uint8, NumPy or CuPy)
    after each replicate's live cells, in voxel order (effector, exhaustion 0, ``max_div``
    divisions left, no kills, no direction, not activated).  Returns the host int64 (R,) counts;
    raises CapacityError, writing nothing, when a replicate would need more than C slots."""
    R, C = st.t_state.shape
    e = enter.reshape(R, -1)
    count = to_host(e.sum(axis=1, dtype=xp.int64))
    if not count.any():
        return count
    new = to_host(st.t_count).astype(np.int64) + count
    if new.max() > C:
        worst = int(np.argmax(new))
        raise CapacityError(
            f"replicate {int(st.replicates[worst])} needs {int(new[worst])} CAR-T slots but "
            f"car_t.capacity_per_replicate is {C}; raise it (0 means one slot per voxel)")
    er, ev = xp.nonzero(e)  # row-major: by replicate, then voxel
    cnt = xp.asarray(count)
    start = xp.cumsum(cnt) - cnt
    slot = st.t_count[er].astype(xp.int64) + (xp.arange(er.size) - start[er])
    st.t_state[er, slot] = int(TState.EFFECTOR)
    st.t_pos[er, slot] = ev.astype(xp.int32)
    st.t_exh[er, slot] = 0
    st.t_div[er, slot] = max_div
    st.t_kills[er, slot] = 0
    st.t_dir[er, slot] = -1
    st.t_act[er, slot] = 0
    st.t_eng[er, slot] = 0
    st.t_count[:] = xp.asarray(new.astype(np.int32))
    return count


class NumpyEntry:
    """The entry decisions of the NumPy engine (a device backend supplies kernels instead)."""

    xp = np
    regional = staticmethod(regional_entry)
    vessels = staticmethod(vessel_entry)

    @staticmethod
    def inject_order(sp: SystemicParams):
        return sp.inject_order


def systemic_phase(st, sp: SystemicParams, seed: int, step: int, events: dict,
                   entry=NumpyEntry) -> None:
    """The systemic phase on any backend: the host arithmetic here, the entry decisions from
    ``entry`` (``regional``, ``vessels``: (R, V) masks; ``xp`` the array module), entrants
    appended in voxel order (intratumoral or regional first, then vessels)."""
    xp = entry.xp
    n_inject, lam_face = doses_due(sp, step, st.blood, st.csf)
    entered = np.zeros(st.kind.shape[0], dtype=np.int64)
    if n_inject > 0:
        enter = inject_select(xp, st, sp, seed, step, n_inject, entry.inject_order(sp))
        entered += append_entrants(xp, st, enter, sp.max_divisions)
    elif lam_face > 0:
        e = append_entrants(xp, st, entry.regional(st, sp, seed, step, lam_face), sp.max_divisions)
        regional_csf(sp, st.csf, e)
        entered += e
    lam = st.blood * sp.homing_per_step * sp.domain_share  # float64 (R,)
    e = append_entrants(xp, st, entry.vessels(st, sp, seed, step, lam), sp.max_divisions)
    blood_after_entry(sp, st.blood, st.csf, e)
    events["car_t_entered"] = events.get("car_t_entered", 0) + entered + e


def toxicity_phase(st, sp: SystemicParams, events: dict, engaged: np.ndarray) -> None:
    """Plasma IL-6, its peak and area under the curve, the CSF peak (module docstring); host
    float64 on the (R,) pools of ``st``, from this step's kills and the ``engaged`` cells (host
    (R,))."""
    R = st.il6.shape[0]
    lysed = (events.get("kills_tumour", np.zeros(R, np.int64))
             + events.get("kills_healthy", np.zeros(R, np.int64))).astype(np.float64)
    prod = (lysed * sp.il6_lysis + np.asarray(engaged, np.float64) * sp.il6_act_step) / 1e6 / sp.domain_share
    st.il6 += prod
    st.il6 *= sp.il6_decay
    np.maximum(st.il6_peak, st.il6, out=st.il6_peak)
    st.il6_auc += st.il6 * sp.dt_days
    np.maximum(st.csf_peak, st.csf, out=st.csf_peak)

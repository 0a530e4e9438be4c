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
from .lattice import Kind, TState, coords, voxel_centres_um
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
    site_d2: np.ndarray | None = None  # (V,) float64 squared distance (voxels²) to the nearest site
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
        site_d2 = face = None
        face_share = 0.0
        if route == "intratumoral":
            site_d2 = _site_distance2(sc)
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
            site_d2=site_d2,
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


def _face(face: str, shape) -> tuple[np.ndarray, int]:
    """Flat voxel indices of a domain face (sorted) and its area in voxel faces."""
    nz, ny, nx = shape
    v = np.arange(nz * ny * nx)
    z, y, x = coords(v, shape)
    sel = {"x_low": x == 0, "x_high": x == nx - 1, "y_low": y == 0, "y_high": y == ny - 1,
           "z_low": z == 0, "z_high": z == nz - 1}[face]
    idx = v[sel]
    return idx, int(idx.size)


def _occupied(st) -> np.ndarray:
    R = st.kind.shape[0]
    occupied = np.zeros((R, st.nvox), dtype=bool)
    nmax = int(st.t_count.max(initial=0))
    if nmax:
        rr, ss = np.nonzero(np.arange(nmax)[None, :] < st.t_count[:, None])
        occupied[rr, st.t_pos[rr, ss]] = True
    return occupied


def _inject(st, sp: SystemicParams, seed: int, step: int, dose: float) -> np.ndarray:
    """Intratumoral dose: place the domain's share at the free voxels nearest to the sites."""
    R = st.kind.shape[0]
    V = st.nvox
    n = int(math.floor(dose * (1.0 - sp.leak) * sp.domain_share + 0.5))
    entered = np.zeros(R, dtype=np.int64)
    if n <= 0:
        return entered
    occupied = _occupied(st)
    ers, evs = [], []
    for r in range(R):
        free = np.flatnonzero(~occupied[r])
        if free.size == 0:
            continue
        w = rng.blocks(seed, st.replicates[r], step, Stream.EXTRAVASATION, free, draw=1)[:, 0]
        order = np.lexsort((free, w, sp.site_d2[free]))
        chosen = np.sort(free[order[:n]])
        ers.append(np.full(chosen.size, r, dtype=np.int64))
        evs.append(chosen)
        entered[r] = chosen.size
    if ers:
        _append(st, np.concatenate(ers), np.concatenate(evs), sp.max_divisions)
    return entered


def _regional_entry(st, sp: SystemicParams, seed: int, step: int, lam: float) -> np.ndarray:
    R = st.kind.shape[0]
    occupied = _occupied(st)
    face = sp.face_voxels
    free = ~occupied[:, face]  # (R, F)
    nfree = free.sum(axis=1)
    p = np.zeros(R, dtype=F32)
    ok = nfree > 0
    p[ok] = np.minimum(lam / nfree[ok], 1.0).astype(F32)
    fr, fi = np.nonzero(free)
    entered = np.zeros(R, dtype=np.int64)
    if fr.size == 0:
        return entered
    fv = face[fi]
    u = rng.blocks(seed, st.replicates[fr], step, Stream.EXTRAVASATION, fv, draw=2)[:, 0]
    enter = rng.below(u, p[fr])
    er, ev = fr[enter], fv[enter]
    if er.size:
        _append(st, er, ev, sp.max_divisions)
    return np.bincount(er, minlength=R).astype(np.int64)


def systemic_phase(st, sp: SystemicParams, seed: int, step: int, events: dict) -> None:
    R = st.kind.shape[0]
    V = st.nvox
    dose = sp.dose_steps.get(step, 0.0)
    entered_total = np.zeros(R, dtype=np.int64)
    if sp.route == "intravenous":
        st.blood += dose
    elif sp.route == "intratumoral":
        if dose > 0:
            st.blood += dose * sp.leak
            entered_total += _inject(st, sp, seed, step, dose)
    else:  # regional
        if dose > 0:
            st.blood += dose * sp.regional_bf
            st.csf += dose * (1.0 - sp.regional_bf)
        lam = 0.0
        for s0, d in sp.dose_steps.items():
            if s0 <= step < s0 + sp.infusion_steps:
                lam += d * (1.0 - sp.regional_bf) * sp.face_share / sp.infusion_steps
        if lam > 0:
            e = _regional_entry(st, sp, seed, step, lam)
            entered_total += e
            if sp.face_share > 0:
                st.csf -= e / sp.face_share
                np.maximum(st.csf, 0.0, out=st.csf)
    lam = st.blood * sp.homing_per_step * sp.domain_share  # float64 (R,)

    kind = st.kind.reshape(R, V)
    occupied = _occupied(st)
    vr, vv = np.nonzero((kind == Kind.VESSEL) & ~occupied)
    entered = np.zeros(R, dtype=np.int64)
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
        enter = rng.below(u, p)
        er, ev = vr[enter], vv[enter]
        entered = np.bincount(er, minlength=R).astype(np.int64)
        if er.size:
            _append(st, er, ev, sp.max_divisions)
    st.blood -= entered
    st.blood -= st.blood * sp.homing_per_step
    st.blood *= sp.clearance_factor
    np.maximum(st.blood, 0.0, out=st.blood)
    st.csf *= sp.clearance_factor
    events["car_t_entered"] = events.get("car_t_entered", 0) + entered + entered_total


def toxicity_phase(st, sp: SystemicParams, events: dict) -> None:
    """Plasma IL-6, its peak and area under the curve, the CSF peak (module docstring)."""
    R = st.kind.shape[0]
    z = np.zeros(R, dtype=np.int64)
    lysed = (np.asarray(events.get("kills_tumour", z)) + np.asarray(events.get("kills_healthy", z))).astype(np.float64)
    nmax = int(st.t_count.max(initial=0))
    engaged = st.t_eng[:, :nmax].sum(axis=1, dtype=np.int64).astype(np.float64) if nmax else np.zeros(R)
    prod = (lysed * sp.il6_lysis + engaged * sp.il6_act_step) / 1e6 / sp.domain_share
    st.il6 += prod
    st.il6 *= sp.il6_decay
    np.maximum(st.il6_peak, st.il6, out=st.il6_peak)
    st.il6_auc += st.il6 * sp.dt_days
    np.maximum(st.csf_peak, st.csf, out=st.csf_peak)


def _append(st, er: np.ndarray, ev: np.ndarray, max_div: int) -> None:
    R, C = st.t_state.shape
    count = np.bincount(er, minlength=R)
    new = st.t_count + count
    if new.max() > C:
        worst = int(np.argmax(new))
        raise CapacityError(
            f"replicate {int(st.replicates[worst])} needs {int(new[worst])} CAR-T slots but "
            f"car_t.capacity_per_replicate is {C}; raise it (0 means one slot per voxel)")
    start = np.concatenate(([0], np.cumsum(count)[:-1]))
    slot = st.t_count[er] + (np.arange(er.size) - start[er])
    st.t_state[er, slot] = TState.EFFECTOR
    st.t_pos[er, slot] = ev
    st.t_exh[er, slot] = 0
    st.t_div[er, slot] = max_div
    st.t_kills[er, slot] = 0
    st.t_dir[er, slot] = -1
    st.t_act[er, slot] = 0
    if hasattr(st, "t_eng"):
        st.t_eng[er, slot] = 0
    st.t_count[:] = new

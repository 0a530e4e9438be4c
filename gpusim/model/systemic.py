"""Systemic compartment, delivery routes and the CSF pool.  MODEL.md sections 7 and 8; the
equations with their sources are in docs/model.md (Delivery); toxicity is model/toxicity.py.

Everything here is per replicate float64 host arithmetic in a fixed order (identical on every
backend) except the per-voxel entry decisions, which compare Philox words with float32
probabilities.  The doses are ``scenario.doses(sc)``: ``delivery.schedule`` (route, day, cells
each) or the legacy ``route`` / ``dose_days`` / ``dose_cells``.  Each step
(:func:`systemic_phase`, before the fields):

1. doses due at this step, in the schedule's order, by route:
   * intravenous: the dose enters the blood pool;
   * intratumoral: ``leak_fraction`` of it enters the blood; the domain receives
     ``n = floor(dose × (1 − leak) × V_domain / V_tumour + 0.5)`` cells, placed at the ``n`` voxels
     without a CAR-T cell nearest to the injection sites (ties broken by a random word: block
     (v, draw 1) of stream EXTRAVASATION, word 0), i.e. a ball around the sites;
   * regional (intraventricular / intracavitary): ``regional_blood_fraction`` enters the blood,
     the rest the CSF / cavity pool ``csf`` evenly over ``infusion_hours``;
2. CSF face entry, whenever the domain borders the CSF (a regional dose in the schedule or
   ``delivery.cns_tumour``) and the pool holds cells: the face receives ``λ_r = csf_r × (1 −
   exp(−csf_tissue_entry_per_day × dt)) × A_face / A_surface`` cells; each face voxel without a
   CAR-T cell admits one with probability ``float32(min(λ_r / n_free, 1))`` (word 0 of block (v,
   draw 2) of stream EXTRAVASATION); the pool loses ``entrants × A_surface / A_face``;
3. intravenous extravasation from the blood pool (all routes): the whole tumour receives
   ``blood × homing`` cells; the domain expects ``λ = blood × homing × V_domain / V_tumour``;
   each vessel voxel without a CAR-T cell admits one with probability ``p_v = float32(λ / W) ×
   w_v`` (capped at 1), ``w_v = 256 + floor(256 × weight × c_v)`` an integer chemokine weight and
   ``W`` its exact integer sum over the replicate's free vessel voxels (word: ``rng.words`` of
   stream EXTRAVASATION);
4. pools (:func:`blood_after_entry`): the blood loses entrants, homing and the IV -> CSF traffic
   ``blood × blood_to_csf × (1 + gain × endothelial)``, clears with its half-life and gains the
   CSF outflow's blood fraction; the CSF pool decays with ``csf_half_life_days`` and gains the
   traffic; a steroid's exposure clears both further (floor 0); after lymphodepletion the blood
   pool expands by ``exp(lymphodepletion_blood_expansion_per_day × H(t) × dt)``, H the homeostatic
   cytokines' time course (model/conditioning.py).
Entrants are appended to the agent table in voxel order (intratumoral, CSF face, then vessels)
and counted per route (``entered_*`` counters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import rng
from ..errors import CapacityError
from ..rng import Stream
from .conditioning import Conditioning
from .lattice import Kind, TState, coords, to_host, voxel_centres_um
from .tissue import tumour_centre_um

F32 = np.float32


ROUTES = ("intravenous", "intratumoral", "regional")


@dataclass(frozen=True)
class SystemicParams:
    dose_steps: dict[int, tuple]  # step -> ((route, cells), ...) in the schedule's order
    homing_per_step: float
    domain_share: float
    clearance_factor: float
    weight256: np.float32
    max_divisions: int
    leak: float = 0.0
    inject_order: np.ndarray | None = None  # (V,) int64 voxels sorted by (distance to the nearest site, v)
    inject_shells: tuple | None = None  # (starts, ends) int64 (S,): runs of equal distance in that order
    face_voxels: np.ndarray | None = None  # (F,) int64; None: no CSF / cavity face
    face_share: float = 0.0
    regional_bf: float = 0.0
    infusion_steps: int = 1
    csf_entry_per_step: float = 0.0  # fraction of the CSF pool crossing the whole surface per step
    csf_decay: float = 1.0  # CSF pool outflow factor per step
    csf_to_blood: float = 0.0
    blood_to_csf_per_step: float = 0.0
    csf_gain: float = 0.0
    steroid_clear_per_step: float = 0.0
    conditioning: Conditioning = Conditioning(None)
    lympho_rate: float = 0.0  # blood expansion rate x dt at the homeostatic cytokines' peak
    # toxicity
    il6_lysis: float = 0.0
    il6_act_step: float = 0.0
    il6_rate: float = 0.0  # IL-6 clearance rate, 1/day
    dt_days: float = 0.0
    truck: float = 1.0
    myeloid_s50: float = 1.0
    myeloid_lysis_w: float = 0.0
    myeloid_hill: float = 1.0
    myeloid_act: float = 0.0
    myeloid_off: float = 0.0
    il1_feedback: float = 0.0
    il1_half: float = 1.0
    il6_myeloid: float = 0.0
    il1_myeloid: float = 0.0
    il1_decay: float = 1.0
    il1_weight: float = 0.0
    crs_thresholds: np.ndarray = None
    icans_thresholds: np.ndarray = None
    toci_steps: frozenset = frozenset()
    toci_grade: int = 0
    toci_decay: float = 1.0
    toci_block: float = 0.0
    toci_clear: float = 0.0
    anakinra_steps: frozenset = frozenset()
    anakinra_grade: int = 0
    anakinra_decay: float = 1.0
    anakinra_block: float = 0.0
    steroid_steps: frozenset = frozenset()
    steroid_grade: int = 0
    steroid_decay: float = 1.0
    steroid_sup: float = 0.0
    endo_act: float = 0.0
    endo_half: float = 1.0
    endo_off: float = 0.0
    bbb_q0: float = 0.0
    csf_volume_mL: float = 150.0
    csf_turnover: float = 0.0
    csf_car_t_cyt: float = 0.0
    cns_tumour_cyt: float = 0.0  # 0 unless delivery.cns_tumour
    systemic_fraction: float = 1.0  # of the tumour's signal reaching the systemic compartment

    @property
    def routes(self) -> set:
        return {r for d in self.dose_steps.values() for r, _ in d}

    @classmethod
    def from_scenario(cls, sc, nvox: int) -> "SystemicParams":
        """The systemic parameters of a scenario.

        Parameters
        ----------
        sc : Scenario
            The resolved scenario.
        nvox : int
            Voxels of the domain (its share of the tumour volume).

        Returns
        -------
        SystemicParams
            Host float64 per-step factors, the dose schedule in steps and the entry geometry.
        """
        return cls(**_delivery_terms(sc, nvox), **_toxicity_terms(sc))


def _delivery_terms(sc, nvox: int) -> dict:
    """Doses, pools and entry terms of :meth:`SystemicParams.from_scenario`."""
    from ..scenario import doses as scenario_doses
    dt = sc["run.dt_min"]
    dtd = dt / 1440.0
    doses: dict[int, tuple] = {}
    for route, day, cells in scenario_doses(sc):
        s = int(round(day * 1440.0 / dt))
        doses[s] = doses.get(s, ()) + ((route, float(cells)),)
    routes = {r for d in doses.values() for r, _ in d}
    h = sc["domain.voxel_um"]
    vox_cm3 = (h * 1e-4) ** 3
    shape = sc.shape
    order = shells = face = None
    face_share = 0.0
    if "intratumoral" in routes:
        order, shells = _shells(_site_distance2(sc))
    if "regional" in routes or sc["delivery.cns_tumour"]:
        face, area_vox = _face(sc["delivery.regional_face"], shape)
        face_share = area_vox * (h * 1e-4) ** 2 / sc["delivery.regional_surface_cm2"]
    ln2 = math.log(2.0)
    return dict(
        dose_steps=doses,
        homing_per_step=sc["delivery.tumour_homing_fraction_per_day"] * dtd,
        domain_share=nvox * vox_cm3 / sc["delivery.tumour_volume_cm3"],
        clearance_factor=math.exp(-ln2 * dtd / sc["delivery.blood_half_life_days"]),
        weight256=F32(256.0 * sc["delivery.chemokine_weight"]),
        max_divisions=int(sc["car_t.max_divisions"]),
        leak=float(sc["delivery.leak_fraction"]),
        inject_order=order,
        inject_shells=shells,
        face_voxels=face,
        face_share=face_share,
        regional_bf=float(sc["delivery.regional_blood_fraction"]),
        infusion_steps=max(1, int(round(sc["delivery.infusion_hours"] * 60.0 / dt))),
        csf_entry_per_step=-math.expm1(-sc["delivery.csf_tissue_entry_per_day"] * dtd),
        csf_decay=math.exp(-ln2 * dtd / sc["delivery.csf_half_life_days"]),
        csf_to_blood=float(sc["delivery.csf_outflow_to_blood_fraction"]),
        blood_to_csf_per_step=sc["delivery.blood_to_csf_per_day"] * dtd,
        csf_gain=float(sc["delivery.csf_trafficking_activation_gain"]),
        steroid_clear_per_step=sc["toxicity.steroid_car_t_clearance_per_day"] * dtd,
        conditioning=Conditioning.from_scenario(sc),
        lympho_rate=sc["delivery.lymphodepletion_blood_expansion_per_day"] * dtd,
    )


def _toxicity_terms(sc) -> dict:
    """Cytokine, grade and drug terms of :meth:`SystemicParams.from_scenario`."""
    dt = sc["run.dt_min"]
    dtd = dt / 1440.0
    truck = sc["toxicity.il6_truck_multiplier"] if sc["car_t.generation"] == "fourth" else 1.0
    ln2 = math.log(2.0)
    steps = lambda days: frozenset(int(round(d * 1440.0 / dt)) for d in days)  # noqa: E731
    return dict(
        il6_lysis=float(sc["toxicity.il6_per_million_lysed_pg_per_mL"]),
        il6_act_step=float(sc["toxicity.il6_per_million_activated_per_day_pg_per_mL"]) * dtd * truck,
        il6_rate=ln2 / (sc["toxicity.il6_half_life_hours"] / 24.0),
        dt_days=dtd,
        truck=truck,
        myeloid_s50=float(sc["toxicity.myeloid_half_signal_cells"]),
        myeloid_lysis_w=float(sc["toxicity.myeloid_lysis_weight"]),
        myeloid_hill=float(sc["toxicity.myeloid_hill"]),
        myeloid_act=float(sc["toxicity.myeloid_activation_per_day"]),
        myeloid_off=ln2 / sc["toxicity.myeloid_half_life_days"],
        il1_feedback=float(sc["toxicity.myeloid_il1_feedback"]),
        il1_half=float(sc["toxicity.il1_half_pg_per_mL"]),
        il6_myeloid=float(sc["toxicity.il6_myeloid_max_pg_per_mL_per_day"]),
        il1_myeloid=float(sc["toxicity.il1_myeloid_max_pg_per_mL_per_day"]),
        il1_decay=math.exp(-ln2 * dtd / (sc["toxicity.il1_half_life_hours"] / 24.0)),
        il1_weight=float(sc["toxicity.il1_pyrogen_weight"]),
        crs_thresholds=np.asarray(sorted(sc["toxicity.crs_thresholds_pg_per_mL"]), np.float64),
        icans_thresholds=np.asarray(sorted(sc["toxicity.icans_thresholds_pg_per_mL"]), np.float64),
        toci_steps=steps(sc["toxicity.tocilizumab_days"]),
        toci_grade=int(sc["toxicity.tocilizumab_at_grade"]),
        toci_decay=math.exp(-ln2 * dtd / sc["toxicity.tocilizumab_half_life_days"]),
        toci_block=float(sc["toxicity.tocilizumab_blockade_fraction"]),
        toci_clear=float(sc["toxicity.tocilizumab_clearance_fraction"]),
        anakinra_steps=steps(sc["toxicity.anakinra_days"]),
        anakinra_grade=int(sc["toxicity.anakinra_at_grade"]),
        anakinra_decay=math.exp(-ln2 * dtd / sc["toxicity.anakinra_half_life_days"]),
        anakinra_block=float(sc["toxicity.anakinra_blockade_fraction"]),
        steroid_steps=steps(sc["toxicity.steroid_days"]),
        steroid_grade=int(sc["toxicity.steroid_at_grade"]),
        steroid_decay=math.exp(-ln2 * dtd / sc["toxicity.steroid_half_life_days"]),
        steroid_sup=float(sc["toxicity.steroid_myeloid_suppression_fraction"]),
        endo_act=float(sc["toxicity.endothelial_activation_per_day"]),
        endo_half=float(sc["toxicity.endothelial_half_pg_per_mL"]),
        endo_off=ln2 / sc["toxicity.endothelial_half_life_days"],
        bbb_q0=float(sc["toxicity.bbb_quotient_fraction"]),
        csf_volume_mL=float(sc["toxicity.csf_volume_mL"]),
        csf_turnover=float(sc["toxicity.csf_turnover_per_day"]),
        csf_car_t_cyt=float(sc["toxicity.csf_car_t_cytokine_pg_per_cell_per_day"]),
        cns_tumour_cyt=(float(sc["toxicity.cns_tumour_cytokine_pg_per_cell_per_day"])
                        if sc["delivery.cns_tumour"] else 0.0),
        systemic_fraction=(float(sc["toxicity.cns_tumour_systemic_fraction"])
                           if sc["delivery.cns_tumour"] else 1.0),
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


def doses_due(sp: SystemicParams, step: int, blood: np.ndarray, csf: np.ndarray) -> int:
    """Step 1 of the phase, host float64: the doses due at ``step`` into the blood and CSF pools
    (in place; a regional dose enters the CSF pool over its infusion).  Returns ``n_inject``, the
    cells the intratumoral placement puts into the domain (0 unless an intratumoral dose is
    due)."""
    n_inject = 0
    for route, dose in sp.dose_steps.get(step, ()):
        if route == "intravenous":
            blood += dose
        elif route == "intratumoral":
            if dose > 0:
                blood += dose * sp.leak
                n_inject += int(math.floor(dose * (1.0 - sp.leak) * sp.domain_share + 0.5))
        else:  # regional
            if dose > 0:
                blood += dose * sp.regional_bf
    for s0, due in sp.dose_steps.items():
        if s0 <= step < s0 + sp.infusion_steps:
            for route, dose in due:
                if route == "regional" and dose > 0:
                    csf += dose * (1.0 - sp.regional_bf) / sp.infusion_steps
    return n_inject


def face_lambda(sp: SystemicParams, csf: np.ndarray) -> np.ndarray | None:
    """float64 (R,): the CSF / cavity cells the domain's face receives this step (the pool's
    per-step tissue-entry fraction of the face's share), or None without a face or cells."""
    if sp.face_voxels is None or not (csf > 0).any():
        return None
    return csf * sp.csf_entry_per_step * sp.face_share


def regional_csf(sp: SystemicParams, csf: np.ndarray, entered: np.ndarray) -> None:
    """The CSF pool loses the face entrants scaled to the whole surface (host, in place): the
    whole surface admits ``entrants / face_share`` (floor 0)."""
    if sp.face_share > 0:
        csf -= entered / sp.face_share
        np.maximum(csf, 0.0, out=csf)


def blood_after_entry(sp: SystemicParams, blood: np.ndarray, csf: np.ndarray,
                      entered: np.ndarray, endothelial: np.ndarray | None = None,
                      steroid: np.ndarray | None = None) -> None:
    """Step 3, host float64 (in place): homing, IV -> CSF trafficking (raised by endothelial
    activation), clearance, CSF outflow (a fraction to the blood), the steroid's extra clearance
    of circulating and CSF cells (floor 0)."""
    R = blood.shape[0]
    endo = np.zeros(R) if endothelial is None else endothelial
    ster = np.zeros(R) if steroid is None else steroid
    blood -= entered
    blood -= blood * sp.homing_per_step
    to_csf = blood * (sp.blood_to_csf_per_step * (1.0 + sp.csf_gain * endo))
    blood -= to_csf
    out = csf * (1.0 - sp.csf_decay)
    blood *= sp.clearance_factor
    blood += out * sp.csf_to_blood
    csf -= out
    csf += to_csf
    kill = np.exp(-sp.steroid_clear_per_step * ster)
    blood *= kill
    csf *= kill
    np.maximum(blood, 0.0, out=blood)
    np.maximum(csf, 0.0, out=csf)


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


def regional_entry(st, sp: SystemicParams, seed: int, step: int, lam: np.ndarray) -> np.ndarray:
    """Regional entry (NumPy): bool (R, V), the face voxels without a CAR-T cell that admit one,
    each with probability ``float32(min(lam[r] / n_free, 1))`` (``lam`` float64 (R,)) (word 0 of block (v, draw 2) of stream
    EXTRAVASATION)."""
    R = st.kind.shape[0]
    face = sp.face_voxels
    free = ~occupied(np, st)[:, face]  # (R, F)
    nfree = free.sum(axis=1)
    p = np.zeros(R, dtype=F32)
    ok = nfree > 0
    p[ok] = np.minimum(lam[ok] / nfree[ok], 1.0).astype(F32)
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
            f"car_t.capacity_per_replicate is {C}; raise it (0 means car_t.max_per_voxel slots per voxel)")
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
    appended in voxel order (intratumoral, then the CSF face, then vessels)."""
    xp = entry.xp
    n_inject = doses_due(sp, step, st.blood, st.csf)
    entered = np.zeros(st.kind.shape[0], dtype=np.int64)
    if n_inject > 0:
        enter = inject_select(xp, st, sp, seed, step, n_inject, entry.inject_order(sp))
        e = append_entrants(xp, st, enter, sp.max_divisions)
        st.entered_intratumoral += e
        entered += e
    lam_face = face_lambda(sp, st.csf)
    if lam_face is not None:
        e = append_entrants(xp, st, entry.regional(st, sp, seed, step, lam_face), sp.max_divisions)
        regional_csf(sp, st.csf, e)
        st.entered_regional += e
        entered += e
    lam = st.blood * sp.homing_per_step * sp.domain_share  # float64 (R,)
    e = append_entrants(xp, st, entry.vessels(st, sp, seed, step, lam), sp.max_divisions)
    st.entered_iv += e
    blood_after_entry(sp, st.blood, st.csf, e, st.endothelial, st.steroid)
    if sp.conditioning.on:  # homeostatic expansion after lymphodepletion (IL-7 / IL-15)
        st.blood *= math.exp(sp.lympho_rate * sp.conditioning.cytokines(step))
    events["car_t_entered"] = events.get("car_t_entered", 0) + entered + e

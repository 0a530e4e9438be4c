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
and counted per route (``entered_*`` counters) and per product (``entered_product``).

Products (``scenario.products``; a schedule entry's optional fourth token): the pools ``blood``
and ``csf`` are (R, P), one per product, and every pool term above applies to each product's
pool on its own (the shared factors: endothelial activation, steroid, lymphodepletion); the
entry rates use the pools' totals.  An intratumoral dose places cells of its own product; an
entrant from the CSF face or a vessel takes the product of the pool it came from, drawn in
proportion to the pools (:func:`entrant_products`, stream ENTRY_PRODUCT, host arithmetic shared
by every backend).  With one product (P = 1) every operation is the one it was before products
existed, element for element.  The same pools are also kept per dose (``blood_dose``,
``csf_dose`` (R, D)), with every pool operation applied to them on their own: bookkeeping that
decides only the dose an entrant is attributed to (:func:`entrant_doses`, ``entered_dose``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import rng
from ..errors import CapacityError
from ..rng import Stream
from .lattice import Kind, TState, to_host
from .systemic_params import SystemicParams
from .state import live_slots

F32 = np.float32


ROUTES = ("intravenous", "intratumoral", "regional")


def occupied(xp, st):
    """bool (R, V): the voxels holding a CAR-T cell (array code for NumPy or CuPy)."""
    occ = xp.zeros((st.t_state.shape[0], st.nvox), dtype=bool)
    rr, ss = live_slots(st, xp)
    occ[rr, st.t_pos[rr, ss]] = True
    return occ


def doses_due(sp: SystemicParams, step: int, blood: np.ndarray, csf: np.ndarray,
              key: int = 2) -> np.ndarray:
    """Step 1 of the phase, host float64: the doses due at ``step`` into the blood and CSF pools
    of their product (``blood``, ``csf`` (R, P), in place; a regional dose enters the CSF pool
    over its infusion), or with ``key`` 3 of their dose (the (R, D) per-dose pools).  Returns
    int64 (P,) (or (D,)) ``n_inject``, the cells of each product (dose) the intratumoral
    placement puts into the domain (0 unless an intratumoral dose is due)."""
    n_inject = np.zeros(blood.shape[1], dtype=np.int64)
    for due in sp.dose_steps.get(step, ()):
        route, dose, p = due[0], due[1], due[key]
        if route == "intravenous":
            blood[:, p] += dose
        elif route == "intratumoral":
            if dose > 0:
                blood[:, p] += dose * sp.leak
                n_inject[p] += int(math.floor(dose * (1.0 - sp.leak) * sp.domain_share + 0.5))
        else:  # regional
            if dose > 0:
                blood[:, p] += dose * sp.regional_bf
    for s0, due in sp.dose_steps.items():
        if s0 <= step < s0 + sp.infusion_steps:
            for d in due:
                if d[0] == "regional" and d[1] > 0:
                    csf[:, d[key]] += d[1] * (1.0 - sp.regional_bf) / sp.infusion_steps
    return n_inject


def face_lambda(sp: SystemicParams, csf: np.ndarray) -> np.ndarray | None:
    """float64 (R,): the CSF / cavity cells the domain's face receives this step (the pool's
    per-step tissue-entry fraction of the face's share; every product's), or None without a face
    or cells.  ``csf`` (R, P)."""
    if sp.face_voxels is None or not (csf > 0).any():
        return None
    return csf.sum(axis=1) * sp.csf_entry_per_step * sp.face_share


def regional_csf(sp: SystemicParams, csf: np.ndarray, entered: np.ndarray) -> None:
    """Each product's CSF pool loses its face entrants scaled to the whole surface (host, in
    place; ``csf``, ``entered`` (R, P)): the whole surface admits ``entrants / face_share`` (floor
    0)."""
    if sp.face_share > 0:
        csf -= entered / sp.face_share
        np.maximum(csf, 0.0, out=csf)


def blood_after_entry(sp: SystemicParams, blood: np.ndarray, csf: np.ndarray,
                      entered: np.ndarray, endothelial: np.ndarray | None = None,
                      steroid: np.ndarray | None = None) -> None:
    """Step 3, host float64 (in place): homing, IV -> CSF trafficking (raised by endothelial
    activation), clearance, CSF outflow (a fraction to the blood), the steroid's extra clearance
    of circulating and CSF cells (floor 0).  ``blood``, ``csf``, ``entered`` (R, P): each
    product's pool on its own; ``endothelial``, ``steroid`` (R,)."""
    R = blood.shape[0]
    endo = (np.zeros(R) if endothelial is None else endothelial)[:, None]
    ster = (np.zeros(R) if steroid is None else steroid)[:, None]
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


def append_entrants(xp, st, enter, max_div: int, product=0) -> np.ndarray:
    """Append a CAR-T cell at every voxel marked in ``enter`` ((R, V) bool or uint8, NumPy or CuPy)
    after each replicate's live cells, in voxel order (effector, exhaustion 0, ``max_div``
    divisions left, no kills, no direction, not activated, product id ``product``: one for all,
    or host uint8 per entrant in (replicate, voxel) order).  Returns the host int64 (R,) counts;
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
    st.t_prod[er, slot] = product if np.isscalar(product) else xp.asarray(product)
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


def _category(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row, category k iff ``threshold(c_(k-1)) <= u < threshold(c_k)``, ``c_k =
    float32(Σ_(j<=k) w_j / Σ w)`` (host float64, rounded once; c of the last category is 1, and
    an empty row gives 0): a draw in proportion to ``weights`` (n, K) from the words ``u``."""
    cum = np.cumsum(np.maximum(weights, 0.0), axis=1)
    tot = cum[:, -1:]
    c = np.where(tot > 0, cum[:, :-1] / np.where(tot > 0, tot, 1.0), 1.0).astype(F32)
    out = np.zeros(u.size, dtype=np.int64)
    for k in range(weights.shape[1] - 1):
        out += ~rng.below(u, c[:, k])
    return out


def entrant_products(seed: int, reps: np.ndarray, step: int, er: np.ndarray, ev: np.ndarray,
                     pools: np.ndarray) -> np.ndarray:
    """The product of each entrant (replicate ``er``, voxel ``ev``, host int64): drawn in
    proportion to the replicate's pools ``pools`` (R, P) float64, which hold the cells the
    entrants come from (:func:`_category` with word 0 of block (v) of stream ENTRY_PRODUCT).
    uint8 (n,)."""
    u = rng.blocks(seed, reps[er], step, Stream.ENTRY_PRODUCT, ev)[:, 0]
    return _category(u, pools[er]).astype(np.uint8)


def entrant_doses(seed: int, reps: np.ndarray, step: int, er: np.ndarray, ev: np.ndarray,
                  prod: np.ndarray, dose_pools: np.ndarray, dose_product: np.ndarray) -> np.ndarray:
    """The dose of each entrant of product ``prod``: among that product's doses, in proportion to
    the per-dose pools ``dose_pools`` (R, D) (uniformly if they are all empty), word 1 of the
    entrant's ENTRY_PRODUCT block.  Bookkeeping only: nothing but ``entered_dose`` depends on it.
    int64 (n,)."""
    mine = dose_product[None, :] == prod.astype(np.int64)[:, None]  # (n, D)
    w = np.where(mine, dose_pools[er], 0.0)
    w = np.where(w.sum(axis=1, keepdims=True) > 0, w, mine.astype(np.float64))
    u = rng.blocks(seed, reps[er], step, Stream.ENTRY_PRODUCT, ev)[:, 1]
    return _category(u, w)


def enter_products(xp, st, sp: SystemicParams, seed: int, step: int, enter, dose_pools: np.ndarray,
                   pools: np.ndarray | None = None, product: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Append the entrants marked in ``enter`` (:func:`append_entrants`), each of product
    ``product``, or, given ``pools`` (R, P), of the product drawn by :func:`entrant_products`;
    each is attributed to a dose of its product by :func:`entrant_doses` (``dose_pools`` (R, D)).
    Returns host int64 (R, P) and (R, D): the entrants of each product and of each dose."""
    R, P, D = st.kind.shape[0], sp.n_products, sp.n_doses
    by_p, by_d = np.zeros((R, P), dtype=np.int64), np.zeros((R, D), dtype=np.int64)
    if P == 1 and D == 1:
        by_p[:, 0] = by_d[:, 0] = append_entrants(xp, st, enter, sp.max_divisions)
        return by_p, by_d
    er, ev = (to_host(a).astype(np.int64) for a in xp.nonzero(enter.reshape(R, -1)))
    if pools is None or P == 1:
        prod = np.full(er.size, product, dtype=np.uint8)
        append_entrants(xp, st, enter, sp.max_divisions, product)
    else:
        prod = entrant_products(seed, st.replicates, step, er, ev, pools)
        append_entrants(xp, st, enter, sp.max_divisions, prod)
    np.add.at(by_p, (er, prod.astype(np.int64)), 1)
    dose = entrant_doses(seed, st.replicates, step, er, ev, prod, dose_pools, sp.dose_product)
    np.add.at(by_d, (er, dose), 1)
    return by_p, by_d


def _count(st, route: str, by_p: np.ndarray, by_d: np.ndarray) -> np.ndarray:
    """Add entrants to the route's counter and the per-product and per-dose counters; returns
    the (R,) total."""
    n = by_p.sum(axis=1)
    getattr(st, route)[:] += n
    st.entered_product += by_p
    st.entered_dose += by_d
    return n


def systemic_phase(st, sp: SystemicParams, seed: int, step: int, events: dict,
                   entry=NumpyEntry) -> None:
    """The systemic phase on any backend: the host arithmetic here, the entry decisions from
    ``entry`` (``regional``, ``vessels``: (R, V) masks; ``xp`` the array module), entrants
    appended in voxel order (intratumoral, product by product, then the CSF face, then vessels),
    each entrant of the product whose pool it came from (:func:`enter_products`).  The per-dose
    pools get every operation the product pools get, on their own."""
    xp = entry.xp
    R = st.kind.shape[0]
    n_inject = doses_due(sp, step, st.blood, st.csf)
    n_dose = doses_due(sp, step, st.blood_dose, st.csf_dose, key=3)
    entered = np.zeros(R, dtype=np.int64)
    for p in np.flatnonzero(n_inject > 0):
        enter = inject_select(xp, st, sp, seed, step, int(n_inject[p]), entry.inject_order(sp))
        placed = np.broadcast_to(np.where(sp.dose_product == p, n_dose, 0).astype(np.float64), (R, sp.n_doses))
        e = enter_products(xp, st, sp, seed, step, enter, placed, product=int(p))
        entered += _count(st, "entered_intratumoral", *e)
    lam_face = face_lambda(sp, st.csf)
    if lam_face is not None:
        e = enter_products(xp, st, sp, seed, step, entry.regional(st, sp, seed, step, lam_face),
                           st.csf_dose, pools=st.csf)
        regional_csf(sp, st.csf, e[0])
        regional_csf(sp, st.csf_dose, e[1])
        entered += _count(st, "entered_regional", *e)
    lam = st.blood.sum(axis=1) * sp.homing_per_step * sp.domain_share  # float64 (R,)
    e = enter_products(xp, st, sp, seed, step, entry.vessels(st, sp, seed, step, lam), st.blood_dose,
                       pools=st.blood)
    entered += _count(st, "entered_iv", *e)
    blood_after_entry(sp, st.blood, st.csf, e[0], st.endothelial, st.steroid)
    blood_after_entry(sp, st.blood_dose, st.csf_dose, e[1], st.endothelial, st.steroid)
    if sp.conditioning.on:  # homeostatic expansion after lymphodepletion (IL-7 / IL-15)
        grow = math.exp(sp.lympho_rate * sp.conditioning.cytokines(step))
        st.blood *= grow
        st.blood_dose *= grow
    events["car_t_entered"] = events.get("car_t_entered", 0) + entered

"""Microenvironment phase: PD-L1 of tumour cells, recovery of down-regulated antigen, stroma
degradation.  MODEL.md sections 4 and 9.  Runs after the tissue-cell phase and before the CAR-T
phase, reading the fields just solved and the CAR-T table as the step began.

* PD-L1 ``L`` (float32 per voxel, 0..1, zero off tumour cells), per tumour voxel, in this order::

      i  = ifng / (ifng + K_I)
      up = (r_ifng * i + r_hyp * hyp) * (1 - L)          # hyp = 1 if o2 < o2_hypoxic else 0
      L' = min(max((L + up) - r_dec * L, 0), 1)

  with per-step rates ``r = 1 − exp(−rate × dt)`` computed on the host.  No random numbers.
* Antigen recovery: a tumour cell whose level of antigen A (B) is below its baseline
  (``antigen_a_base``; trogocytosis lowered it) returns to the baseline with probability
  ``p_rec = 1 − exp(−antigen_recovery_per_day × dt)``: words 0 (A) and 1 (B) of block (v, draw 1)
  of stream TUMOUR_EVENT (draw 0 of that stream is the per-voxel event word).
* Innate killing recruited by IL-12 (TRUCK): a tumour cell, whatever its antigens, becomes
  apoptotic iff word 0 of block (v, draw 2) of stream TUMOUR_EVENT < ``p_innate × (il12 / (il12 +
  il12_half))`` (float32; ``p_innate = 1 − exp(−innate_kill_rate_per_day × dt)``); events
  ``kills_innate``.  Zero without IL-12, i.e. for every generation but the 4th.
* Stroma, in this order: at a voxel holding ``n`` > 0 effector CAR-T cells (heparanase /
  FAP-directed products degrade the matrix as they migrate), ``ecm ← max(ecm − d_car × n, 0)``
  (``d_car`` = car_t_degradation_per_day × dt / 1440, float32; ``n`` as float32); then every
  fibroblast restores its voxel's ECM towards ``caf_level`` (``stroma.fibroblast_density``) when
  below it, ``ecm ← ecm + r_dep × (caf_level − ecm)``; then the TGF-β-driven deposition below;
  from the drug's start step, everywhere ``ecm ← ecm × (1 − d_drug)`` with
  ``d_drug = 1 − exp(−drug_degradation_per_day × dt/1440)`` (float32).  Last, with
  ``car_t.fap_targeting``, a fibroblast in a voxel holding an effector dies (kind APOPTOTIC) iff
  word 1 of block (v, draw 2) of stream TUMOUR_EVENT < ``p_fap`` (one draw per voxel however many
  effectors; events ``kills_fibroblast``): after the deposition, whose neighbour reads must see the
  fibroblasts of the phase start (on a device, a launch of its own).
* TGF-β-driven matrix deposition (MODEL.md section 9, the second target of TGF-β): activated
  fibroblasts (CAFs) raise the ECM density of their own voxel and of its Moore neighbours.  At
  every voxel that holds a fibroblast or has one among its Moore neighbours, after the
  restoration and before the drug, in float32 and this order::

      a   = T / (T + caf_half)          # T: TGF-β (total, ng/mL) at the voxel, this step's field
      ecm = ecm + (r_tgf_dep * a) * (1 - ecm)

  with ``r_tgf_dep = 1 − exp(−tgfb.ecm_deposition_per_day × dt/1440)`` and ``caf_half =
  tgfb.caf_half_ng_per_mL / tgfb.active_fraction`` (the active K in the field's units).  It
  acts whatever the CAR-T armour: a ``dnTGFbRII`` T cell ignores TGF-β, the stroma does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import rng
from .rates import per_step, step_probability
from ..rng import Stream
from .lattice import Kind, TState, moore_offsets

F32 = np.float32


@dataclass(frozen=True)
class MicroenvParams:
    r_ifng: np.float32
    r_hyp: np.float32
    r_dec: np.float32
    ifng_half: np.float32
    o2_hypoxic: np.float32
    p_recover: np.float32
    d_car: np.float32
    d_drug: np.float32
    drug_start_step: int
    p_innate: np.float32 = F32(0)
    il12_half: np.float32 = F32(1)
    p_fap: np.float32 = F32(0)
    r_dep: np.float32 = F32(0)
    caf_level: np.float32 = F32(0)
    r_tgf_dep: np.float32 = F32(0)
    caf_half: np.float32 = F32(1)

    @classmethod
    def from_scenario(cls, sc) -> "MicroenvParams":
        dt = sc["run.dt_min"]
        step_rate = lambda per_day: step_probability(per_day, dt)  # noqa: E731
        # Deliberate twins: a declaration table, one line per scenario parameter (alike in shape, not logic).
        return cls(
            r_ifng=step_rate(sc["tumour.pdl1_ifng_rate_per_day"]),
            r_hyp=step_rate(sc["tumour.pdl1_hypoxia_rate_per_day"]),
            r_dec=step_rate(sc["tumour.pdl1_decay_per_day"]),
            ifng_half=F32(sc["tumour.pdl1_ifng_half"]),
            o2_hypoxic=F32(sc["tumour.o2_hypoxic_mmHg"]),
            p_recover=step_rate(sc["tumour.antigen_recovery_per_day"]),
            d_car=F32(per_step(sc["stroma.car_t_degradation_per_day"], dt)),
            d_drug=step_rate(sc["stroma.drug_degradation_per_day"]),
            drug_start_step=int(round(sc["stroma.drug_start_day"] * 1440.0 / dt)),
            p_innate=step_rate(sc["il12.innate_kill_rate_per_day"]),
            il12_half=F32(sc["il12.half"]),
            p_fap=(F32(-np.expm1(-sc["car_t.kill_rate_per_min"] * dt)) if sc["car_t.fap_targeting"]
                   else F32(0)),
            r_dep=step_rate(sc["stroma.fibroblast_ecm_deposition_per_day"]),
            caf_level=F32(sc["stroma.fibroblast_density"]),
            r_tgf_dep=step_rate(sc["tgfb.ecm_deposition_per_day"]),
            caf_half=F32(sc["tgfb.caf_half_ng_per_mL"] / sc["tgfb.active_fraction"]),
        )


def near_kind(kind: np.ndarray, k: int) -> np.ndarray:
    """bool (R, Z, Y, X): voxels holding kind ``k`` or with a Moore neighbour (inside the domain)
    holding it."""
    hit = kind == k
    R, Z, Y, X = kind.shape
    pad = np.pad(hit, ((0, 0), (1, 1), (1, 1), (1, 1)))
    out = hit.copy()
    for dz, dy, dx in moore_offsets(Z):
        out |= pad[:, 1 + dz:1 + dz + Z, 1 + dy:1 + dy + Y, 1 + dx:1 + dx + X]
    return out


def microenv_phase(st, mp: MicroenvParams, seed: int, step: int, events: dict) -> None:
    R = st.kind.shape[0]
    V = st.nvox
    kind = st.kind.reshape(R, V)
    tum = kind == Kind.TUMOUR
    # --- PD-L1 --------------------------------------------------------------------------------
    L = st.pdl1.reshape(R, V)
    if mp.r_ifng > 0 or mp.r_hyp > 0 or L.any():
        ifn = st.ifng.reshape(R, V)
        i = ifn / (ifn + mp.ifng_half)
        hyp = (st.o2.reshape(R, V) < mp.o2_hypoxic).astype(F32)
        up = (mp.r_ifng * i + mp.r_hyp * hyp) * (F32(1) - L)
        new = np.minimum(np.maximum((L + up) - mp.r_dec * L, F32(0)), F32(1))
        L[:] = np.where(tum, new, F32(0)).astype(F32)
    # --- antigen recovery ---------------------------------------------------------------------
    if mp.p_recover > 0:
        aa, ab = st.antigen_a.reshape(R, V), st.antigen_b.reshape(R, V)
        ba, bb = st.antigen_a_base.reshape(R, V), st.antigen_b_base.reshape(R, V)
        r_idx, v_idx = np.nonzero(tum & ((aa < ba) | (ab < bb)))
        if r_idx.size:
            b = rng.blocks(seed, st.replicates[r_idx], step, Stream.TUMOUR_EVENT, v_idx, draw=1)
            rec_a = (aa[r_idx, v_idx] < ba[r_idx, v_idx]) & rng.below(b[:, 0], mp.p_recover)
            rec_b = (ab[r_idx, v_idx] < bb[r_idx, v_idx]) & rng.below(b[:, 1], mp.p_recover)
            aa[r_idx[rec_a], v_idx[rec_a]] = ba[r_idx[rec_a], v_idx[rec_a]]
            ab[r_idx[rec_b], v_idx[rec_b]] = bb[r_idx[rec_b], v_idx[rec_b]]
            events["antigen_recovered"] = np.bincount(r_idx[rec_a | rec_b], minlength=R).astype(np.int64)
    _innate_kill(st, mp, seed, step, tum, events)
    # --- stroma degradation, FAP killing, CAF deposition --------------------------------------
    ecm = st.ecm.reshape(R, V)
    nmax = int(st.t_count.max(initial=0))
    n = rr = pp = None
    if (mp.d_car > 0 or mp.p_fap > 0) and nmax:
        r, s = np.nonzero(np.arange(nmax)[None, :] < st.t_count[:, None])
        act = st.t_state[r, s] == TState.EFFECTOR
        n = np.bincount(r[act] * V + st.t_pos[r[act], s[act]], minlength=R * V).reshape(R, V)
        rr, pp = np.nonzero(n)
        if mp.d_car > 0:
            ecm[rr, pp] = np.maximum(ecm[rr, pp] - mp.d_car * n[rr, pp].astype(F32), F32(0))
    if mp.r_dep > 0:
        caf = (kind == Kind.FIBROBLAST) & (ecm < mp.caf_level)
        ecm[caf] = (ecm[caf] + mp.r_dep * (mp.caf_level - ecm[caf])).astype(F32)
    if mp.r_tgf_dep > 0:
        near = near_kind(st.kind, Kind.FIBROBLAST).reshape(R, V)
        t = st.tgfb.reshape(R, V)
        a = t / (t + mp.caf_half)
        dep = (ecm + (mp.r_tgf_dep * a) * (F32(1) - ecm)).astype(F32)
        ecm[near] = dep[near]
    if mp.d_drug > 0 and step >= mp.drug_start_step:
        ecm *= (F32(1) - mp.d_drug)
    if mp.p_fap > 0 and rr is not None:
        _fap_kill(st, mp, seed, step, rr, pp, events)


def _innate_kill(st, mp: MicroenvParams, seed: int, step: int, tum: np.ndarray, events: dict) -> None:
    """IL-12-recruited innate killing of tumour cells (module docstring); ``tum`` the tumour mask
    (R, V) at the phase start."""
    R = st.kind.shape[0]
    il = st.il12.reshape(R, -1)
    r_idx, v_idx = np.nonzero(tum & (il > 0)) if mp.p_innate > 0 else (np.zeros(0, np.int64),) * 2
    if r_idx.size:
        f = il[r_idx, v_idx]
        p = (mp.p_innate * (f / (f + mp.il12_half))).astype(F32)
        w = rng.blocks(seed, st.replicates[r_idx], step, Stream.TUMOUR_EVENT, v_idx, draw=2)[:, 0]
        k = rng.below(w, p)
        st.kind.reshape(R, -1)[r_idx[k], v_idx[k]] = Kind.APOPTOTIC
        r_idx = r_idx[k]
    events["kills_innate"] = events.get("kills_innate", 0) + np.bincount(r_idx, minlength=R)


def _fap_kill(st, mp: MicroenvParams, seed: int, step: int, rr, pp, events: dict) -> None:
    """FAP-targeting CAR: the voxels (rr, pp), each holding at least one effector (no voxel
    twice), lose their fibroblast (module docstring)."""
    R = st.kind.shape[0]
    kind = st.kind.reshape(R, -1)
    f = kind[rr, pp] == Kind.FIBROBLAST
    rr, pp = rr[f], pp[f]
    w = rng.blocks(seed, st.replicates[rr], step, Stream.TUMOUR_EVENT, pp, draw=2)[:, 1]
    k = rng.below(w, mp.p_fap)
    kind[rr[k], pp[k]] = Kind.APOPTOTIC
    events["kills_fibroblast"] = events.get("kills_fibroblast", 0) + np.bincount(rr[k], minlength=R)

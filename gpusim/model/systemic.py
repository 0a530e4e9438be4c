"""Systemic compartment and intravenous delivery.  MODEL.md sections 7 and 8.

The blood pool is a well-mixed count of circulating CAR-T cells per replicate (float64, host
arithmetic in a fixed order, identical on every backend).  Each step:

1. doses due at this step are added to the pool;
2. the whole tumour receives ``blood × homing`` cells (homing = tumour_homing_fraction_per_day ×
   dt / 1440); the domain, a sample of volume ``V_domain`` of a tumour of ``tumour_volume_cm3``,
   expects ``λ = blood × homing × V_domain / V_tumour`` of them;
3. each vessel voxel without a CAR-T cell admits one cell with probability
   ``p_v = float32(λ / W) × w_v`` (capped at 1), where ``w_v = 256 + floor(256 × weight × c_v)``
   is an integer chemokine weight and ``W`` its exact integer sum over the replicate's free
   vessel voxels; entrants are appended to the agent table in voxel order;
4. the pool loses the entrants, the homing cells and its clearance: ``blood ← (blood − homing
   loss) × exp(−ln 2 dt / half-life)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import rng
from ..errors import CapacityError
from ..rng import Stream
from .lattice import Kind, TState

F32 = np.float32


@dataclass(frozen=True)
class SystemicParams:
    dose_steps: dict[int, float]
    homing_per_step: float
    domain_share: float
    clearance_factor: float
    weight256: np.float32
    max_divisions: int

    @classmethod
    def from_scenario(cls, sc, nvox: int) -> "SystemicParams":
        dt = sc["run.dt_min"]
        doses: dict[int, float] = {}
        for day in sc["delivery.dose_days"]:
            s = int(round(day * 1440.0 / dt))
            doses[s] = doses.get(s, 0.0) + sc["delivery.dose_cells"]
        vox_cm3 = (sc["domain.voxel_um"] * 1e-4) ** 3
        return cls(
            dose_steps=doses,
            homing_per_step=sc["delivery.tumour_homing_fraction_per_day"] * dt / 1440.0,
            domain_share=nvox * vox_cm3 / sc["delivery.tumour_volume_cm3"],
            clearance_factor=math.exp(-math.log(2.0) * dt / (sc["delivery.blood_half_life_days"] * 1440.0)),
            weight256=F32(256.0 * sc["delivery.chemokine_weight"]),
            max_divisions=int(sc["car_t.max_divisions"]),
        )


def systemic_phase(st, sp: SystemicParams, seed: int, step: int, events: dict) -> None:
    R = st.kind.shape[0]
    V = st.nvox
    st.blood += sp.dose_steps.get(step, 0.0)
    lam = st.blood * sp.homing_per_step * sp.domain_share  # float64 (R,)

    kind = st.kind.reshape(R, V)
    occupied = np.zeros((R, V), dtype=bool)
    nmax = int(st.t_count.max(initial=0))
    if nmax:
        rr, ss = np.nonzero(np.arange(nmax)[None, :] < st.t_count[:, None])
        occupied[rr, st.t_pos[rr, ss]] = True
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
    events["car_t_entered"] = events.get("car_t_entered", 0) + entered


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
    st.t_count[:] = new

"""CAR-T phase: recognition and killing, exhaustion, proliferation, death, migration.
MODEL.md section 5.

The agent table is padded per replicate: arrays (R, C) with the live cells in slots
``0 .. count[r]-1``.  The phase gathers the live cells into flat arrays ordered by (replicate,
slot), works on those, and writes them back compacted: survivors keep their order, daughters
follow in their parents' order.  Random words are addressed by the slot a cell holds at the start
of the sub-phase (``entity``), so nothing depends on thread or batch order.

Sub-phases, each reading the state as it was when it began:
1. engagement: each effector picks one candidate target (own voxel or Moore neighbour holding a
   tumour or healthy cell that the logic of the cell's product can see: ``rec_tables[t_prod]``), claims it (one T cell per target and
   step, lowest claim wins), is stimulated (engaged) with the recognition probability and kills
   with the kill probability ``p_kill × S × f_pdl1 × boost`` (capped at 1).  A recognised tumour
   cell that is not killed loses a fraction of its antigen levels (trogocytosis):
   ``level − ((level × f256) >> 8)``, at least 1, integer arithmetic, ``f256 =
   round(256 × trogocytosis_fraction)``.
   Memory cells (TState.MEMORY) pick a candidate exactly like effectors (word 0) but take no part
   in the claims and never kill: a memory cell recognises its candidate iff word 2 < its
   recognition threshold and then reactivates iff word 3 < threshold(p_react): it becomes an
   effector, stimulated this step (t_eng 1, t_act = activation_steps, exhaustion as an engaged
   cell with the target's PD-L1) without killing;
2. exhaustion: + per kill; + per step engaged × target PD-L1 × (1 − blockade), both amplified by
   TGF-β (× ``g = 1 + gain × T/(T + K)``); − recovery when not stimulated; + under hypoxia; e >= 1
   exhausts an effector (memory cells keep their state).  TGF-β alone never exhausts: a cell that
   is not stimulated gains nothing from it;
3. fate: death (rows effector / exhausted / memory, starving or not), then conversion of an
   effector that was not stimulated this step into a memory cell (probability p_mem, t_act set
   to 0), then division of activated effectors (probability ``p_division(step) × S``) into a
   neighbour holding fewer than ``max_per_voxel`` CAR-T cells at the phase start (claims: one
   daughter per voxel); then compaction;
4. migration: ``n_sub`` sub-moves, each: move with probability
   ``p_move × (1 − ρ_here × (1 − dense_speed_fraction))`` (float32, ρ_here the ECM density of the
   cell's voxel: slower in dense matrix, Salmon 2012); direction kept with
   probability ``persistence``, else up the chemokine gradient with probability
   ``chemotaxis_bias`` (when a neighbour has more chemokine than the cell's voxel), else uniform
   over the Moore neighbourhood; entry into a voxel holding fewer than ``max_per_voxel`` CAR-T
   cells succeeds with probability (1 - ρ(1 - permeability)) × (crowding factor if it holds a
   tumour cell), permeability per attempt as Kather 2017's; conflicts by claims (one entrant per
   voxel and sub-move, so the cap holds).

Suppression (MODEL.md section 5), float32 per CAR-T cell at its own voxel, in this order::

    T   = tgfb / (1 + il12 * inv_il12_half)         # IL-12 relieves TGF-β (T = 0 with dnTGFbRII)
    ft  = 1 / (1 + T * inv_tgfb_half)                 # reversible: the TGF-β at the voxel now
    fh  = hypoxia_factor if o2 < o2_hypoxic else 1
    fg  = glucose / (glucose + glucose_half)          # 1 when glucose_half = 0
    S   = (ft * fh) * fg
    boost = 1 + kill_boost * (il12 / (il12 + il12_half))
    f_pdl1 = 1 - pdl1_inhib(step) * pdl1[target]      # pdl1_inhib = inhibition × (1 − blockade)
    p   = min(((p_kill * S) * f_pdl1) * boost, 1)

Step-dependent host constants (float64 on the host, rounded once to float32): anti-PD-1 blockade
``max_fraction × min(1, Σ_doses 2^(−(t − t_d)/half-life))`` and the reinvigoration probability
it drives; the kill and division probabilities, raised after lymphodepletion
(model/conditioning.py).  Per replicate: the death table with the steroid's extra death rate.
Costimulation (CD28 vs 4-1BB) multiplies the rates before ``1 − exp(−rate dt)`` on the host.  The
5th generation (IL-2Rβ) changes no constant: its JAK-STAT signal ``s = t_act × inv_act`` (float32,
1 after an engagement, 0 without one) raises division × (1 + g5_div s), lowers an effector's death
× (1 − g5_surv s) and adds g5_mem s to the memory conversion probability.
RNG: CAR_T_ENGAGE (slot, draw 0) words 0 candidate, 1 claim priority, 2 recognition, 3 kill or
reactivation; CAR_T_FATE (slot, draw 0) words 0 death, 1 division, 2 neighbour, 3 claim priority;
CAR_T_FATE (slot, draw 1) word 0 memory conversion (drawn only when p_mem or g5_mem > 0), word 1
anti-PD-1 reinvigoration of an exhausted cell (only when p_revive > 0); CAR_T_MOVE
(slot, draws 2m and 2m + 1 of sub-move m).  Memory cells migrate like the others and neither
kill, divide nor secrete (t_act 0, t_eng 0 unless reactivated).
"""

from __future__ import annotations

import numpy as np

from .. import rng
from ..errors import CapacityError
from ..rng import Stream
from .car_t_params import CarTParams, recognition_table, tgfb_half_field  # noqa: F401 (public path)
from .lattice import Kind, TState, moore_offsets, neighbours, resolve_claims

F32 = np.float32
SHIFT = np.uint64(32)


def suppression(cp: CarTParams, tgfb, il12, o2, glucose):
    """Suppression factor S (float32) and the TGF-β a T cell feels, per cell (module docstring)."""
    if cp.dnTGFbRII:
        t = np.zeros_like(tgfb)
    else:
        t = (tgfb / (F32(1) + il12 * cp.inv_il12_half)).astype(F32)
    ft = F32(1) / (F32(1) + t * cp.inv_tgfb_half)
    fh = np.where(o2 < cp.o2_hypoxic, cp.hypoxia_factor, F32(1)).astype(F32)
    if cp.glucose_half > 0:
        fg = glucose / (glucose + cp.glucose_half)
    else:
        fg = np.ones_like(glucose)
    return ((ft * fh) * fg).astype(F32), t


AGENT_FIELDS = ("t_state", "t_pos", "t_exh", "t_div", "t_kills", "t_dir", "t_act", "t_eng", "t_prod")


def gather(st) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Live agents as flat arrays ordered by (replicate, slot): (rep, slot, fields)."""
    nmax = int(st.t_count.max()) if st.t_count.size else 0
    r, s = np.nonzero(np.arange(nmax)[None, :] < st.t_count[:, None])
    return r, s, {f: getattr(st, f)[r, s] for f in AGENT_FIELDS}


def scatter(st, r: np.ndarray, a: dict[str, np.ndarray]) -> None:
    """Write flat agents (ordered by replicate) back into the padded table, compacted."""
    R, C = st.t_state.shape
    count = np.bincount(r, minlength=R)
    if count.max(initial=0) > C:
        worst = int(np.argmax(count))
        raise CapacityError(
            f"replicate {int(st.replicates[worst])} needs {int(count[worst])} CAR-T slots but "
            f"car_t.capacity_per_replicate is {C}; raise it (0 means car_t.max_per_voxel slots per voxel)")
    start = np.concatenate(([0], np.cumsum(count)[:-1]))
    slot = np.arange(r.size) - start[r]
    nmax = int(max(count.max(initial=0), st.t_count.max(initial=0)))
    for f in AGENT_FIELDS:
        arr = getattr(st, f)
        arr[:, :nmax] = 0 if f != "t_dir" else -1
        arr[r, slot] = a[f]
    st.t_count[:] = count


def choose_among(words: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Per row, the column of the k-th allowed entry, k = choose(word, number allowed): a uniform
    choice among the allowed columns (bool (n, K)), in column order."""
    k = rng.choose(words, allowed.sum(axis=1))
    rank = np.cumsum(allowed, axis=1) - 1
    return np.argmax(allowed & (rank == k[:, None]), axis=1)


def _candidates(st, cp, r, a):
    """The cells that engage (effectors and memory cells) and their candidate targets: per cell
    its own voxel, then its Moore neighbours (``voxels`` (n, K + 1)); ``visible`` where the voxel
    holds a tumour or healthy cell the cell's product can see; ``thr`` its recognition threshold
    (the table of its product, ``t_prod``)."""
    R, V = st.kind.shape[0], st.nvox
    cells = np.flatnonzero((a["t_state"] == TState.EFFECTOR) | (a["t_state"] == TState.MEMORY))
    rep, pos = r[cells], a["t_pos"][cells].astype(np.int64)
    nb, valid = neighbours(pos, st.kind.shape[1:])
    voxels = np.concatenate([pos[:, None], nb], axis=1)
    inside = np.concatenate([np.ones((cells.size, 1), bool), valid], axis=1)
    kind = st.kind.reshape(R, V)[rep[:, None], voxels]
    level_a = st.antigen_a.reshape(R, V)[rep[:, None], voxels].astype(np.int64)
    prod = a["t_prod"][cells].astype(np.int64)[:, None]
    thr = cp.rec_tables[prod, level_a * 256 + st.antigen_b.reshape(R, V)[rep[:, None], voxels]]
    visible = inside & ((kind == Kind.TUMOUR) | (kind == Kind.HEALTHY)) & (thr > 0)
    return cells, rep, pos, voxels, visible, thr


def _kill_probability(st, cp, step, rep, pos, target):
    """Per engaged cell: the kill probability ``min(((p_kill S) f_pdl1) boost, 1)`` (module
    docstring; S and the IL-12 boost at the T cell's voxel) and the target's PD-L1."""
    R, V = st.kind.shape[0], st.nvox
    at = lambda field: getattr(st, field).reshape(R, V)[rep, pos]  # noqa: E731
    s_fac, _ = suppression(cp, at("tgfb"), at("il12"), at("o2"), at("glucose"))
    il12 = at("il12")
    boost = F32(1) + cp.kill_boost * (il12 / (il12 + cp.il12_half))
    pdl1 = st.pdl1.reshape(R, V)[rep, target]
    inhib, _ = cp.pdl1_terms(step)
    f_pd = F32(1) - inhib * pdl1
    return np.minimum(((cp.p_kill_at(step) * s_fac) * f_pd) * boost, F32(1)).astype(F32), pdl1


def _trogocytose(st, cp, rep, target, events) -> None:
    """Recognised tumour cells that survive lose part of each antigen level (integer arithmetic,
    at least 1 left)."""
    R, V = st.kind.shape[0], st.nvox
    for arr in (st.antigen_a.reshape(R, V), st.antigen_b.reshape(R, V)):
        lv = arr[rep, target].astype(np.int32)
        new = np.where(lv > 0, np.maximum(lv - ((lv * cp.trog256) >> 8), 1), 0)
        arr[rep, target] = new.astype(np.uint8)
    events["trogocytosis"] = events.get("trogocytosis", 0) + np.bincount(rep, minlength=R)


def _engage(st, cp, seed, step, r, slot, a, events):
    """Engagement (module docstring, sub-phase 1): returns per live cell whether it was
    stimulated, whether it killed, and the PD-L1 of the target it engaged."""
    R, V = st.kind.shape[0], st.nvox
    n = r.size
    stimulated = np.zeros(n, dtype=bool)
    killed = np.zeros(n, dtype=bool)
    pd_seen = np.zeros(n, dtype=F32)
    cells, rep, pos, voxels, visible, thr = _candidates(st, cp, r, a)
    has = np.flatnonzero(visible.sum(axis=1) > 0)
    if has.size == 0:
        return stimulated, killed, pd_seen
    who, rep, pos = cells[has], rep[has], pos[has]
    words = rng.blocks(seed, st.replicates[rep], step, Stream.CAR_T_ENGAGE, slot[who])
    col = choose_among(words[:, 0], visible[has])
    target = voxels[has, col]
    memory = a["t_state"][who] == TState.MEMORY  # memory cells pick a candidate but do not claim
    seen = words[:, 2].astype(np.uint64) < thr[has, col]  # recognition (lattice at the phase start)
    key = (words[:, 1].astype(np.uint64) << SHIFT) | slot[who].astype(np.uint64)
    won = np.zeros(has.size, dtype=bool)
    won[~memory] = resolve_claims((rep.astype(np.int64) * V + target)[~memory], key[~memory])
    recognised = won & seen
    p_kill, pdl1 = _kill_probability(st, cp, step, rep, pos, target)
    kill = recognised & rng.below(words[:, 3], p_kill)
    # a memory cell that recognises its candidate reactivates (becomes an effector, stimulated,
    # no kill this step) with probability p_react, word 3
    react = memory & seen & rng.below(words[:, 3], cp.p_react)
    a["t_state"][who[react]] = TState.EFFECTOR
    stim = recognised | react
    stimulated[who[stim]] = True
    killed[who[kill]] = True
    pd_seen[who[stim]] = pdl1[stim]
    kind = st.kind.reshape(R, V)
    kr, kv = rep[kill], target[kill]
    was_tumour = kind[kr, kv] == Kind.TUMOUR
    kind[kr, kv] = Kind.APOPTOTIC
    trog = recognised & ~kill & (kind[rep, target] == Kind.TUMOUR)
    if cp.trog256 and trog.any():
        _trogocytose(st, cp, rep[trog], target[trog], events)
    for name, mask in (("kills_tumour", kr[was_tumour]), ("kills_healthy", kr[~was_tumour]),
                       ("engagements", rep[recognised]), ("memory_reactivations", rep[react])):
        events[name] = events.get(name, 0) + np.bincount(mask, minlength=R)
    return stimulated, killed, pd_seen


def _exhaustion(st, cp, step, r, a, stimulated, killed, pd_seen):
    """g = 1 + gain × T/(T + K) (T the TGF-β the cell feels; g = 1 with dnTGFbRII or gain 0);
    e' = e (+ exh_per_kill × g if killed) (+ (exh_pdl1(step) × PD-L1 of the target) × g if
    engaged, else − recovery, floor 0) (+ exh_hypoxia if hypoxic); float32 in this order."""
    R = st.kind.shape[0]
    pos = a["t_pos"]
    o2 = st.o2.reshape(R, -1)[r, pos]
    e = a["t_exh"]
    _, exh_pd = cp.pdl1_terms(step)
    g = F32(1)
    if cp.exh_tgfb_gain > 0 and not cp.dnTGFbRII:
        tg = st.tgfb.reshape(R, -1)[r, pos]
        il = st.il12.reshape(R, -1)[r, pos]
        t = tg / (F32(1) + il * cp.inv_il12_half)
        g = (F32(1) + cp.exh_tgfb_gain * (t / (t + cp.tgfb_half))).astype(F32)
    e = np.where(killed, e + cp.exh_per_kill * g, e)
    e = np.where(stimulated, e + (exh_pd * pd_seen) * g, np.maximum(e - cp.exh_recovery, F32(0)))
    e = np.where(o2 < cp.o2_hypoxic, e + cp.exh_hypoxia, e).astype(F32)
    a["t_exh"] = e
    exhausted = (a["t_state"] == TState.EFFECTOR) & (e >= F32(1))
    a["t_state"] = np.where(exhausted, np.uint8(TState.EXHAUSTED), a["t_state"]).astype(np.uint8)
    a["t_kills"] = a["t_kills"] + killed.astype(np.int32)
    a["t_act"] = np.where(stimulated, np.int16(cp.activation_steps),
                          np.maximum(a["t_act"] - 1, 0)).astype(np.int16)
    a["t_eng"] = stimulated.astype(np.uint8)


def _death_row(state: np.ndarray) -> np.ndarray:
    """Row of ``CarTParams.p_death`` per cell: 0 effector, 1 exhausted, 2 memory."""
    return np.where(state == TState.EXHAUSTED, 1, np.where(state == TState.MEMORY, 2, 0))


def _convert_to_memory(st, cp, seed, step, r, slot, a, died, sig, events) -> None:
    """An effector that survived and was not stimulated this step (t_eng 0) becomes a memory cell
    (t_act 0, no division this step) iff CAR_T_FATE block (slot, draw 1) word 0 <
    ``p_mem + g5_mem × s`` (float32; s the 5th generation's JAK-STAT signal)."""
    c = np.flatnonzero(~died & (a["t_state"] == TState.EFFECTOR) & (a["t_eng"] == 0))
    words = rng.blocks(seed, st.replicates[r[c]], step, Stream.CAR_T_FATE, slot[c], draw=1)
    conv = c[rng.below(words[:, 0], (cp.p_mem + cp.g5_mem * sig[c]).astype(F32))]
    a["t_state"][conv] = TState.MEMORY
    a["t_act"][conv] = 0
    events["memory_conversions"] = (events.get("memory_conversions", 0)
                                    + np.bincount(r[conv], minlength=st.kind.shape[0]))


def _divide(st, cp, r, slot, a, occ, words, dividing):
    """The dividing cells whose daughter found a neighbour holding fewer than ``max_per_voxel``
    CAR-T cells at the phase start (``occ``: counts) and won its claim (words 2 and 3 of their fate
    block): their entries and the daughters' voxels."""
    V = st.nvox
    idx = np.flatnonzero(dividing)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    nb, valid = neighbours(a["t_pos"][idx].astype(np.int64), st.kind.shape[1:])
    free = valid & (occ[r[idx][:, None] * V + nb] < cp.max_per_voxel)
    voxel = nb[np.arange(idx.size), choose_among(words[idx, 2], free)]
    ok = free.any(axis=1)
    idx, voxel = idx[ok], voxel[ok]
    key = (words[idx, 3].astype(np.uint64) << SHIFT) | slot[idx].astype(np.uint64)
    win = resolve_claims(r[idx].astype(np.int64) * V + voxel, key)
    return idx[win], voxel[win]


def _reinvigorate(st, cp, seed, step, r, slot, a, died, events) -> np.ndarray:
    """Anti-PD-1: an exhausted cell that survived becomes an effector again with exhaustion
    ``revive_exh`` (partial: it exhausts again after a few stimulations) iff CAR_T_FATE block
    (slot, draw 1) word 1 < p_revive(step); it does not divide this step.  Returns the mask."""
    revived = np.zeros(r.size, dtype=bool)
    p_rev = cp.p_revive_at(step)
    if p_rev > 0:
        c = np.flatnonzero(~died & (a["t_state"] == TState.EXHAUSTED))
        words = rng.blocks(seed, st.replicates[r[c]], step, Stream.CAR_T_FATE, slot[c], draw=1)
        revived[c[rng.below(words[:, 1], p_rev)]] = True
        a["t_state"][revived] = TState.EFFECTOR
        a["t_exh"][revived] = cp.revive_exh
    events["pd1_reinvigorations"] = (events.get("pd1_reinvigorations", 0)
                                     + np.bincount(r[revived], minlength=st.kind.shape[0]))
    return revived


def _fate(st, cp, seed, step, r, slot, a, occ, events):
    """Death, memory conversion, reinvigoration and division; returns the new flat agent list
    (r, a) with births appended.  Death: CAR_T_FATE block (slot, draw 0) word 0 < the replicate's
    p_death[row, starving] (with the steroid, :meth:`CarTParams.p_death_table`), × (1 − g5_surv
    × s) for an effector; then memory conversion (drawn only when p_mem or g5_mem > 0,
    :func:`_convert_to_memory`); then anti-PD-1 reinvigoration (:func:`_reinvigorate`); then
    division (words 1-3 of draw 0) of activated effectors, probability ``(p_div(step) × S) × (1 +
    g5_div × s)``.  s = t_act × inv_act is the 5th generation's JAK-STAT signal (0 otherwise:
    g5_* are 0)."""
    R, V = st.kind.shape[0], st.nvox
    words = rng.blocks(seed, st.replicates[r], step, Stream.CAR_T_FATE, slot)
    pos = a["t_pos"]
    glu = st.glucose.reshape(R, V)[r, pos]
    starving = (glu < cp.starvation_glucose).astype(np.int64)
    row = _death_row(a["t_state"])
    sig = (a["t_act"].astype(F32) * cp.inv_act).astype(F32)
    p_d = cp.p_death_table(st.steroid)[r, row, starving]
    p_d = np.where(row == 0, p_d * (F32(1) - cp.g5_surv * sig), p_d).astype(F32)
    died = rng.below(words[:, 0], p_d)
    if cp.p_mem > 0 or cp.g5_mem > 0:
        _convert_to_memory(st, cp, seed, step, r, slot, a, died, sig, events)
    revived = _reinvigorate(st, cp, seed, step, r, slot, a, died, events)
    s_fac, _ = suppression(cp, st.tgfb.reshape(R, V)[r, pos], st.il12.reshape(R, V)[r, pos],
                           st.o2.reshape(R, V)[r, pos], glu)
    p_div = ((cp.p_division_at(step) * s_fac) * (F32(1) + cp.g5_div * sig)).astype(F32)
    dividing = (~died & ~revived & (a["t_state"] == TState.EFFECTOR) & (a["t_act"] > 0)
                & (a["t_div"] > 0) & rng.below(words[:, 1], p_div))
    born, born_v = _divide(st, cp, r, slot, a, occ, words, dividing)
    a["t_div"] = a["t_div"].copy()
    a["t_div"][born] -= 1
    events["car_t_deaths"] = events.get("car_t_deaths", 0) + np.bincount(r[died], minlength=R)
    events["car_t_births"] = events.get("car_t_births", 0) + np.bincount(r[born], minlength=R)
    # survivors in order, then daughters in their parents' order; stable sort by replicate
    d = {f: a[f][born] for f in AGENT_FIELDS}
    d["t_pos"] = born_v.astype(np.int32)
    d["t_exh"] = (a["t_exh"][born] * cp.daughter_exh).astype(F32)
    d["t_kills"] = np.zeros(born.size, dtype=np.int32)
    d["t_dir"] = np.full(born.size, -1, dtype=np.int8)
    d["t_eng"] = np.zeros(born.size, dtype=np.uint8)
    keep = ~died
    r_all = np.concatenate([r[keep], r[born]])
    order = np.argsort(r_all, kind="stable")
    out = {f: np.concatenate([a[f][keep], d[f]])[order] for f in AGENT_FIELDS}
    return r_all[order], out


def _migrate(st, cp, seed, step, r, a):
    """Migration (module docstring, sub-phase 4); ``occ`` counts the CAR-T cells per voxel."""
    R = st.kind.shape[0]
    V = st.nvox
    shape = st.kind.shape[1:]
    n = r.size
    if n == 0:
        return
    count = np.bincount(r, minlength=R)
    slot = np.arange(n) - np.concatenate(([0], np.cumsum(count)[:-1]))[r]
    kind = st.kind.reshape(R, V)
    ecm = st.ecm.reshape(R, V)
    chem = st.chemokine.reshape(R, V)
    pos = a["t_pos"].astype(np.int64)
    dirs = a["t_dir"].astype(np.int64)
    occ = np.bincount(r * V + pos, minlength=R * V)
    K = moore_offsets(shape[0]).shape[0]
    reps = st.replicates[r]
    rows = np.arange(n)
    for m in range(cp.n_sub):
        b = rng.blocks(seed, reps, step, Stream.CAR_T_MOVE, slot, draw=2 * m)
        b2 = rng.blocks(seed, reps, step, Stream.CAR_T_MOVE, slot, draw=2 * m + 1)
        p_move = (cp.p_move * (F32(1) - ecm[r, pos] * cp.one_minus_slow)).astype(F32)
        moving = rng.below(b[:, 0], p_move)
        nb, valid = neighbours(pos, shape)
        persist = (dirs >= 0) & rng.below(b[:, 1], cp.p_persist)
        cn = np.where(valid, chem[r[:, None], nb], F32(-np.inf))
        best = np.argmax(cn, axis=1)  # ties: lowest neighbour index
        up = cn[rows, best] > chem[r, pos]
        chemo = ~persist & up & rng.below(b[:, 2], cp.p_chemotaxis)
        rand = rng.choose(b[:, 3], K)
        d = np.clip(np.where(persist, dirs, np.where(chemo, best, rand)), 0, K - 1)
        tv = nb[rows, d]
        ok = valid[rows, d] & moving & (occ[r * V + tv] < cp.max_per_voxel)
        p_enter = (F32(1) - ecm[r, tv] * cp.one_minus_perm)
        p_enter = np.where(kind[r, tv] == Kind.TUMOUR, p_enter * cp.crowding, p_enter).astype(F32)
        ok &= rng.below(b2[:, 0], p_enter)
        i = np.flatnonzero(ok)
        if i.size:
            key = (b2[i, 1].astype(np.uint64) << SHIFT) | slot[i].astype(np.uint64)
            w = i[resolve_claims(r[i] * V + tv[i], key)]  # one entrant per voxel and sub-move
            np.subtract.at(occ, r[w] * V + pos[w], 1)
            occ[r[w] * V + tv[w]] += 1
            pos[w] = tv[w]
            dirs[w] = d[w]
    a["t_pos"] = pos.astype(np.int32)
    a["t_dir"] = dirs.astype(np.int8)


def car_t_phase(st, cp: CarTParams, seed: int, step: int, events: dict) -> None:
    """Advance the CAR-T cells of every replicate by one step (in place on ``st``)."""
    r, slot, a = gather(st)
    if r.size == 0:
        return
    R = st.kind.shape[0]
    V = st.nvox
    occ = np.bincount(r * V + a["t_pos"], minlength=R * V)  # CAR-T cells per voxel
    stimulated, killed, pd_seen = _engage(st, cp, seed, step, r, slot, a, events)
    _exhaustion(st, cp, step, r, a, stimulated, killed, pd_seen)
    r, a = _fate(st, cp, seed, step, r, slot, a, occ, events)
    _migrate(st, cp, seed, step, r, a)
    scatter(st, r, a)

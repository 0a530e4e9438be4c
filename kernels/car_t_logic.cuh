// car_t_logic.cuh -- per-agent logic of the CAR-T phase before migration (CUDA twin of
// gpusim.model.car_t._engage, _exhaustion, _fate and scatter; MODEL.md section 5).  Migration is
// car_t_move_logic.cuh.
//
// Agent table (R, C) padded, live slots s < t_count[r] (int32 (R)); entry i = r * C + s:
//   t_state uint8 (TState), t_pos int32 (voxel), t_exh float32 (0..1), t_div uint8 (divisions
//   left), t_kills int32, t_dir int8 (-1 none), t_act int16 (steps of activation left),
//   t_eng uint8 (engaged this step), t_prod uint8 (product id; daughters inherit it).
// Lattice (R, Z, Y, X), g = r * V + v: kind uint8, antigen_a/b uint8 (level x 100), o2 float32
//   (mmHg), glucose float32 (mM), tgfb float32 (ng/mL, total TGF-beta1), il12 float32 (a.u.), pdl1 float32 (0..1).
// rec uint64 (P, 65536): recognition thresholds of each product indexed t_prod * 65536 +
//   antigen_a * 256 + antigen_b (car_t_params.recognition_tables); a cell sees with its product's.
//   claims uint64 (R * V): NO_CLAIM between passes.  occ int32 (R * V):
//   CAR-T cells per voxel at the phase start (car_t_move_logic.cuh move_occ).
// Scratch per entry: tgt int32 (claimed voxel or -1), stim/killed/died/born uint8, pd_seen
//   float32.  counts uint64 (R, CART_NCOUNT).
// RNG: CAR_T_ENGAGE block (slot) words 0 target choice, 1 claim priority, 2 recognition, 3 kill
//   (memory cell: reactivation); CAR_T_FATE block (slot, draw 0) words 0 death, 1 division,
//   2 neighbour, 3 claim priority; CAR_T_FATE block (slot, draw 1) word 0 memory conversion
//   (drawn only when p_mem > 0 or g5_mem > 0), word 1 anti-PD-1 reinvigoration (exhausted cells,
//   drawn only when p_revive > 0).
// Memory cells (TSTATE_MEMORY): engage_claim picks their candidate like an effector's and sets
//   tgt, but they never claim (so engage_resolve, which needs the claim, skips them); in the same
//   pass, reading the lattice as at the phase start, a memory cell whose candidate is recognised
//   (word 2) reactivates with p_react (word 3): state EFFECTOR, stim 1, pd_seen = target PD-L1,
//   no kill.  fate_claim: death row 0 effector / 1 exhausted / 2 memory; then an effector that
//   survived with eng 0 becomes MEMORY (act 0, no division) with p_mem + g5_mem * s; an
//   exhausted cell that survived becomes an EFFECTOR with exh = revive_exh (no division this
//   step) with p_revive.  s = act * inv_act is the 5th generation's JAK-STAT signal (g5_* are 0
//   for other generations).  p_death_r float32 (R, 3, 2): the replicate's death probabilities
//   (with the steroid), an effector's x (1 - g5_surv * s).
// Float32 order (car_t.suppression / _engage / _exhaustion / _fate):
//   T = tgfb / (1 + il12 * inv_il12_half)  (0 with dnTGFbRII);  ft = 1 / (1 + T * inv_tgfb_half)
//   fh = o2 < o2_hypoxic ? hypoxia_factor : 1;  fg = glucose / (glucose + glucose_half) (1 if K = 0)
//   S = (ft * fh) * fg;  boost = 1 + kill_boost * (il12 / (il12 + il12_half))
//   p_kill' = min(((p_kill * S) * (1 - inhib * pdl1[target])) * boost, 1)
//   g = 1 + exh_tgfb_gain * (T / (T + tgfb_half))  (1 when tgfb_exh_on is 0: dnTGFbRII or gain 0)
//   e (+ exh_per_kill * g) (+ (exh_pd * pd_seen) * g | max(e - recovery, 0)) (+ exh_hypoxia);
//   p_div = (p_div_step * S) * (1 + g5_div * s).  TGF-beta (ng/mL of total TGF-beta1) never
//   exhausts on its own.
// Passes per step (each over every table entry unless noted): engage_claim, engage_resolve,
// claim_reset, exhaustion, fate_claim, fate_resolve, claim_reset, then compact_entry (one thread
// per replicate, double-buffered table) and the migration passes.
#pragma once
#include "lattice.cuh"
#include "philox.cuh"

namespace gpusim {

// Suppression factor S at one voxel g; *t_out gets the TGF-beta the cell feels.
GPUSIM_HD float car_t_suppression(const CarTK& p, float tgfb, float il12, float o2, float glu,
                                  float* t_out) {
    const float t = p.dnTGFbRII ? 0.0f : tgfb / (1.0f + il12 * p.inv_il12_half);
    const float ft = 1.0f / (1.0f + t * p.inv_tgfb_half);
    const float fh = o2 < p.o2_hypoxic ? p.hypoxia_factor : 1.0f;
    const float fg = p.glucose_half > 0.0f ? glu / (glu + p.glucose_half) : 1.0f;
    if (t_out) *t_out = t;
    return (ft * fh) * fg;
}

GPUSIM_HD bool engage_candidate(u8 k, u64 thr) { return (k == KIND_TUMOUR || k == KIND_HEALTHY) && thr > 0; }

// Pass 1: an effector picks one visible target (own voxel, then Moore neighbours) and claims it;
// a memory cell picks one the same way, claims nothing, and may reactivate (see the header).
// Nothing in this pass writes the lattice, so every cell sees it as at the phase start.
GPUSIM_HD void engage_claim(i64 i, const Geom& geo, i32 C, const CarTK& p, u32 seed, u32 step,
                            const u32* reps, const i32* t_count, const AgentTable& t,
                            const u8* kind, const u8* antigen_a, const u8* antigen_b,
                            const float* pdl1, const u64* rec, u64* claims, i32* tgt, u8* stim,
                            u8* killed, float* pd_seen, u64* counts) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r]) return;
    tgt[i] = -1;
    stim[i] = 0;
    killed[i] = 0;
    pd_seen[i] = 0.0f;
    const bool memory = t.state[i] == TSTATE_MEMORY;
    if (t.state[i] != TSTATE_EFFECTOR && !memory) return;
    const i64 base = (i64)r * geo_nvox(geo);
    const u32 pos = (u32)t.pos[i];
    i64 cv[MAX_NB + 1];
    cv[0] = pos;
    const i32 K = moore_neighbours(geo, pos, cv + 1) + 1;
    rec += (u64)t.prod[i] * 65536u;  // this cell's product's table
    u32 n = 0;
    for (i32 j = 0; j < K; ++j)
        if (cv[j] >= 0 && engage_candidate(kind[base + cv[j]], rec[(u32)antigen_a[base + cv[j]] * 256u + antigen_b[base + cv[j]]]))
            ++n;
    if (n == 0) return;
    const Block4 b = block(seed, reps[r], step, CAR_T_ENGAGE, (u32)s);
    u32 pick = choose(b.w[0], n);
    for (i32 j = 0; j < K; ++j) {
        if (cv[j] >= 0 && engage_candidate(kind[base + cv[j]], rec[(u32)antigen_a[base + cv[j]] * 256u + antigen_b[base + cv[j]]])) {
            if (pick == 0) {
                const i64 g = base + cv[j];
                tgt[i] = (i32)cv[j];
                if (!memory) {
                    claim_min(&claims[g], ((u64)b.w[1] << 32) | (u64)(u32)s);
                } else if ((u64)b.w[2] < rec[(u32)antigen_a[g] * 256u + antigen_b[g]] &&
                           below(b.w[3], p.p_react)) {
                    t.state[i] = TSTATE_EFFECTOR;
                    stim[i] = 1;
                    pd_seen[i] = pdl1[g];
                    count_add(&counts[r * CART_NCOUNT + CC_MEM_REACTIVATIONS], 1);
                }
                return;
            }
            --pick;
        }
    }
}

// Pass 2: the winner of each target recognises it, may kill it, else trogocytoses a tumour cell.
// Only the winner touches its target voxel, so the pass is race-free.
GPUSIM_HD void engage_resolve(i64 i, const Geom& geo, i32 C, const CarTK& p, u32 seed, u32 step,
                              const u32* reps, const i32* t_count, const AgentTable& t, u8* kind,
                              u8* antigen_a, u8* antigen_b, const float* o2, const float* glucose,
                              const float* tgfb, const float* il12, const float* pdl1,
                              const u64* rec, const u64* claims, const i32* tgt, u8* stim,
                              u8* killed, float* pd_seen, u64* counts) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r] || tgt[i] < 0) return;
    const i64 base = (i64)r * geo_nvox(geo);
    const i64 tg = base + tgt[i];
    if ((u32)(claims[tg] & 0xFFFFFFFFull) != (u32)s) return;
    const Block4 b = block(seed, reps[r], step, CAR_T_ENGAGE, (u32)s);
    const u64 thr = rec[(u64)t.prod[i] * 65536u + (u32)antigen_a[tg] * 256u + antigen_b[tg]];
    if (!((u64)b.w[2] < thr)) return;
    const i64 pg = base + t.pos[i];
    const float S = car_t_suppression(p, tgfb[pg], il12[pg], o2[pg], glucose[pg], nullptr);
    const float il = il12[pg];
    const float boost = 1.0f + p.kill_boost * (il / (il + p.il12_half));
    const float pd = pdl1[tg];
    const float f_pd = 1.0f - p.inhib * pd;
    float pk = ((p.p_kill * S) * f_pd) * boost;
    pk = pk < 1.0f ? pk : 1.0f;
    const bool kill = below(b.w[3], pk);
    stim[i] = 1;
    pd_seen[i] = pd;
    count_add(&counts[r * CART_NCOUNT + CC_ENGAGEMENTS], 1);
    if (kill) {
        killed[i] = 1;
        count_add(&counts[r * CART_NCOUNT + (kind[tg] == KIND_TUMOUR ? CC_KILLS_TUMOUR : CC_KILLS_HEALTHY)], 1);
        kind[tg] = KIND_APOPTOTIC;
    } else if (kind[tg] == KIND_TUMOUR && p.trog256) {
        u8* arrs[2] = {antigen_a, antigen_b};
        for (int a = 0; a < 2; ++a) {
            const i32 lv = arrs[a][tg];
            i32 nw = lv - ((lv * p.trog256) >> 8);
            arrs[a][tg] = (u8)(lv > 0 ? (nw > 1 ? nw : 1) : 0);
        }
        count_add(&counts[r * CART_NCOUNT + CC_TROGOCYTOSIS], 1);
    }
}

// Releases the claim slot of an entry's target (after every resolve of a pass); tgt is kept
// (compact_entry reads the daughters' voxels from it).
GPUSIM_HD void claim_reset(i64 i, const Geom& geo, i32 C, const i32* t_count, u64* claims, const i32* tgt) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r] || tgt[i] < 0) return;
    claims[(i64)r * geo_nvox(geo) + tgt[i]] = NO_CLAIM;
}

// Pass 3: exhaustion, activation, kill count, engaged flag (every live cell).
GPUSIM_HD void exhaustion(i64 i, const Geom& geo, i32 C, const CarTK& p, const i32* t_count,
                          const AgentTable& t, const float* o2, const float* tgfb,
                          const float* il12, const u8* stim, const u8* killed,
                          const float* pd_seen) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r]) return;
    const i64 pg = (i64)r * geo_nvox(geo) + t.pos[i];
    float e = t.exh[i];
    float g = 1.0f;  // TGF-beta amplification of stimulation-driven exhaustion
    if (p.tgfb_exh_on) {
        const float tt = tgfb[pg] / (1.0f + il12[pg] * p.inv_il12_half);
        g = 1.0f + p.exh_tgfb_gain * (tt / (tt + p.tgfb_half));
    }
    if (killed[i]) e = e + p.exh_per_kill * g;
    if (stim[i]) {
        e = e + (p.exh_pd * pd_seen[i]) * g;
    } else {
        e = e - p.exh_recovery;
        e = e > 0.0f ? e : 0.0f;
    }
    if (o2[pg] < p.o2_hypoxic) e = e + p.exh_hypoxia;
    t.exh[i] = e;
    if (t.state[i] == TSTATE_EFFECTOR && e >= 1.0f) t.state[i] = TSTATE_EXHAUSTED;
    t.kills[i] += killed[i];
    const i32 a = t.act[i] - 1;
    t.act[i] = (i16)(stim[i] ? p.activation_steps : (a > 0 ? a : 0));
    t.eng[i] = stim[i];
}

// Pass 4: death, memory conversion, and division claims on a neighbour holding fewer than
// max_per_voxel CAR-T cells at the phase start (occ: counts).
GPUSIM_HD void fate_claim(i64 i, const Geom& geo, i32 C, const CarTK& p, u32 seed, u32 step,
                          const u32* reps, const i32* t_count, const AgentTable& t,
                          const float* o2, const float* glucose, const float* tgfb,
                          const float* il12, const float* p_death_r, const i32* occ, u64* claims,
                          i32* tgt, u8* died, u8* born, u64* counts) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r]) return;
    tgt[i] = -1;
    born[i] = 0;
    const i64 base = (i64)r * geo_nvox(geo);
    const i64 pg = base + t.pos[i];
    const Block4 b = block(seed, reps[r], step, CAR_T_FATE, (u32)s);
    const float glu = glucose[pg];
    const u8 state = t.state[i];
    const i32 row = state == TSTATE_EXHAUSTED ? 1 : (state == TSTATE_MEMORY ? 2 : 0);
    const i32 starving = glu < p.starvation_glucose ? 1 : 0;
    const float sig = (float)t.act[i] * p.inv_act;
    float pd = p_death_r[(i64)r * 6 + row * 2 + starving];
    if (row == 0) pd = pd * (1.0f - p.g5_surv * sig);
    const bool d = below(b.w[0], pd);
    died[i] = d ? 1 : 0;
    if (d) {
        count_add(&counts[r * CART_NCOUNT + CC_DEATHS], 1);
        return;
    }
    if ((p.p_mem > 0.0f || p.g5_mem > 0.0f) && state == TSTATE_EFFECTOR && !t.eng[i]) {
        const Block4 b1 = block(seed, reps[r], step, CAR_T_FATE, (u32)s, 1u);
        if (below(b1.w[0], p.p_mem + p.g5_mem * sig)) {
            t.state[i] = TSTATE_MEMORY;
            t.act[i] = 0;
            count_add(&counts[r * CART_NCOUNT + CC_MEM_CONVERSIONS], 1);
            return;
        }
    }
    if (p.p_revive > 0.0f && state == TSTATE_EXHAUSTED) {
        const Block4 b1 = block(seed, reps[r], step, CAR_T_FATE, (u32)s, 1u);
        if (below(b1.w[1], p.p_revive)) {
            t.state[i] = TSTATE_EFFECTOR;
            t.exh[i] = p.revive_exh;
            count_add(&counts[r * CART_NCOUNT + CC_PD1_REINVIGORATIONS], 1);
        }
        return;
    }
    const float S = car_t_suppression(p, tgfb[pg], il12[pg], o2[pg], glu, nullptr);
    const float p_div = (p.p_div_step * S) * (1.0f + p.g5_div * sig);
    if (!(t.state[i] == TSTATE_EFFECTOR && t.act[i] > 0 && t.div[i] > 0 && below(b.w[1], p_div)))
        return;
    i64 nb[MAX_NB];
    const i32 K = moore_neighbours(geo, (u32)t.pos[i], nb);
    u32 nfree = 0;
    for (i32 j = 0; j < K; ++j)
        if (nb[j] >= 0 && occ[base + nb[j]] < p.max_per_voxel) ++nfree;
    if (nfree == 0) return;
    u32 pick = choose(b.w[2], nfree);
    for (i32 j = 0; j < K; ++j) {
        if (nb[j] >= 0 && occ[base + nb[j]] < p.max_per_voxel) {
            if (pick == 0) {
                claim_min(&claims[base + nb[j]], ((u64)b.w[3] << 32) | (u64)(u32)s);
                tgt[i] = (i32)nb[j];
                return;
            }
            --pick;
        }
    }
}

// Pass 5: a claim winner divides (born = 1, one division fewer left).
GPUSIM_HD void fate_resolve(i64 i, const Geom& geo, i32 C, const i32* t_count, const AgentTable& t,
                            const u64* claims, const i32* tgt, u8* born, u64* counts) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r] || tgt[i] < 0) return;
    if ((u32)(claims[(i64)r * geo_nvox(geo) + tgt[i]] & 0xFFFFFFFFull) != (u32)s) return;
    born[i] = 1;
    t.div[i] = (u8)(t.div[i] - 1);
    count_add(&counts[r * CART_NCOUNT + CC_BIRTHS], 1);
}

// Pass 6, one thread per table entry i = r * C + s: the new row = survivors in slot order, then
// daughters in their parents' slot order (car_t._fate + scatter).  The destinations are exact
// integer prefix sums computed beforehand (gpusim.backends.compaction.compaction_slots):
// dst_keep[i] for a survivor, dst_born[i] for the daughter of entry i; `out` already holds the
// padding values (0, t_dir -1) and the capacity was checked on the host.  A daughter copies its
// parent (state, act, div after the decrement, product) with pos = claimed voxel, exh = parent exh *
// daughter_exh, kills 0, dir -1, eng 0.  Reads `in`, writes `out` (distinct buffers).
GPUSIM_HD void compact_entry(i64 i, i32 C, const CarTK& p, const i32* t_count, const AgentTable& in,
                             const AgentTable& out, const u8* died, const u8* born,
                             const i32* tgt_born, const i64* dst_keep, const i64* dst_born) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r]) return;
    const i64 row = (i64)r * C;
    if (!died[i]) {
        const i64 o = row + dst_keep[i];
        out.state[o] = in.state[i]; out.pos[o] = in.pos[i]; out.exh[o] = in.exh[i];
        out.div[o] = in.div[i]; out.kills[o] = in.kills[i]; out.dir[o] = in.dir[i];
        out.act[o] = in.act[i]; out.eng[o] = in.eng[i]; out.prod[o] = in.prod[i];
    }
    if (born[i]) {
        const i64 o = row + dst_born[i];
        out.state[o] = in.state[i]; out.pos[o] = tgt_born[i]; out.exh[o] = in.exh[i] * p.daughter_exh;
        out.div[o] = in.div[i]; out.kills[o] = 0; out.dir[o] = -1;
        out.act[o] = in.act[i]; out.eng[o] = 0; out.prod[o] = in.prod[i];
    }
}

}  // namespace gpusim

// car_t_move_logic.cuh -- per-agent logic of CAR-T migration (CUDA twin of
// gpusim.model.car_t._migrate, MODEL.md section 5): n_sub sub-moves, each a move with
// probability p_move * (1 - ecm_here * one_minus_slow) (float32, that order: slower in dense ECM);
// the direction is kept with probability p_persist (if there is one), else
// up the chemokine gradient with probability p_chemotaxis (when the best neighbour has more
// chemokine than the cell's voxel; ties -> lowest neighbour index), else uniform over the Moore
// neighbourhood; a move into a voxel holding fewer than max_per_voxel CAR-T cells succeeds with p_enter = 1 - ecm * one_minus_perm
// (float32, that order), times crowding (float32) if the voxel holds a tumour cell; conflicts go
// to the smallest claim (priority << 32 | slot).
//
// Arrays: agent table (R, C) padded, live slots s < t_count[r]: t_pos int32 (voxel), t_dir int8
// (last direction, -1 none); occ int32 (R * V): CAR-T cells per voxel (zeroed, then move_occ);
// claims
// uint64 (R * V) NO_CLAIM between sub-moves; scratch tgt int32 (R, C) (claimed voxel or -1).
// Lattice: kind uint8, ecm float32 (0..1), chemokine float32 (0..1), all (R, Z, Y, X).
// RNG: CAR_T_MOVE, entity = slot, draws 2m (move, persist, chemotaxis, direction) and 2m + 1
// (entry, claim priority) for sub-move m.
// A sub-move is three passes over the agents: move_decide, move_apply, move_reset.
#pragma once
#include "lattice.cuh"
#include "philox.cuh"

namespace gpusim {

struct AgentGeom {
    Geom g;
    i32 C;  // capacity per replicate
};

// Build the occupancy counts (occ zeroed beforehand; integer atomics, order-free): one thread per
// table entry i = r*C+s.
GPUSIM_HD void move_occ(i64 i, const AgentGeom& ag, const i32* t_count, const i32* t_pos, i32* occ) {
    const i32 r = (i32)(i / ag.C), s = (i32)(i % ag.C);
    if (s >= t_count[r]) return;
    occ_add(&occ[(i64)r * geo_nvox(ag.g) + t_pos[i]], 1);
}

GPUSIM_HD void move_decide(i64 i, i32 m, const AgentGeom& ag, const MoveK& p, u32 seed, u32 step,
                           const u32* reps, const i32* t_count, const i32* t_pos, const i8* t_dir,
                           const u8* kind, const float* ecm, const float* chem, const i32* occ,
                           u64* claims, i32* tgt, i8* dsel) {
    const i32 r = (i32)(i / ag.C), s = (i32)(i % ag.C);
    if (s >= t_count[r]) return;
    tgt[i] = -1;
    const i64 V = geo_nvox(ag.g);
    const i64 base = (i64)r * V;
    const u32 pos = (u32)t_pos[i];
    const Block4 b = block(seed, reps[r], step, CAR_T_MOVE, (u32)s, (u32)(2 * m));
    const Block4 b2 = block(seed, reps[r], step, CAR_T_MOVE, (u32)s, (u32)(2 * m + 1));
    const bool moving = below(b.w[0], p.p_move * (1.0f - ecm[base + pos] * p.one_minus_slow));
    i64 nb[MAX_NB];
    const i32 K = moore_neighbours(ag.g, pos, nb);
    const i32 dir = t_dir[i];
    const bool persist = dir >= 0 && below(b.w[1], p.p_persist);
    i32 best = -1;
    float bestv = 0.0f;
    for (i32 j = 0; j < K; ++j) {
        if (nb[j] < 0) continue;
        const float cv = chem[base + nb[j]];
        if (best < 0 || cv > bestv) {
            best = j;
            bestv = cv;
        }
    }
    const bool up = bestv > chem[base + pos];
    const bool chemo = !persist && up && below(b.w[2], p.p_chemotaxis);
    const i32 rnd = (i32)choose(b.w[3], (u32)K);
    i32 d = persist ? dir : (chemo ? best : rnd);
    d = d < 0 ? 0 : (d > K - 1 ? K - 1 : d);
    if (!moving || nb[d] < 0) return;
    const i64 tv = nb[d];
    if (occ[base + tv] >= p.max_per_voxel) return;
    float p_enter = 1.0f - ecm[base + tv] * p.one_minus_perm;
    if (kind[base + tv] == KIND_TUMOUR) p_enter = p_enter * p.crowding;
    if (!below(b2.w[0], p_enter)) return;
    claim_min(&claims[base + tv], ((u64)b2.w[1] << 32) | (u64)(u32)s);
    tgt[i] = (i32)tv;
    dsel[i] = (i8)d;
}

// Winners move: the claim on their target holds their own slot (one entrant per voxel and
// sub-move, so a voxel that held fewer than max_per_voxel cells holds at most max_per_voxel).
GPUSIM_HD void move_apply(i64 i, const AgentGeom& ag, const i32* t_count, i32* t_pos, i8* t_dir,
                          i32* occ, const u64* claims, const i32* tgt, const i8* dsel) {
    const i32 r = (i32)(i / ag.C), s = (i32)(i % ag.C);
    if (s >= t_count[r] || tgt[i] < 0) return;
    const i64 base = (i64)r * geo_nvox(ag.g);
    if ((u32)(claims[base + tgt[i]] & 0xFFFFFFFFull) != (u32)s) return;
    occ_add(&occ[base + t_pos[i]], -1);
    occ_add(&occ[base + tgt[i]], 1);
    t_pos[i] = tgt[i];
    t_dir[i] = dsel[i];
}

GPUSIM_HD void move_reset(i64 i, const AgentGeom& ag, const i32* t_count, u64* claims, i32* tgt) {
    const i32 r = (i32)(i / ag.C), s = (i32)(i % ag.C);
    if (s >= t_count[r] || tgt[i] < 0) return;
    claims[(i64)r * geo_nvox(ag.g) + tgt[i]] = NO_CLAIM;
    tgt[i] = -1;
}

}  // namespace gpusim

// microenv_logic.cuh -- per-voxel / per-agent logic of the microenvironment phase (CUDA twin of
// gpusim.model.microenv.microenv_phase, MODEL.md sections 4 and 9): PD-L1 of tumour cells,
// recovery of trogocytosed antigen, stroma (ECM) degradation.  Runs after the tumour phase and
// before the CAR-T phase.
//
// Arrays (flat, replicate-major, g = r * V + v): kind uint8 (Kind), pdl1 float32 (0..1, 0 off
// tumour cells), ifng float32 (a.u.), o2 float32 (mmHg), antigen_a/b and antigen_a/b_base uint8
// (level x 100), ecm float32 (0..1).  Agent table (R, C): t_count int32 (R), t_state uint8,
// t_pos int32; ndeg uint32 (R, V) effectors per voxel, zeroed by the caller.  counts uint64
// (R, MICRO_NCOUNT): tumour cells with a recovered antigen, tumour
// cells killed by IL-12-recruited innate cells, fibroblasts killed by a FAP-targeting CAR
// (MicroCount).  reps uint32 (R): global replicate indices.  il12 float32 (a.u.).
// RNG: TUMOUR_EVENT block (v, draw 1), word 0 antigen A, word 1 antigen B; block (v, draw 2)
// word 0 innate kill of a tumour cell, word 1 FAP kill of a fibroblast (draw 0 of that stream is
// the tumour phase's per-voxel word).
// Float32 order (microenv.py):
//   i = ifng / (ifng + ifng_half);  up = (r_ifng * i + r_hyp * hyp) * (1 - L)   (hyp = o2 < o2_hypoxic)
//   L' = min(max((L + up) - r_dec * L, 0), 1) on tumour voxels, 0 elsewhere
//   innate kill of a tumour cell iff word 0 < p_innate * (il12 / (il12 + il12_half)) (after the
//   PD-L1 and antigen updates; il12 > 0 only);
//   at a voxel holding n > 0 effectors (ndeg, counted by the agent pass): ecm' = max(ecm - d_car * n,
//   0) (n as float32);
//   fibroblast voxel with ecm < caf_level: ecm' = ecm + r_dep * (caf_level - ecm);
//   then, where the voxel or a Moore neighbour holds a fibroblast and r_tgf_dep > 0 (TGF-beta-driven
//   matrix deposition by activated CAFs; tgfb float32, total TGF-beta1 ng/mL):
//   a = tgfb / (tgfb + caf_half);  ecm' = ecm + (r_tgf_dep * a) * (1 - ecm);
//   then, from drug_start_step on, ecm' = ecm * (1 - d_drug) everywhere;
//   then (microenv_fap, a launch of its own so that the neighbour reads of the deposition see no
//   fibroblast die) with p_fap > 0, a fibroblast in a voxel holding an effector dies iff word 1 <
//   p_fap (one draw per voxel, however many effectors).
//   then, from drug_start_step on, ecm' = ecm * (1 - d_drug) everywhere.
// The NumPy phase skips the PD-L1 update when r_ifng = r_hyp = 0 and every L is 0; the update
// then gives 0 everywhere as well, so the kernel always applies it.
#pragma once
#include "lattice.cuh"
#include "philox.cuh"

namespace gpusim {

// Agent pass, one thread per table entry i = r * C + s: counts the effectors of each voxel (ndeg,
// integer atomics: order-independent).
GPUSIM_HD void microenv_agents(i64 i, const Geom& geo, i32 C, const MicroK& p, const i32* t_count,
                               const u8* t_state, const i32* t_pos, u32* ndeg) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (!(p.d_car > 0.0f || p.p_fap > 0.0f) || s >= t_count[r] || t_state[i] != TSTATE_EFFECTOR)
        return;
    atomicAdd(&ndeg[(i64)r * geo_nvox(geo) + t_pos[i]], 1u);
}

// Whether voxel v of the replicate starting at base holds a fibroblast or has one among its Moore
// neighbours (this pass writes kind only at tumour voxels, the innate kill; fibroblasts die in a
// later launch, microenv_fap, so the neighbour reads see the same fibroblasts in any thread order).
GPUSIM_HD bool near_fibroblast(const Geom& geo, const u8* kind, i64 base, u32 v) {
    if (kind[base + v] == KIND_FIBROBLAST) return true;
    i64 nb[MAX_NB];
    const i32 K = moore_neighbours(geo, v, nb);
    for (i32 k = 0; k < K; ++k)
        if (nb[k] >= 0 && kind[base + nb[k]] == KIND_FIBROBLAST) return true;
    return false;
}

// Voxel pass, one thread per voxel g (after microenv_agents).
GPUSIM_HD void microenv_voxel(i64 g, const Geom& geo, const MicroK& p, u32 seed, u32 step,
                              const u32* reps, u8* kind, float* pdl1, const float* ifng,
                              const float* o2, const float* il12, const float* tgfb, u8* antigen_a,
                              u8* antigen_b, const u8* antigen_a_base, const u8* antigen_b_base,
                              const u32* ndeg, float* ecm, u64* counts) {
    const i64 V = geo_nvox(geo);
    const i32 r = (i32)(g / V);
    const u32 v = (u32)(g - (i64)r * V);
    const bool tum = kind[g] == KIND_TUMOUR;
    if (tum) {
        const float L = pdl1[g];
        const float f = ifng[g];
        const float i = f / (f + p.ifng_half);
        const float hyp = o2[g] < p.o2_hypoxic ? 1.0f : 0.0f;
        const float up = (p.r_ifng * i + p.r_hyp * hyp) * (1.0f - L);
        float n = (L + up) - p.r_dec * L;
        n = n > 0.0f ? n : 0.0f;
        pdl1[g] = n < 1.0f ? n : 1.0f;
        if (p.p_recover > 0.0f && (antigen_a[g] < antigen_a_base[g] || antigen_b[g] < antigen_b_base[g])) {
            const Block4 b = block(seed, reps[r], step, TUMOUR_EVENT, v, 1);
            const bool ra = antigen_a[g] < antigen_a_base[g] && below(b.w[0], p.p_recover);
            const bool rb = antigen_b[g] < antigen_b_base[g] && below(b.w[1], p.p_recover);
            if (ra) antigen_a[g] = antigen_a_base[g];
            if (rb) antigen_b[g] = antigen_b_base[g];
            if (ra || rb) count_add(&counts[r * MICRO_NCOUNT + MC_ANTIGEN_RECOVERED], 1);
        }
        const float il = il12[g];
        if (p.p_innate > 0.0f && il > 0.0f) {
            const Block4 b = block(seed, reps[r], step, TUMOUR_EVENT, v, 2);
            if (below(b.w[0], p.p_innate * (il / (il + p.il12_half)))) {
                kind[g] = KIND_APOPTOTIC;
                count_add(&counts[r * MICRO_NCOUNT + MC_KILLS_INNATE], 1);
            }
        }
    } else {
        pdl1[g] = 0.0f;
    }
    if (p.d_car > 0.0f && ndeg[g] > 0) {
        const float e = ecm[g] - p.d_car * (float)ndeg[g];
        ecm[g] = e > 0.0f ? e : 0.0f;
    }
    if (kind[g] == KIND_FIBROBLAST && ecm[g] < p.caf_level)
        ecm[g] = ecm[g] + p.r_dep * (p.caf_level - ecm[g]);
    if (p.r_tgf_dep > 0.0f && near_fibroblast(geo, kind, (i64)r * V, v)) {
        const float t = tgfb[g];
        const float a = t / (t + p.caf_half);
        ecm[g] = ecm[g] + (p.r_tgf_dep * a) * (1.0f - ecm[g]);
    }
    if (p.drug_on) ecm[g] = ecm[g] * (1.0f - p.d_drug);
}

// FAP pass, one thread per voxel g (after microenv_voxel; launched only when p_fap > 0).
GPUSIM_HD void microenv_fap(i64 g, const Geom& geo, const MicroK& p, u32 seed, u32 step,
                            const u32* reps, u8* kind, const u32* ndeg, u64* counts) {
    if (ndeg[g] == 0 || kind[g] != KIND_FIBROBLAST) return;
    const i64 V = geo_nvox(geo);
    const i32 r = (i32)(g / V);
    const u32 v = (u32)(g - (i64)r * V);
    const Block4 b = block(seed, reps[r], step, TUMOUR_EVENT, v, 2);
    if (below(b.w[1], p.p_fap)) {
        kind[g] = KIND_APOPTOTIC;
        count_add(&counts[r * MICRO_NCOUNT + MC_KILLS_FIBROBLAST], 1);
    }
}

}  // namespace gpusim

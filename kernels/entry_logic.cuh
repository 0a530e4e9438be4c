// entry_logic.cuh -- regional (boundary-face) entry of CAR-T cells, step 1 of the systemic phase
// while the CSF / cavity pool holds cells (CUDA twin of gpusim.model.systemic.regional_entry, MODEL.md section
// 7).  The dose bookkeeping (lam, the blood and CSF pools) is per-replicate float64 host
// arithmetic (gpusim.model.systemic: doses_due, regional_csf); the intratumoral placement and the
// append of entrants are array code shared by every backend (systemic.inject_entrants,
// append_entrants).
//
// Arrays (flat, replicate-major, g = r * V + v): occ int32 (R * V): CAR-T cells in the voxel
// (car_t_move_logic.cuh move_occ, at the phase start; a face voxel is free when it holds none); enter uint8 (R * V), zeroed
// beforehand, set to 1 at an entering voxel; counts uint64 (R), zeroed: entrants per replicate.
// reps uint32 (R): global replicate indices (the Philox key).  face int32 (F), the face's voxels
// in increasing order; nfree uint64 (R), zeroed: free face voxels (regional_free); lam float64
// (R): cells each replicate's face receives this step from its CSF / cavity pool (host float64);
// each free face voxel admits one cell with probability p = float32(min(lam[r] / nfree, 1))
// (double division, then round to nearest float32, as NumPy's astype; 0 where nfree = 0).
// RNG: stream EXTRAVASATION, block (entity v, draw 2) word 0 (rng.blocks, not rng.words).
//   Decision: enter iff word < threshold(p).
// Launches: regional_free (R * F), regional_decide (R * F).
#pragma once
#include "systemic_logic.cuh"

namespace gpusim {

// Regional entry, pass 1 (g = r * F + f): free face voxels per replicate.
GPUSIM_HD void regional_free(i64 g, i32 F, i64 V, const i32* face, const i32* occ, u64* nfree) {
    const i32 r = (i32)(g / F);
    if (occ[(i64)r * V + face[g - (i64)r * F]] == 0) count_add(&nfree[r], 1);
}

// float32(min(lam / nfree, 1)) in float64, as systemic._regional_entry; 0 without a free voxel.
GPUSIM_HD float regional_p(double lam, u64 nfree) {
    if (nfree == 0) return 0.0f;
    const double q = lam / (double)nfree;
    return (float)(q < 1.0 ? q : 1.0);
}

// Regional entry, pass 2 (g = r * F + f): the decision of one free face voxel.
GPUSIM_HD void regional_decide(i64 g, i32 F, i64 V, u32 seed, u32 step, const u32* reps, const double* lam,
                               const i32* face, const i32* occ, const u64* nfree, u8* enter,
                               u64* counts) {
    const i32 r = (i32)(g / F);
    const i32 v = face[g - (i64)r * F];
    const i64 o = (i64)r * V + v;
    if (occ[o] > 0) return;
    const float p = regional_p(lam[r], nfree[r]);
    if (below(block(seed, reps[r], step, EXTRAVASATION, (u32)v, 2).w[0], p)) {
        enter[o] = 1;
        count_add(&counts[r], 1);
    }
}

}  // namespace gpusim

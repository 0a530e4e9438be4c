// entry_logic.cuh — intratumoral placement and regional (boundary-face) entry of CAR-T cells,
// step 1 of the systemic phase on dose / infusion steps (CUDA twin of
// gpusim.model.systemic._inject and _regional_entry, MODEL.md section 7).  The dose bookkeeping
// (n, lam, the blood and CSF pools) is per-replicate float64 on the host (cupy_backend
// systemic_host_pre / regional_csf); the entrants are appended by append_row
// (systemic_logic.cuh) in voxel order, as systemic._append.
//
// Arrays (flat, replicate-major, g = r * V + v): occ int32 (R * V): slot of a CAR-T cell in the
// voxel or -1 (car_t_move_logic.cuh move_occ, at the phase start); enter uint8 (R * V), zeroed
// beforehand, set to 1 at an entering voxel; counts uint64 (R), zeroed: entrants per replicate.
// reps uint32 (R): global replicate indices (the Philox key).
//
// Intratumoral (one thread per replicate, dose steps only): the n free voxels (no CAR-T cell)
//   nearest to the injection sites, ties broken by a random word, i.e. the first n free voxels in
//   the order (site_d2, word, v) of systemic._inject's lexsort.  order int32 (V): the voxels
//   sorted by (site_d2, v), site_d2 the float64 squared distance (voxels²) to the nearest site;
//   shell int32 (S + 1): start of each run of equal site_d2 in order ("shell"), shell[S] = V
//   (both built once on the host, cupy_backend.inject_shells).  Whole shells are taken while they
//   fit; in the shell that overflows, the free voxels of smallest (word, v) are taken, the words
//   cached in wbuf uint32 (R * V, scratch, only that shell's free voxels written).
//   n int64: floor(dose × (1 − leak) × V_domain / V_tumour + 0.5) cells (host float64).
// Regional (one thread per replicate × face voxel, dose and infusion steps): face int32 (F), the
//   face's voxels in increasing order; nfree uint64 (R), zeroed: free face voxels
//   (regional_free); lam float64: cells the face receives this step (host float64); each free
//   face voxel admits one cell with probability p = float32(min(lam / nfree, 1)) (double
//   division, then round to nearest float32, as NumPy's astype; 0 where nfree = 0).
// RNG: stream EXTRAVASATION, block (entity v, draw 1) word 0 for the intratumoral tie-break,
//   block (entity v, draw 2) word 0 for the regional decision (rng.blocks, not rng.words).
//   Decision: enter iff word < threshold(p).
// Launch order (cupy_backend.CupySimulation._systemic, tests/harness/entry_harness.cpp): occ
// (car_t_move_occ), inject_select or regional_free + regional_decide, host capacity check on
// counts (CapacityError), extravasation_append_kernel; then the vessel entry (systemic.cu) on a
// freshly built occ.
#pragma once
#include "systemic_logic.cuh"

namespace gpusim {

GPUSIM_HD u32 inject_word(u32 seed, u32 rep, u32 step, u32 v) {
    return block(seed, rep, step, EXTRAVASATION, v, 1).w[0];
}

// (w, v) strictly before (w2, v2) in lexicographic order
GPUSIM_HD bool word_voxel_less(u32 w, i32 v, u32 w2, i32 v2) { return w < w2 || (w == w2 && v < v2); }

// Intratumoral placement of replicate r: marks enter, returns the number placed (min(n, free)).
GPUSIM_HD i64 inject_select(i32 r, i64 V, u32 seed, u32 step, const u32* reps, i64 n, i32 S,
                            const i32* order, const i32* shell, const i32* occ, u32* wbuf,
                            u8* enter) {
    const i64 base = (i64)r * V;
    i64 taken = 0;
    for (i32 s = 0; s < S && taken < n; ++s) {
        const i32 a = shell[s], b = shell[s + 1];
        i64 m = 0;
        for (i32 j = a; j < b; ++j) m += occ[base + order[j]] < 0 ? 1 : 0;
        if (taken + m <= n) {  // the whole shell
            for (i32 j = a; j < b; ++j)
                if (occ[base + order[j]] < 0) enter[base + order[j]] = 1;
            taken += m;
            continue;
        }
        // the last shell: the k free voxels of smallest (word, v)
        const i64 k = n - taken;
        for (i32 j = a; j < b; ++j) {
            const i32 v = order[j];
            if (occ[base + v] < 0) wbuf[base + v] = inject_word(seed, reps[r], step, (u32)v);
        }
        for (i32 j = a; j < b; ++j) {
            const i32 v = order[j];
            if (occ[base + v] >= 0) continue;
            const u32 w = wbuf[base + v];
            i64 rank = 0;
            for (i32 j2 = a; j2 < b && rank < k; ++j2) {
                const i32 v2 = order[j2];
                if (v2 != v && occ[base + v2] < 0 && word_voxel_less(wbuf[base + v2], v2, w, v)) ++rank;
            }
            if (rank < k) enter[base + v] = 1;
        }
        taken = n;
    }
    return taken;
}

// Regional entry, pass 1 (g = r * F + f): free face voxels per replicate.
GPUSIM_HD void regional_free(i64 g, i32 F, i64 V, const i32* face, const i32* occ, u64* nfree) {
    const i32 r = (i32)(g / F);
    if (occ[(i64)r * V + face[g - (i64)r * F]] < 0) count_add(&nfree[r], 1);
}

// float32(min(lam / nfree, 1)) in float64, as systemic._regional_entry; 0 without a free voxel.
GPUSIM_HD float regional_p(double lam, u64 nfree) {
    if (nfree == 0) return 0.0f;
    const double q = lam / (double)nfree;
    return (float)(q < 1.0 ? q : 1.0);
}

// Regional entry, pass 2 (g = r * F + f): the decision of one free face voxel.
GPUSIM_HD void regional_decide(i64 g, i32 F, i64 V, u32 seed, u32 step, const u32* reps, double lam,
                               const i32* face, const i32* occ, const u64* nfree, u8* enter,
                               u64* counts) {
    const i32 r = (i32)(g / F);
    const i32 v = face[g - (i64)r * F];
    const i64 o = (i64)r * V + v;
    if (occ[o] >= 0) return;
    const float p = regional_p(lam, nfree[r]);
    if (below(block(seed, reps[r], step, EXTRAVASATION, (u32)v, 2).w[0], p)) {
        enter[o] = 1;
        count_add(&counts[r], 1);
    }
}

}  // namespace gpusim

// systemic_logic.cuh -- per-voxel logic of intravenous extravasation, step 2 of the systemic phase
// (CUDA twin of the vessel part of gpusim.model.systemic.systemic_phase and of _append, MODEL.md
// section 7).  The dose bookkeeping and the blood-pool arithmetic are per-replicate float64 on the
// host; the intratumoral and regional entries (dose / infusion steps) are entry_logic.cuh.
//
// Arrays (flat, replicate-major, g = r * V + v): kind uint8 (Kind), chemokine float32 (0..1),
// occ int32 (R * V): CAR-T cells per voxel (car_t_move_logic.cuh move_occ; entry needs 0).  w int32 (R * V):
// the voxel's integer chemokine weight, 0 unless it is a vessel voxel without a CAR-T cell;
// wsum uint64 (R) its exact integer sum (zeroed beforehand).  scale float32 (R):
// float32(lam / wsum) computed on the host in float64 (0 where wsum = 0), lam = blood x homing x
// domain share (cells).  enter uint8 (R * V).  Agent table (R, C) as car_t_logic.cuh.
// counts uint64 (R): entrants.
// Integer / float32 order: w = 256 + floor(weight256 * c) (float32 product, floor, int32);
//   p = min(scale * float32(w), 1); enter iff word < threshold(p).
// RNG: EXTRAVASATION, word v & 3 of block v >> 2 (gpusim.rng.words) per free vessel voxel.
// Passes: extravasation_weights (R*V), host scale, extravasation_decide (R*V); the entrants are
// appended by gpusim.model.systemic.append_entrants (array code, every backend).
#pragma once
#include "car_t_logic.cuh"

namespace gpusim {

// floor of a float32 as int64, exactly (no math header: NVRTC has none).
GPUSIM_HD i64 floor_f32_i64(float x) {
    i64 t = (i64)x;  // truncation towards zero
    if ((float)t > x) t -= 1;
    return t;
}

GPUSIM_HD void extravasation_weights(i64 g, float weight256, const u8* kind, const float* chem,
                                     const i32* occ, i32* w, u64* wsum, i64 V) {
    i32 x = 0;
    if (kind[g] == KIND_VESSEL && occ[g] == 0) {
        x = 256 + (i32)floor_f32_i64(weight256 * chem[g]);
        count_add(&wsum[g / V], (u64)x);
    }
    w[g] = x;
}

GPUSIM_HD void extravasation_decide(i64 g, const Geom& geo, u32 seed, u32 step, const u32* reps,
                                    const float* scale, const i32* w, u8* enter, u64* counts) {
    const i64 V = geo_nvox(geo);
    const i32 r = (i32)(g / V);
    enter[g] = 0;
    if (w[g] == 0) return;
    const u32 v = (u32)(g - (i64)r * V);
    float p = scale[r] * (float)w[g];
    p = p < 1.0f ? p : 1.0f;
    if (below(word(seed, reps[r], step, EXTRAVASATION, v), p)) {
        enter[g] = 1;
        count_add(&counts[r], 1);
    }
}

}  // namespace gpusim

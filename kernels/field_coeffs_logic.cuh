// field_coeffs_logic.cuh -- per-voxel sink / source coefficients of the six fields (CUDA twin of
// the coefficient assembly in gpusim.model.environment.FieldsPhase.solve, MODEL.md section 3);
// the solves themselves are fields_logic.cuh.
//
// Arrays (flat, replicate-major, g = r * V + v): kind uint8 (Kind); c float32 (the field
// before its solve: its c_old; its held voxels set here); ifng float32 (previous step's
// IFN-gamma, for the chemokine boost); o2 float32 (mmHg, the oxygen just solved, for hypoxic
// TGF-beta); amap uint32 (R * V) agent map bits AMAP_TCELL (any CAR-T cell), AMAP_ENG
// (t_eng > 0), AMAP_ACT (t_act > 0 and effector), built by field_agent_map over the table
// (t_count int32 (R); t_pos int32, t_eng uint8, t_act int16, t_state uint8 (R, C)); amap zeroed
// beforehand.  Outputs: the solver's problem (fields_logic.cuh sor_pose: den, s, a float32 and
// the held mask uint8, colour-split; cmax uint32 (R)); a: sink, 1/min; s: source, a.u./min.
// No random numbers.
// Float32 order per field (environment.py):
//   oxygen/glucose: a = sink[kind] (+ uptake_T if a CAR-T cell is there); s = o2_src[kind]
//     (oxygen: minus the zero-order consumption, +0.0 for kinds without; the solve is projected
//     onto O2 >= 0 when some consumption is on) or 0 (glucose); vessel voxels fixed at the
//     vessel value (the solver's fixed mask is kind == VESSEL)
//   chemokine: q = tumour ? sec * (1 + boost * (I / (I + K_I))) : 0; a = base + q;
//     s = q + c_old * inv_dt
//   TGF-beta: src = src[kind], hypoxic tumour (o2 < o2_hypoxic): hyp_src; a = base (+ trap_uptake
//     at CAR-T voxels with the trap armour); s = src + c_old * inv_dt
//   IFN-gamma / IL-12: a = base; s = (mask ? sec : 0) + c_old * inv_dt (mask: ENG / ACT)
#pragma once
#include "fields_logic.cuh"
#include "lattice.cuh"

namespace gpusim {

// One thread per table entry i = r * C + s.  Several cells may share a voxel (car_t.max_per_voxel):
// their bits are OR-ed atomically (order-free).
GPUSIM_HD void field_agent_map(i64 i, const Geom& geo, i32 C, const i32* t_count, const i32* t_pos,
                               const u8* t_eng, const i16* t_act, const u8* t_state, u32* amap) {
    const i32 r = (i32)(i / C), s = (i32)(i % C);
    if (s >= t_count[r]) return;
    u32 m = AMAP_TCELL;
    if (t_eng[i] > 0) m |= AMAP_ENG;
    if (t_act[i] > 0 && t_state[i] == TSTATE_EFFECTOR) m |= AMAP_ACT;
    bits_or(&amap[(i64)r * geo_nvox(geo) + t_pos[i]], m);
}

// One thread per voxel g: the sink a and source s of field `f` at g, posed as the solver's
// problem (fields_logic.cuh sor_pose: colour-split den, s, a (or null), held mask (or null:
// nothing held; oxygen and glucose hold the vessel voxels at fixed_value), cmax).  c is the
// field before its solve (c_old), its held voxels then set.
GPUSIM_HD void field_coeffs(i64 g, i32 f, const FieldCoefK& p, const FieldGeom& geo, const u8* kind,
                            const u32* amap, float* c, const float* ifng, const float* o2,
                            float den0, float fixed_value, float* den, float* s_split,
                            float* a_split, u8* fixed_split, u32* cmax) {
    const u8 k = kind[g];
    const u32 m = amap[g];
    const bool tc = (m & AMAP_TCELL) != 0;
    const float c_old = c[g];
    float a, s;
    switch (f) {
        case FIELD_O2:
        case FIELD_GLUCOSE: {
            const float base = f == FIELD_O2 ? p.o2_sink[k] : p.glucose_sink[k];
            a = tc ? base + (f == FIELD_O2 ? p.o2_t : p.glucose_t) : base;
            s = f == FIELD_O2 ? p.o2_src[k] : 0.0f;
            break;
        }
        case FIELD_CHEMOKINE: {
            float q = 0.0f;
            if (k == KIND_TUMOUR) {
                const float in = ifng[g];
                q = p.chem_sec * (1.0f + p.chem_boost * (in / (in + p.ifng_half)));
            }
            a = p.chem_base + q;
            s = q + c_old * p.inv_dt;
            break;
        }
        case FIELD_TGFB: {
            float src = p.tgfb_src[k];
            if (k == KIND_TUMOUR && o2[g] < p.o2_hypoxic) src = p.tgfb_hyp_src;
            a = (p.trap && tc) ? p.tgfb_base + p.trap_uptake : p.tgfb_base;
            s = src + c_old * p.inv_dt;
            break;
        }
        default: {  // FIELD_IFNG, FIELD_IL12
            const bool ifn = f == FIELD_IFNG;
            const bool on = (m & (ifn ? AMAP_ENG : AMAP_ACT)) != 0;
            const float src = on ? (ifn ? p.ifng_sec : p.il12_sec) : 0.0f;
            a = ifn ? p.ifng_base : p.il12_base;
            s = src + c_old * p.inv_dt;
            break;
        }
    }
    sor_pose(g, geo, den0, a, s, fixed_split && k == KIND_VESSEL, fixed_value, c, den, s_split,
             a_split, fixed_split, cmax);
}

}  // namespace gpusim

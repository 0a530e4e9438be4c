// tumour_logic.cuh -- per-voxel logic of the tissue-cell phase (CUDA twin of
// gpusim.model.tumour.tumour_phase, MODEL.md section 4): tumour apoptosis / necrosis / division
// with antigen loss, clearance of dead cells, vessel collapse.
//
// Arrays (flat, replicate-major, index g = r * V + v, v = (z * Y + y) * X + x):
//   kind_in, kind_out  uint8 (R, Z, Y, X)  Kind codes (lattice.Kind); kind_in is the phase start
//   antigen_a/b        uint8 (R, Z, Y, X)  level x 100
//   antigen_a/b_base   uint8 (R, Z, Y, X)  baseline level x 100, or null (absent)
//   pdl1               float32 (R, Z, Y, X) PD-L1 level 0..1, or null (absent)
//   A cleared voxel has all of antigen_a/b, antigen_a/b_base, pdl1 reset to 0; a daughter gets
//   its parent's antigen levels and baselines (0 when lost) and its parent's PD-L1.
//   ecm                float32             density 0..1
//   o2 (mmHg), glucose (mM) float32
//   claims             uint64 (R * V)      NO_CLAIM between phases; key = (priority << 32) | parent
//   reps               uint32 (R)          global replicate index (Philox key word 1)
//   counts             uint64 (R, TUMOUR_NCOUNT) event counters, added to
// RNG: TUMOUR_EVENT (word v & 3 of block v >> 2 per tumour voxel), CLEARANCE (same, per dead
// voxel), TUMOUR_DIVISION (block of entity v per dividing cell: target, claim priority,
// antigen-A loss, antigen-B loss; draw 1, word 0: success of a push).
// Division with shoving (tumour.py docstring): the target is a free voxel (EMPTY, ecm <=
// block_density) of the nearest Chebyshev ring d <= push_radius holding one, else a displaceable
// voxel (HEALTHY, FIBROBLAST, or EMPTY with ecm > block_density) of the nearest ring holding one;
// uniform within the ring, offsets ordered by ring then lexicographically in (dz, dy, dx)
// (tumour.push_offsets).  A push succeeds when below(word, p_push * clip01((push_ecm_max - ecm) /
// push_ecm_max)).  A daughter born on a healthy cell or fibroblast counts it as displaced.
// Float32 order (event_probabilities in tumour.py):
//   ramp = clip((o2 - o2_zero) / (o2_full - o2_zero), 0, 1)
//   gf = glucose / (glucose + glucose_half)  (1 when glucose_half <= 0)
//   p_div = (p_div_max * ramp) * gf, 0 when o2 < o2_hypoxic
//   p_nec = p_nec_max * clip((onset - o2) / (onset - nec_max), 0, 1)
// thresholds are summed as uint64: apo < t_apo <= nec < t_apo + t_nec <= div < ... + t_div.
#pragma once
#include "lattice.cuh"
#include "philox.cuh"

namespace gpusim {

GPUSIM_HD float clip01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

// Division target classes of a voxel (0: none, 1: free, 2: displaceable).
GPUSIM_HD i32 push_class(u8 k, float e, float block_density) {
    if (k == KIND_EMPTY) return e <= block_density ? 1 : 2;
    return (k == KIND_HEALTHY || k == KIND_FIBROBLAST) ? 2 : 0;
}

// Visits the offsets of Chebyshev ring d around (z, y, x) in lexicographic (dz, dy, dx) order;
// f(index-or--1) for each.  2D lattices (Z == 1) use dz = 0 only.
template <class F>
GPUSIM_HD void for_ring(const Geom& g, i32 z, i32 y, i32 x, i32 d, F f) {
    const i32 rz = g.Z == 1 ? 0 : d;
    for (i32 dz = -rz; dz <= rz; ++dz)
        for (i32 dy = -d; dy <= d; ++dy)
            for (i32 dx = -d; dx <= d; ++dx) {
                const i32 az = dz < 0 ? -dz : dz, ay = dy < 0 ? -dy : dy, ax = dx < 0 ? -dx : dx;
                i32 m = az > ay ? az : ay;
                m = m > ax ? m : ax;
                if (m != d) continue;
                const i32 zz = z + dz, yy = y + dy, xx = x + dx;
                const bool ok = zz >= 0 && zz < g.Z && yy >= 0 && yy < g.Y && xx >= 0 && xx < g.X;
                f(ok ? ((i64)zz * g.Y + yy) * g.X + xx : (i64)-1);
            }
}

// The division target of the cell at v (replicate offset base), or -1 (no claim).
GPUSIM_HD i64 division_target(const Geom& geo, const TumourK& p, u32 seed, u32 rep, u32 step,
                              u32 v, const Block4& b, i64 base, const u8* kind_in,
                              const float* ecm) {
    const i32 x = (i32)(v % (u32)geo.X);
    const u32 t = v / (u32)geo.X;
    const i32 y = (i32)(t % (u32)geo.Y);
    const i32 z = (i32)(t / (u32)geo.Y);
    const i32 L = p.push_radius;
    i32 d_free = L + 1, d_push = L + 1;
    for (i32 d = 1; d <= L && d_free > L; ++d)
        for_ring(geo, z, y, x, d, [&](i64 n) {
            if (n < 0) return;
            const i32 c = push_class(kind_in[base + n], ecm[base + n], p.block_density);
            if (c == 1 && d < d_free) d_free = d;
            if (c == 2 && d < d_push) d_push = d;
        });
    const i32 want = d_free <= L ? 1 : 2;
    const i32 d = d_free <= L ? d_free : d_push;
    if (d > L) return -1;
    u32 ncand = 0;
    for_ring(geo, z, y, x, d, [&](i64 n) {
        if (n >= 0 && push_class(kind_in[base + n], ecm[base + n], p.block_density) == want) ++ncand;
    });
    u32 pick = choose(b.w[0], ncand);
    i64 target = -1;
    for_ring(geo, z, y, x, d, [&](i64 n) {
        if (target >= 0 || n < 0) return;
        if (push_class(kind_in[base + n], ecm[base + n], p.block_density) != want) return;
        if (pick == 0) target = n;
        else --pick;
    });
    if (want == 2) {
        const float f = clip01((p.push_ecm_max - ecm[base + target]) / p.push_ecm_max);
        const float pp = p.p_push * f;
        const Block4 b1 = block(seed, rep, step, TUMOUR_DIVISION, v, 1);
        if (!below(b1.w[0], pp)) return -1;
    }
    return target;
}

// Phase 1, one thread per voxel g in 0 .. R*V-1: decide every voxel's event from the phase-start
// state; write kind_out (every voxel), clear dead voxels' antigens, post division claims.
GPUSIM_HD void tumour_decide(i64 g, const Geom& geo, const TumourK& p, u32 seed, u32 step,
                             const u32* reps, const u8* kind_in, u8* kind_out, u8* antigen_a,
                             u8* antigen_b, u8* antigen_a_base, u8* antigen_b_base, float* pdl1,
                             const float* ecm, const float* o2, const float* glucose,
                             u64* claims, u64* counts) {
    const i64 V = geo_nvox(geo);
    const i32 r = (i32)(g / V);
    const u32 v = (u32)(g - (i64)r * V);
    const i64 base = (i64)r * V;
    const u32 rep = reps[r];
    const u8 k = kind_in[g];
    u8 out = k;
    if (k == KIND_TUMOUR) {
        const u64 u = word(seed, rep, step, TUMOUR_EVENT, v);
        const float o = o2[g];
        const float gl = glucose[g];
        float ramp = clip01((o - p.o2_zero) / (p.o2_full - p.o2_zero));
        float gf = p.glucose_half > 0.0f ? gl / (gl + p.glucose_half) : 1.0f;
        float p_div = (p.p_division_max * ramp) * gf;
        if (o < p.o2_hypoxic) p_div = 0.0f;
        float nec = clip01((p.o2_nec_onset - o) / (p.o2_nec_onset - p.o2_nec_max));
        float p_nec = p.p_necrosis_max * nec;
        const u64 t_apo = threshold(p.p_apoptosis);
        const u64 t_nec = t_apo + threshold(p_nec);
        const u64 t_div = t_nec + threshold(p_div);
        if (u < t_apo) {
            out = KIND_APOPTOTIC;
            count_add(&counts[r * TUMOUR_NCOUNT + TC_APOPTOSIS], 1);
        } else if (u < t_nec) {
            out = KIND_NECROTIC;
            count_add(&counts[r * TUMOUR_NCOUNT + TC_NECROSIS], 1);
        } else if (u < t_div) {
            const Block4 b = block(seed, rep, step, TUMOUR_DIVISION, v);
            const i64 target = division_target(geo, p, seed, rep, step, v, b, base, kind_in, ecm);
            if (target >= 0) claim_min(&claims[base + target], ((u64)b.w[1] << 32) | (u64)v);
        }
    } else if (k == KIND_APOPTOTIC || k == KIND_NECROTIC) {
        const u32 u = word(seed, rep, step, CLEARANCE, v);
        if (below(u, k == KIND_APOPTOTIC ? p.p_clear_apoptotic : p.p_clear_necrotic)) {
            out = KIND_EMPTY;
            antigen_a[g] = 0;
            antigen_b[g] = 0;
            if (antigen_a_base) antigen_a_base[g] = 0;
            if (antigen_b_base) antigen_b_base[g] = 0;
            if (pdl1) pdl1[g] = 0.0f;
            count_add(&counts[r * TUMOUR_NCOUNT + TC_CLEARED], 1);
        }
    } else if (k == KIND_VESSEL) {
        i64 nb[MAX_NB];
        const i32 K = moore_neighbours(geo, v, nb);
        i32 n_nec = 0;
        for (i32 j = 0; j < K; ++j)
            if (nb[j] >= 0 && kind_in[base + nb[j]] == KIND_NECROTIC) ++n_nec;
        if (n_nec >= p.collapse_neighbours) {
            out = KIND_NECROTIC;
            count_add(&counts[r * TUMOUR_NCOUNT + TC_VESSEL_COLLAPSE], 1);
        }
    }
    kind_out[g] = out;
}

// Phase 2, one thread per voxel g: a claimed voxel receives the winning parent's daughter (its
// antigen levels, each lost with p_antigen_loss; a healthy cell or fibroblast there is displaced
// and counted); the claim slot is reset for the next phase.
GPUSIM_HD void tumour_births(i64 g, const Geom& geo, const TumourK& p, u32 seed, u32 step,
                             const u32* reps, u8* kind_out, u8* antigen_a, u8* antigen_b,
                             u8* antigen_a_base, u8* antigen_b_base, float* pdl1,
                             u64* claims, u64* counts) {
    const u64 key = claims[g];
    if (key == NO_CLAIM) return;
    const i64 V = geo_nvox(geo);
    const i32 r = (i32)(g / V);
    const u32 parent = (u32)(key & 0xFFFFFFFFull);
    const Block4 b = block(seed, reps[r], step, TUMOUR_DIVISION, parent);
    const bool lose_a = below(b.w[2], p.p_antigen_loss);
    const bool lose_b = below(b.w[3], p.p_antigen_loss);
    const i64 pg = (i64)r * V + parent;
    const u8 displaced = kind_out[g];  // the target's kind: no event of tumour_decide changes it
    if (displaced == KIND_HEALTHY) count_add(&counts[r * TUMOUR_NCOUNT + TC_HEALTHY_DISPLACED], 1);
    if (displaced == KIND_FIBROBLAST) count_add(&counts[r * TUMOUR_NCOUNT + TC_FIBROBLAST_DISPLACED], 1);
    kind_out[g] = KIND_TUMOUR;
    antigen_a[g] = lose_a ? 0 : antigen_a[pg];
    antigen_b[g] = lose_b ? 0 : antigen_b[pg];
    if (antigen_a_base) antigen_a_base[g] = lose_a ? 0 : antigen_a_base[pg];
    if (antigen_b_base) antigen_b_base[g] = lose_b ? 0 : antigen_b_base[pg];
    if (pdl1) pdl1[g] = pdl1[pg];
    count_add(&counts[r * TUMOUR_NCOUNT + TC_DIVISIONS], 1);
    if (lose_a) count_add(&counts[r * TUMOUR_NCOUNT + TC_ANTIGEN_A_LOSS], 1);
    if (lose_b) count_add(&counts[r * TUMOUR_NCOUNT + TC_ANTIGEN_B_LOSS], 1);
    claims[g] = NO_CLAIM;
}

}  // namespace gpusim

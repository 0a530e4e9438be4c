// fields_logic.cuh -- per-voxel logic of the red-black SOR field solver (CUDA twin of
// gpusim.model.fields.FieldSolver; the arithmetic contract is the one in that module's
// docstring, followed here operation by operation).
//
// Shapes: the field c is float32 (R, Z, Y, X), flat index r * V + (z * Y + y) * X + x,
// V = Z * Y * X; 2D (three_d == 0) is Z == 1 (no z-neighbours).  The solver's own coefficients
// (s, den, a and the held mask) are stored colour-split (split_index): a colour pass then reads
// only its half of them, contiguously, where the natural layout would read every sector.
// Units: c in the field's unit (mmHg, mM, 1), den = den0 + a in 1/min, s in unit/min.  No
// random numbers.
#pragma once
#include "interface.cuh"

namespace gpusim {

struct FieldGeom {
    i32 R, Z, Y, X;
    i32 dirichlet;  // 1: out-of-domain neighbours hold bv; 0 (neumann): the voxel's own value
    float bv;       // float32(boundary_value)
    float dh;       // float32(D / (h * h))
    float omega;    // float32(omega)
    i32 floor_on;   // 1: projected SOR, new values below `floor` are raised to it; 0: plain SOR
    float floor;    // float32(floor) (read only when floor_on)
    i32 three_d;    // 1: the 7-point stencil (z-neighbours); 0: 2D (Z == 1)
};

// Number of threads of one colour pass: one per (replicate, z, y, pair of x).
GPUSIM_HD i64 sor_threads(const FieldGeom& g) {
    return (i64)g.R * g.Z * g.Y * ((g.X + 1) / 2);
}

// Colour-split layout of a solver coefficient (s, den, held mask): colour k = (x + y + z) & 1
// holds the entries k * sor_threads(g) + ((r * Z + z) * Y + y) * H + x / 2, H = (X + 1) / 2, so
// thread t of a colour pass (sor_voxel) finds its voxel's entry at k * sor_threads(g) + t.  An
// array has 2 * sor_threads(g) entries; with X odd, the last entry of each row of colour
// (y + z + 1) & 1 is padding (never written or read).  A one-voxel level: entry r.
GPUSIM_HD i64 split_index(const FieldGeom& g, i32 r, i32 z, i32 y, i32 x) {
    const i64 row = ((i64)r * g.Z + z) * g.Y + y;
    return ((x + y + z) & 1) * sor_threads(g) + row * ((g.X + 1) / 2) + x / 2;
}

// A flat index t of an (R, Z, Y, X) array as (r, z, y, x).
struct Idx4 {
    i32 r, z, y, x;
};

GPUSIM_HD Idx4 unflatten(i64 t, i32 Z, i32 Y, i32 X) {
    Idx4 i;
    i.x = (i32)(t % X);
    i64 q = t / X;
    i.y = (i32)(q % Y);
    q /= Y;
    i.z = (i32)(q % Z);
    i.r = (i32)(q / Z);
    return i;
}

// The sum of the neighbour values of voxel v = (r, z, y, x) whose own value is `own`, in the
// contract's order x-, x+, y-, y+ (, z-, z+), in T (float for the sweep; double for the multigrid
// residual: each float32 value widened exactly); an out-of-domain neighbour is bv (dirichlet) or
// own.
template <typename T>
GPUSIM_HD T sor_neighbours(const FieldGeom& g, const float* c, i64 v, i32 z, i32 y, i32 x, T own) {
    const T out = g.dirichlet ? (T)g.bv : own;
    T nb = x > 0 ? (T)c[v - 1] : out;
    nb = nb + (x < g.X - 1 ? (T)c[v + 1] : out);
    nb = nb + (y > 0 ? (T)c[v - g.X] : out);
    nb = nb + (y < g.Y - 1 ? (T)c[v + g.X] : out);
    if (g.three_d) {
        const i64 XY = (i64)g.X * g.Y;
        nb = nb + (z > 0 ? (T)c[v - XY] : out);
        nb = nb + (z < g.Z - 1 ? (T)c[v + XY] : out);
    }
    return nb;
}

// One voxel of one colour pass.  `t` is the thread index in 0 .. sor_threads(g) - 1.  Skips
// replicates that are not active (converged), fixed voxels and threads past the row end.
// Writes c in place (a voxel of one colour reads only the other colour and itself) and raises
// maxchg_bits[r] to the voxel's change (bit pattern of a non-negative float32): |t| (the step
// omega (gs - c)), or |c_new - c| with a floor.  s, den, fixed (or
// null): colour-split (split_index).  For a multigrid cycle's change (the max of
// |c_after - c_before|, measured on the way by the finest level's smoothing): `save` (or null)
// receives the old value c, `base` (or null) replaces it as the value the change is measured
// from; both colour-split.
GPUSIM_HD void sor_voxel(i64 t, i32 colour, const FieldGeom& g, float* c, const float* s,
                         const float* den, const u8* fixed, const u8* active, u32* maxchg_bits,
                         float* save = nullptr, const float* base = nullptr) {
    const Idx4 i = unflatten(t, g.Z, g.Y, (g.X + 1) / 2);  // i.x: the pair of x
    const i32 y = i.y, z = i.z, r = i.r;
    if (!active[r]) return;
    i32 x = 2 * i.x + ((colour + y + z) & 1);
    if (x >= g.X) return;
    const i64 V = (i64)g.Z * g.Y * g.X;
    const i64 v = (i64)r * V + ((i64)z * g.Y + y) * g.X + x;
    const i64 k = colour * sor_threads(g) + t;  // split_index(g, r, z, y, x)
    if (fixed && fixed[k]) return;
    const float own = c[v];
    if (save) save[k] = own;
    const float nb = sor_neighbours(g, c, v, z, y, x, own);
    float tt = g.dh * nb;
    tt = tt + s[k];
    float gs = tt / den[k];
    tt = gs - own;
    tt = g.omega * tt;
    float cn = own + tt;
    if (g.floor_on && cn < g.floor) cn = g.floor;  // exactly this comparison (NaN, -0.0 kept)
    // the change: the step itself (|omega (gs - c)|: |c_new - c| up to c_new's rounding), the
    // step actually taken where a floor may cut it, the change from `base` for a cycle's
    float change = base ? abs_f32(cn - base[k]) : abs_f32(g.floor_on ? cn - own : tt);
    c[v] = cn;
    max_nonneg_f32(&maxchg_bits[r], change);
}

// After a sweep, per replicate r: count the sweep, evaluate the stopping rule (float32, in the
// order of the contract: r = d / d_prev (1 when d_prev is 0), rho = max(r, r_prev, rho_min),
// converged when 2 d rho <= tol (1 - rho), or d <= noise = max(cmax, scale) 2^-18 with r >= 1
// measured (d_prev > 0: not on the first sweep, where r = 1 by definition);
// noise = 0 when scale is 0),
// freeze the replicate when it converged or reached max_iter, and reset its max change.
// dprev, rprev: float32 (R), zero before the first sweep; cmax_bits: uint32 (R), the bits of
// max |c| once the held voxels are set (sor_pose).
GPUSIM_HD void sor_after_sweep(i32 r, float tol, float rho_min, float scale, i32 max_iter,
                               u8* active, i32* iters, u32* maxchg_bits, float* dprev,
                               float* rprev, const u32* cmax_bits) {
    if (active[r]) {
        iters[r] += 1;
        const float d = f32_from_bits(maxchg_bits[r]);
        const bool measured = dprev[r] > 0.0f;
        const float ratio = measured ? d / dprev[r] : 1.0f;
        float rho = ratio > rprev[r] ? ratio : rprev[r];
        rho = rho > rho_min ? rho : rho_min;
        float lhs = d * rho;
        lhs = lhs + lhs;
        float rhs = 1.0f - rho;
        rhs = tol * rhs;
        dprev[r] = d;
        rprev[r] = ratio;
        float m = 0.0f;  // scale 0: the rounding-level branch is off
        if (scale > 0.0f) {
            m = f32_from_bits(cmax_bits[r]);
            m = m > scale ? m : scale;
        }
        const float noise = m * 3.814697265625e-06f;  // 2^-18, exact
        if (lhs <= rhs || (d <= noise && ratio >= 1.0f && measured) || iters[r] >= max_iter) active[r] = 0;
    }
    maxchg_bits[r] = 0;
}

// The solver's problem at voxel v = (r, z, y, x) (natural index), once per solve, written
// colour-split (split_index): den = den0 + a (float32), s, a (or null: multigrid solves only,
// whose coarse sinks come from it) and the held mask (or null: nothing held); a held voxel's c
// set to fixed_value; then cmax_bits[r] raised to |c| (an exact max, the rounding-level scale).
// Called by fields_prepare (from natural a, s, fixed) and field_coeffs_kernel (from the cells).
GPUSIM_HD void sor_pose(i64 v, const FieldGeom& g, float den0, float a, float s, bool held,
                        float fixed_value, float* c, float* den_split, float* s_split,
                        float* a_split, u8* fixed_split, u32* cmax_bits) {
    const Idx4 i = unflatten(v, g.Z, g.Y, g.X);
    const i64 k = split_index(g, i.r, i.z, i.y, i.x);
    den_split[k] = den0 + a;
    s_split[k] = s;
    if (a_split) a_split[k] = a;
    if (fixed_split) fixed_split[k] = held ? 1 : 0;
    if (held) c[v] = fixed_value;
    max_nonneg_f32(&cmax_bits[i.r], abs_f32(c[v]));
}

// fields_prepare's voxel: sor_pose from natural a, s and fixed (or null).
GPUSIM_HD void sor_prepare(i64 v, const FieldGeom& g, float den0, const float* a, const float* s,
                           const u8* fixed, float fixed_value, float* c, float* den_split,
                           float* s_split, float* a_split, u8* fixed_split, u32* cmax_bits) {
    sor_pose(v, g, den0, a[v], s[v], fixed && fixed[v], fixed_value, c, den_split, s_split,
             a_split, fixed_split, cmax_bits);
}

}  // namespace gpusim

// multigrid_logic.cuh -- per-voxel logic of the multigrid V-cycle (CUDA twin of
// gpusim.model.multigrid.MultigridSolver; the arithmetic contract is that module's docstring,
// followed here operation by operation).  The smoother is fields_logic.cuh's sor_voxel with
// omega = 1.
//
// Shapes: a level's c and residual are float32 (R, Z, Y, X), flat r * V + (z * Y + y) * X + x;
// its s, den and sink a (and the finest level's held mask) are colour-split as the smoother
// reads them (fields_logic.cuh split_index); a fine
// level (f) and the next coarser one (c) have extents Zc = (Zf + 1) / 2 where Zf > 1 (else 1),
// likewise Y and X.  2D is Z == 1 on every level.  Units: c, r in the field's unit, den, a 1/min,
// s unit/min.  No random numbers.
#pragma once
#include "fields_logic.cuh"

namespace gpusim {

struct MgGeom {
    i32 R, Zf, Yf, Xf, Zc, Yc, Xc;
    i32 three_d;  // 1: a 3D lattice (a z-axis in the transfers, also where Zf has come down to 1)
};

// Cell-centred linear interpolation along one axis of fine length n: fine index i takes
// wlo * v[lo] + whi * v[hi]; edge == 1 where the far coarse cell lies outside (then v[J] exactly).
struct MgAxis {
    i32 lo, hi;
    float wlo, whi;
    bool edge;
};

GPUSIM_HD MgAxis mg_axis(i32 i, i32 n) {
    const i32 nc = (n + 1) / 2, J = i / 2;
    MgAxis a;
    if (i % 2 == 0) { a.lo = J - 1; a.hi = J; a.wlo = 0.25f; a.whi = 0.75f; }
    else { a.lo = J; a.hi = J + 1; a.wlo = 0.75f; a.whi = 0.25f; }
    a.edge = a.lo < 0 || a.hi >= nc;
    if (a.edge) { a.lo = J; a.hi = J; a.wlo = 1.0f; a.whi = 0.0f; }
    return a;
}

// Weight of the fine index i = 2J - 1 + k (k = 0..3) in the restriction to coarse J (transpose
// of mg_axis); 0 where i lies outside the axis.
GPUSIM_HD float mg_rweight(i32 J, i32 k, i32 n) {
    const i32 i = 2 * J - 1 + k;
    if (i < 0 || i >= n) return 0.0f;
    const MgAxis a = mg_axis(i, n);
    return (a.lo == J ? a.wlo : 0.0f) + (a.hi == J ? a.whi : 0.0f);
}

GPUSIM_HD i64 mg_at(i32 r, i32 z, i32 y, i32 x, i32 Z, i32 Y, i32 X) {
    return (((i64)r * Z + z) * Y + y) * X + x;
}

// The colour-split index (split_index) of voxel (r, z, y, x) of the coarse level (the fine one
// with fine = true).
GPUSIM_HD i64 mg_split(const MgGeom& g, i32 r, i32 z, i32 y, i32 x, bool fine = false) {
    const FieldGeom l{g.R, fine ? g.Zf : g.Zc, fine ? g.Yf : g.Yc, fine ? g.Xf : g.Xc,
                      0, 0.0f, 0.0f, 0.0f, 0, 0.0f, 0};
    return split_index(l, r, z, y, x);
}

// Coarse sink and den of one coarse voxel t (0 .. R Zc Yc Xc - 1): the float32 sum of its
// children's sink (a fixed child counts K), children in the order (dz, dy, dx), an absent child
// (past the far edge of an odd extent) adding 0, over the count of its possible children (2 per
// coarsened axis): a coarse cell half outside the lattice has half the sink, as its restricted
// residual (mg_rscale), so a constant keeps its balance on every level.  Every array
// colour-split (a_f, fixed of the fine level; a_c, den_c of the coarse one).
GPUSIM_HD void mg_coarsen_voxel(i64 t, const MgGeom& g, float K, float den0, const float* a_f,
                                const u8* fixed, float* a_c, float* den_c) {
    const Idx4 i = unflatten(t, g.Zc, g.Yc, g.Xc);
    const i32 x = i.x, y = i.y, z = i.z, r = i.r;
    float acc = 0.0f, cnt = 0.0f;
    bool first = true;
    for (i32 dz = 0; dz < (g.Zf > 1 ? 2 : 1); ++dz)
        for (i32 dy = 0; dy < (g.Yf > 1 ? 2 : 1); ++dy)
            for (i32 dx = 0; dx < (g.Xf > 1 ? 2 : 1); ++dx) {
                const i32 zf = 2 * z + dz, yf = 2 * y + dy, xf = 2 * x + dx;
                const bool in = (g.Zf > 1 ? zf < g.Zf : true) && yf < g.Yf && xf < g.Xf;
                float v = 0.0f;
                if (in) {
                    const i64 f = mg_split(g, r, g.Zf > 1 ? zf : 0, yf, xf, true);
                    v = (fixed && fixed[f]) ? K : a_f[f];
                }
                if (first) { acc = v; cnt = 1.0f; first = false; }
                else { acc = acc + v; cnt = cnt + 1.0f; }
            }
    const float ac = acc / cnt;
    const i64 k = mg_split(g, r, z, y, x);
    a_c[k] = ac;
    den_c[k] = den0 + ac;
}

// Residual of voxel v of a level (0 at fixed voxels), in float64 and rounded once to float32:
// nb = sum of the neighbours (x-, x+, y-, y+, z-, z+; out-of-domain ones bv or the voxel itself),
// t = dh nb; t = t + s; u = den c; r = float32(t - u), every value widened to float64 first.  In
// float32 the difference of the two near-equal terms would lose the residual of a weakly
// absorbing field (no flux, a small sink) to rounding, and the coarse levels would amplify that
// error by 1/a.  c, res: natural; s, den, fixed (or null): colour-split.
GPUSIM_HD void mg_residual_voxel(i64 v, const FieldGeom& g, const float* c, const float* s,
                                 const float* den, const u8* fixed, const u8* active, float* res) {
    const Idx4 i = unflatten(v, g.Z, g.Y, g.X);
    if (!active[i.r]) return;
    const i64 k = split_index(g, i.r, i.z, i.y, i.x);
    if (fixed && fixed[k]) { res[v] = 0.0f; return; }
    const double own = (double)c[v];
    double t = (double)g.dh * sor_neighbours<double>(g, c, v, i.z, i.y, i.x, own);
    t = t + (double)s[k];
    const double u = (double)den[k] * own;
    res[v] = (float)(t - u);
}

// The scale of the restriction along an axis of fine length n: 1/2 where the axis is coarsened
// (a constant restricts to itself inside, to half at the far edge of an odd n, where the coarse
// cell is half outside, as its sink, mg_coarsen_voxel), 1 on an axis of length 1.
GPUSIM_HD float mg_rscale(i32 n) { return n > 1 ? 0.5f : 1.0f; }

// Restriction to coarse voxel t: axis by axis x, y, z, each sum_k w_k v_k in the order k = 0..3
// (a value outside the fine lattice is 0) times mg_rscale; also zeroes the coarse c.  res, c_c:
// natural; s_c: colour-split.
GPUSIM_HD void mg_restrict_voxel(i64 t, const MgGeom& g, const float* res, float* s_c, float* c_c,
                                 const u8* active) {
    const Idx4 i = unflatten(t, g.Zc, g.Yc, g.Xc);
    const i32 X = i.x, Y = i.y, Zi = i.z, r = i.r;
    if (!active[r]) return;
    const bool three_d = g.three_d != 0;
    const float hx = mg_rscale(g.Xf), hy = mg_rscale(g.Yf);
    float accz = 0.0f;
    for (i32 kz = 0; kz < (three_d ? 4 : 1); ++kz) {
        const i32 zf = three_d ? 2 * Zi - 1 + kz : 0;
        float accy = 0.0f;
        if (zf >= 0 && zf < g.Zf) {
            for (i32 ky = 0; ky < 4; ++ky) {
                const i32 yf = 2 * Y - 1 + ky;
                float accx = 0.0f;
                if (yf >= 0 && yf < g.Yf) {
                    for (i32 kx = 0; kx < 4; ++kx) {
                        const i32 xf = 2 * X - 1 + kx;
                        const float v = (xf >= 0 && xf < g.Xf) ? res[mg_at(r, zf, yf, xf, g.Zf, g.Yf, g.Xf)] : 0.0f;
                        const float term = mg_rweight(X, kx, g.Xf) * v;
                        accx = kx == 0 ? term : accx + term;
                    }
                    accx = accx * hx;
                }
                const float term = mg_rweight(Y, ky, g.Yf) * accx;
                accy = ky == 0 ? term : accy + term;
            }
            accy = accy * hy;
        }
        if (!three_d) { accz = accy; break; }
        const float term = mg_rweight(Zi, kz, g.Zf) * accy;
        accz = kz == 0 ? term : accz + term;
    }
    if (three_d) accz = accz * mg_rscale(g.Zf);
    s_c[mg_split(g, r, Zi, Y, X)] = accz;
    c_c[t] = 0.0f;
}

// Prolongation-add at fine voxel v (not fixed): axis by axis z, y, x, each wlo v[lo] + whi v[hi]
// (v[J] exactly at an edge), then c = e + c.  fixed (or null): colour-split.
GPUSIM_HD float mg_interp_z(const MgGeom& g, const float* cc, i32 r, i32 z, i32 jy, i32 jx) {
    if (!g.three_d) return cc[mg_at(r, 0, jy, jx, 1, g.Yc, g.Xc)];
    const MgAxis a = mg_axis(z, g.Zf);
    const float lo = cc[mg_at(r, a.lo, jy, jx, g.Zc, g.Yc, g.Xc)];
    if (a.edge) return lo;
    return a.wlo * lo + a.whi * cc[mg_at(r, a.hi, jy, jx, g.Zc, g.Yc, g.Xc)];
}

GPUSIM_HD float mg_interp_zy(const MgGeom& g, const float* cc, i32 r, i32 z, i32 y, i32 jx) {
    const MgAxis a = mg_axis(y, g.Yf);
    const float lo = mg_interp_z(g, cc, r, z, a.lo, jx);
    if (a.edge) return lo;
    return a.wlo * lo + a.whi * mg_interp_z(g, cc, r, z, a.hi, jx);
}

GPUSIM_HD void mg_prolong_voxel(i64 v, const MgGeom& g, const float* cc, float* c,
                                const u8* fixed, const u8* active) {
    const Idx4 i = unflatten(v, g.Zf, g.Yf, g.Xf);
    const i32 x = i.x, y = i.y, z = i.z, r = i.r;
    if (!active[r] || (fixed && fixed[mg_split(g, r, z, y, x, true)])) return;
    const MgAxis a = mg_axis(x, g.Xf);
    float e = mg_interp_zy(g, cc, r, z, y, a.lo);
    if (!a.edge) e = a.wlo * e + a.whi * mg_interp_zy(g, cc, r, z, y, a.hi);
    c[v] = e + c[v];
}

// The coarsest level (one voxel per replicate r): its equation solved exactly, c = s / a with
// the neumann boundary (every neighbour is the voxel itself; 0 where a is 0: no constant mode is
// then corrected), c = s / den with the dirichlet one (the neighbours of a correction are 0).
// Every array has one entry per replicate (the colour-split index of a one-voxel level is r).
GPUSIM_HD void mg_coarsest_voxel(i32 r, i32 dirichlet, const float* s, const float* a,
                                 const float* den, float* c, const u8* active) {
    if (!active[r]) return;
    if (dirichlet) c[r] = s[r] / den[r];
    else c[r] = a[r] != 0.0f ? s[r] / a[r] : 0.0f;
}

}  // namespace gpusim

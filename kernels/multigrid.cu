// multigrid.cu -- the transfers of the multigrid V-cycle, one launch per level for all replicates.
// NumPy twin: gpusim.model.multigrid.MultigridSolver (arithmetic contract in its docstring);
// per-voxel logic in multigrid_logic.cuh; the smoother is fields.cu's fields_sor_colour (omega 1).
//
// Arrays (device, C order): a level's c, res float32 (R, Z, Y, X) and its s, den, a float32
// colour-split (2 R Z Y ((X + 1) / 2) entries, fields_logic.cuh split_index); the finest level's
// fixed uint8 colour-split, or null; active uint8 (R) (1 = still cycling); maxchg uint32 (R) (float32 bits).
// Units: as the field; a, den 1/min; s unit/min.  RNG: none.
// A solve (gpusim.backends.cupy_backend._multigrid_solve): the problem posed (fields.cu),
// mg_coarsen per coarse level; then per cycle the V-cycle (down to one voxel, solved by
// mg_coarsest) and fields_after_sweep.  The cycle's change max |c_after - c_before| is measured
// by the finest level's smoothing: its passes before the descent save c_before (colour-split),
// those after the ascent measure the change from it (fields_logic.cuh sor_voxel save / base).
#include "multigrid_logic.cuh"

using namespace gpusim;

extern "C" __global__ void mg_coarsen(int R, int Zf, int Yf, int Xf, int Zc, int Yc, int Xc,
                                      float K, float den0, const float* a_f,
                                      const unsigned char* fixed, float* a_c, float* den_c) {
    MgGeom g{R, Zf, Yf, Xf, Zc, Yc, Xc, 0};  // the children: every axis with Zf, Yf, Xf > 1
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < (long long)R * Zc * Yc * Xc) mg_coarsen_voxel(t, g, K, den0, a_f, fixed, a_c, den_c);
}

extern "C" __global__ void mg_residual(int R, int Z, int Y, int X, int three_d, int dirichlet,
                                       float bv, float dh, const float* c, const float* s,
                                       const float* den, const unsigned char* fixed,
                                       const unsigned char* active, float* res) {
    FieldGeom g{R, Z, Y, X, dirichlet, bv, dh, 1.0f, 0, 0.0f, three_d};
    long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (v < (long long)R * Z * Y * X) mg_residual_voxel(v, g, c, s, den, fixed, active, res);
}

extern "C" __global__ void mg_restrict(int R, int Zf, int Yf, int Xf, int Zc, int Yc, int Xc,
                                       int three_d, const float* res, float* s_c, float* c_c,
                                       const unsigned char* active) {
    MgGeom g{R, Zf, Yf, Xf, Zc, Yc, Xc, three_d};
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < (long long)R * Zc * Yc * Xc) mg_restrict_voxel(t, g, res, s_c, c_c, active);
}

extern "C" __global__ void mg_prolong(int R, int Zf, int Yf, int Xf, int Zc, int Yc, int Xc,
                                      int three_d, const float* c_c, float* c,
                                      const unsigned char* fixed, const unsigned char* active) {
    MgGeom g{R, Zf, Yf, Xf, Zc, Yc, Xc, three_d};
    long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (v < (long long)R * Zf * Yf * Xf) mg_prolong_voxel(v, g, c_c, c, fixed, active);
}

extern "C" __global__ void mg_coarsest(int R, int dirichlet, const float* s, const float* a,
                                       const float* den, float* c, const unsigned char* active) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < R) mg_coarsest_voxel(r, dirichlet, s, a, den, c, active);
}

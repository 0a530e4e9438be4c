// fields.cu -- red-black SOR field solver, one launch per colour for all replicates.
// NumPy twin: gpusim.model.fields.FieldSolver (arithmetic contract in its docstring); per-voxel
// logic in fields_logic.cuh.
//
// Arrays (device, C order): c, a, s float32 (R, Z, Y, X); fixed uint8 (R, Z, Y, X) or null; the
// solver's problem, colour-split (2 * R * Z * Y * ((X + 1) / 2) entries, fields_logic.cuh
// split_index): den, s_split, a_split (or null; multigrid solves only) float32 and fixed_split
// uint8 (or null), written once per solve by fields_prepare (from natural a, s, fixed) or by
// field_coeffs.cu (from the cells) and read by fields_sor_colour; cmax uint32 (R): max |c| at
// the start (float32 bits); active uint8 (R) (1 = still sweeping); iters int32 (R); maxchg
// uint32 (R) (float32 bits); dprev, rprev float32 (R): the stopping rule's max change and ratio
// of the previous sweep.
// Units: as the field (mmHg, mM, 1); a, den 1/min; s unit/min.  RNG: none.
// floor_on / floor: projected SOR (FieldSolver(floor=...)): new values below floor are raised
// to it; floor_on = 0 is plain SOR.  save / base (or null), colour-split float32: a multigrid
// cycle's change, measured by its finest level's smoothing (fields_logic.cuh sor_voxel).
// A solve: the problem posed once (fields_prepare or field_coeffs_kernel), then per sweep
// fields_sor_colour(0), fields_sor_colour(1), fields_after_sweep; the host polls `active` every
// few sweeps (a frozen replicate is a no-op, so extra sweeps never change a result).
#include "fields_logic.cuh"

using namespace gpusim;

extern "C" __global__ void fields_prepare(int R, int Z, int Y, int X, float den0, const float* a,
                                          const float* s, const unsigned char* fixed,
                                          float fixed_value, float* c, float* den,
                                          float* s_split, float* a_split,
                                          unsigned char* fixed_split, unsigned int* cmax) {
    FieldGeom g{R, Z, Y, X, 0, 0.0f, 0.0f, 0.0f, 0, 0.0f, 0};  // the layout only
    long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (v < (long long)R * Z * Y * X)
        sor_prepare(v, g, den0, a, s, fixed, fixed_value, c, den, s_split, a_split, fixed_split, cmax);
}

extern "C" __global__ void fields_sor_colour(int colour, int R, int Z, int Y, int X, int three_d, int dirichlet,
                                             float bv, float dh, float omega, int floor_on,
                                             float floor, float* c, const float* s,
                                             const float* den, const unsigned char* fixed,
                                             const unsigned char* active, unsigned int* maxchg,
                                             float* save, const float* base) {
    FieldGeom g{R, Z, Y, X, dirichlet, bv, dh, omega, floor_on, floor, three_d};
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < sor_threads(g)) sor_voxel(t, colour, g, c, s, den, fixed, active, maxchg, save, base);
}

extern "C" __global__ void fields_after_sweep(int R, float tol, float rho_min, float scale,
                                              int max_iter, unsigned char* active, int* iters,
                                              unsigned int* maxchg, float* dprev, float* rprev,
                                              const unsigned int* cmax) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < R) sor_after_sweep(r, tol, rho_min, scale, max_iter, active, iters, maxchg, dprev, rprev,
                               cmax);
}

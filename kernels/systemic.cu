// systemic.cu -- intravenous extravasation kernels (vessel entry of circulating CAR-T cells), all
// replicates in one launch each.  NumPy twin: the vessel part of
// gpusim.model.systemic.systemic_phase and systemic._append.  Shapes (lattice (R, Z, Y, X), table
// (R, C)), dtypes, units, RNG stream (EXTRAVASATION) and order: systemic_logic.cuh.
// Launch order: car_t_move_occ (car_t_move.cu; occ filled with -1), extravasation_weights_kernel
// (R*V; wsum zeroed), host: scale[r] = float32(lam[r] / wsum[r]) in float64 (0 where wsum = 0),
// extravasation_decide_kernel (R*V); the entrants are appended by array code
// (gpusim.model.systemic.append_entrants).
#include "systemic_logic.cuh"

using namespace gpusim;

extern "C" __global__ void extravasation_weights_kernel(long long n, long long V, float weight256,
                                                        const unsigned char* kind,
                                                        const float* chem, const int* occ,
                                                        int* w, unsigned long long* wsum) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < n) extravasation_weights(g, weight256, kind, chem, occ, w, wsum, V);
}

extern "C" __global__ void extravasation_decide_kernel(int R, int Z, int Y, int X, unsigned int seed,
                                                       unsigned int step, const unsigned int* reps,
                                                       const float* scale, const int* w,
                                                       unsigned char* enter,
                                                       unsigned long long* counts) {
    Geom geo{R, Z, Y, X};
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * geo_nvox(geo)) extravasation_decide(g, geo, seed, step, reps, scale, w, enter, counts);
}

// entry.cu -- regional face entry of CAR-T cells (while the CSF / cavity pool holds cells),
// all replicates in one launch each, one thread per replicate x face voxel (R * F).  NumPy twin:
// gpusim.model.systemic.regional_entry.  Shapes, dtypes, units and RNG: entry_logic.cuh.
#include "entry_logic.cuh"

using namespace gpusim;

extern "C" __global__ void regional_free_kernel(int R, int F, long long V, const int* face,
                                                const int* occ, unsigned long long* nfree) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * F) regional_free(g, F, V, face, occ, nfree);
}

extern "C" __global__ void regional_decide_kernel(int R, int F, long long V, unsigned int seed,
                                                  unsigned int step, const unsigned int* reps,
                                                  const double* lam, const int* face, const int* occ,
                                                  const unsigned long long* nfree,
                                                  unsigned char* enter,
                                                  unsigned long long* counts) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * F) regional_decide(g, F, V, seed, step, reps, lam, face, occ, nfree, enter, counts);
}

// entry.cu — intratumoral placement and regional face entry of CAR-T cells (dose / infusion steps
// of the systemic phase), all replicates in one launch each.  NumPy twin:
// gpusim.model.systemic._inject and _regional_entry.  Shapes (lattice (R, Z, Y, X), table (R, C)),
// dtypes, units, RNG stream (EXTRAVASATION, draws 1 and 2) and launch order: entry_logic.cuh,
// also compiled by the host harness tests/harness/entry_harness.cpp.  The entrants marked in
// `enter` are appended by extravasation_append_kernel (systemic.cu).
//
// inject_select_kernel: one thread per replicate (R), serial over the shells nearest to the
// sites until n cells are placed (dose steps only).  regional_free_kernel and
// regional_decide_kernel: one thread per replicate × face voxel (R * F).
#include "entry_logic.cuh"

using namespace gpusim;

extern "C" __global__ void inject_select_kernel(int R, long long V, unsigned int seed,
                                                unsigned int step, const unsigned int* reps,
                                                long long n, int S, const int* order,
                                                const int* shell, const int* occ,
                                                unsigned int* wbuf, unsigned char* enter,
                                                unsigned long long* counts) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    counts[r] = (unsigned long long)inject_select(r, V, seed, step, reps, n, S, order, shell, occ,
                                                  wbuf, enter);
}

extern "C" __global__ void regional_free_kernel(int R, int F, long long V, const int* face,
                                                const int* occ, unsigned long long* nfree) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * F) regional_free(g, F, V, face, occ, nfree);
}

extern "C" __global__ void regional_decide_kernel(int R, int F, long long V, unsigned int seed,
                                                  unsigned int step, const unsigned int* reps,
                                                  double lam, const int* face, const int* occ,
                                                  const unsigned long long* nfree,
                                                  unsigned char* enter,
                                                  unsigned long long* counts) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * F) regional_decide(g, F, V, seed, step, reps, lam, face, occ, nfree, enter, counts);
}

// tumour.cu -- tissue-cell phase kernels, all replicates in one launch each.
// NumPy twin: gpusim.model.tumour.tumour_phase.  Logic, shapes, dtypes, units and RNG streams:
// tumour_logic.cuh.
// antigen_a_base, antigen_b_base, pdl1 may be null (state without them).
// TumourK is passed as a device pointer to its bytes (struct TumourK of interface.cuh, declared in
// gpusim/backends/interface.py).
// Launch order per step: tumour_decide (kind_in -> kind_out, claims), tumour_births (claims ->
// daughters in kind_out); kind_out becomes the state's kind.
#include "tumour_logic.cuh"

using namespace gpusim;

extern "C" __global__ void tumour_decide_kernel(int R, int Z, int Y, int X, const TumourK* pp,
                                                unsigned int seed, unsigned int step,
                                                const unsigned int* reps,
                                                const unsigned char* kind_in,
                                                unsigned char* kind_out, unsigned char* antigen_a,
                                                unsigned char* antigen_b,
                                                unsigned char* antigen_a_base,
                                                unsigned char* antigen_b_base, float* pdl1,
                                                const float* ecm,
                                                const float* o2, const float* glucose,
                                                unsigned long long* claims,
                                                unsigned long long* counts) {
    Geom geo{R, Z, Y, X};
    const TumourK p = *pp;
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * geo_nvox(geo))
        tumour_decide(g, geo, p, seed, step, reps, kind_in, kind_out, antigen_a, antigen_b,
                      antigen_a_base, antigen_b_base, pdl1, ecm,
                      o2, glucose, claims, counts);
}

extern "C" __global__ void tumour_births_kernel(int R, int Z, int Y, int X, const TumourK* pp,
                                                unsigned int seed, unsigned int step,
                                                const unsigned int* reps, unsigned char* kind_out,
                                                unsigned char* antigen_a, unsigned char* antigen_b,
                                                unsigned char* antigen_a_base,
                                                unsigned char* antigen_b_base, float* pdl1,
                                                unsigned long long* claims,
                                                unsigned long long* counts) {
    Geom geo{R, Z, Y, X};
    const TumourK p = *pp;
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * geo_nvox(geo))
        tumour_births(g, geo, p, seed, step, reps, kind_out, antigen_a, antigen_b, antigen_a_base,
                      antigen_b_base, pdl1, claims, counts);
}

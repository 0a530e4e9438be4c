// microenv.cu -- microenvironment phase kernels (PD-L1, antigen recovery, ECM degradation), all
// replicates in one launch each.  NumPy twin: gpusim.model.microenv.microenv_phase.  Logic,
// shapes (lattice (R, Z, Y, X), agent table (R, C)), dtypes, units and RNG stream
// (TUMOUR_EVENT, draw 1): microenv_logic.cuh.  MicroK is a device pointer to 10 float32 + 1 int32
// (drug_on, set by the host each step: d_drug > 0 and step >= drug_start_step).
// Launch order per step: microenv_agents_kernel (R*C threads), microenv_voxel_kernel (R*V), then
// microenv_fap_kernel (R*V) when a FAP-targeting CAR is on.
#include "microenv_logic.cuh"

using namespace gpusim;

extern "C" __global__ void microenv_agents_kernel(int R, int Z, int Y, int X, int C,
                                                  const MicroK* pp, const int* t_count,
                                                  const unsigned char* t_state, const int* t_pos,
                                                  unsigned int* ndeg) {
    Geom geo{R, Z, Y, X};
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (long long)R * C) microenv_agents(i, geo, C, *pp, t_count, t_state, t_pos, ndeg);
}

extern "C" __global__ void microenv_voxel_kernel(int R, int Z, int Y, int X, const MicroK* pp,
                                                 unsigned int seed, unsigned int step,
                                                 const unsigned int* reps,
                                                 unsigned char* kind, float* pdl1,
                                                 const float* ifng, const float* o2,
                                                 const float* il12, const float* tgfb,
                                                 unsigned char* antigen_a,
                                                 unsigned char* antigen_b,
                                                 const unsigned char* antigen_a_base,
                                                 const unsigned char* antigen_b_base,
                                                 const unsigned int* ndeg, float* ecm,
                                                 unsigned long long* counts) {
    Geom geo{R, Z, Y, X};
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * geo_nvox(geo))
        microenv_voxel(g, geo, *pp, seed, step, reps, kind, pdl1, ifng, o2, il12, tgfb, antigen_a,
                       antigen_b, antigen_a_base, antigen_b_base, ndeg, ecm, counts);
}

extern "C" __global__ void microenv_fap_kernel(int R, int Z, int Y, int X, const MicroK* pp,
                                               unsigned int seed, unsigned int step,
                                               const unsigned int* reps, unsigned char* kind,
                                               const unsigned int* ndeg,
                                               unsigned long long* counts) {
    Geom geo{R, Z, Y, X};
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * geo_nvox(geo)) microenv_fap(g, geo, *pp, seed, step, reps, kind, ndeg, counts);
}

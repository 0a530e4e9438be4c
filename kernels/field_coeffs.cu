// field_coeffs.cu -- per-voxel sink/source coefficients of the fields, all replicates in one
// launch.  NumPy twin: the coefficient assembly in gpusim.model.environment.FieldsPhase.solve.
// Shapes, dtypes, units and order: field_coeffs_logic.cuh.  No random numbers.  FieldCoefK is a device pointer
// to the struct (4 x 7 + 19 float32, 1 int32), filled once per scenario on the host from
// FieldsPhase's attributes.
// Launch order per step: field_agent_map_kernel (R*C threads, amap zeroed first) once; then for
// each field in the phase order (oxygen, glucose, chemokine, TGF-beta, IFN-gamma, IL-12)
// field_coeffs_kernel(f) (R*V threads) right before that field's solve (fields.cu), so TGF-beta sees
// the oxygen just solved and the chemokine the previous step's IFN-gamma.  c_old / ifng / o2 may be
// null where the field f does not read them.
#include "field_coeffs_logic.cuh"

using namespace gpusim;

extern "C" __global__ void field_agent_map_kernel(int R, int Z, int Y, int X, int C,
                                                  const int* t_count, const int* t_pos,
                                                  const unsigned char* t_eng, const short* t_act,
                                                  const unsigned char* t_state,
                                                  unsigned int* amap) {
    Geom geo{R, Z, Y, X};
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (long long)R * C) field_agent_map(i, geo, C, t_count, t_pos, t_eng, t_act, t_state, amap);
}

extern "C" __global__ void field_coeffs_kernel(long long n, int f, const FieldCoefK* pp,
                                               const unsigned char* kind,
                                               const unsigned int* amap, const float* c_old,
                                               const float* ifng, const float* o2, float* a,
                                               float* s) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < n) field_coeffs(g, f, *pp, kind, amap, c_old, ifng, o2, a, s);
}

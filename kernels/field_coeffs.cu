// field_coeffs.cu -- per-voxel sink/source coefficients of the fields, all replicates in one
// launch.  NumPy twin: the coefficient assembly in gpusim.model.environment.FieldsPhase.solve.
// Shapes, dtypes, units and order: field_coeffs_logic.cuh.  No random numbers.  FieldCoefK is a device pointer
// to the struct (4 x 7 + 19 float32, 1 int32), filled once per scenario on the host from
// FieldsPhase's attributes.
// Launch order per step: field_agent_map_kernel (R*C threads, amap zeroed first) once; then for
// each field in the phase order (oxygen, glucose, chemokine, TGF-beta, IFN-gamma, IL-12)
// field_coeffs_kernel(f) (R*V threads) right before that field's solve (fields.cu: it poses the
// solve's problem, so the solve starts at its sweeps), so TGF-beta sees the oxygen just solved and
// the chemokine the previous step's IFN-gamma.  ifng / o2 may be null where the field f does not
// read them; fixed_split null where nothing is held (every field but oxygen and glucose).
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

extern "C" __global__ void field_coeffs_kernel(int R, int Z, int Y, int X, int f, const FieldCoefK* pp,
                                               const unsigned char* kind,
                                               const unsigned int* amap, float* c,
                                               const float* ifng, const float* o2, float den0,
                                               float fixed_value, float* den, float* s_split,
                                               float* a_split, unsigned char* fixed_split,
                                               unsigned int* cmax) {
    FieldGeom geo{R, Z, Y, X, 0, 0.0f, 0.0f, 0.0f, 0, 0.0f, 0};  // the layout only
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g < (long long)R * Z * Y * X)
        field_coeffs(g, f, *pp, geo, kind, amap, c, ifng, o2, den0, fixed_value, den, s_split,
                     a_split, fixed_split, cmax);
}

// car_t_move.cu -- CAR-T migration kernels, every replicate's agents in one launch each.
// NumPy twin: gpusim.model.car_t._migrate.  Logic, shapes, dtypes, RNG stream: car_t_move_logic.cuh
//.
// Launches: fill occ with -1, car_t_move_occ; then per sub-move m: car_t_move_decide,
// car_t_move_apply, car_t_move_reset.  One thread per agent-table entry (R * C).
#include "car_t_move_logic.cuh"

using namespace gpusim;

#define AGENT_INDEX                                                     \
    AgentGeom ag{{R, Z, Y, X}, C};                                      \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;     \
    if (i >= (long long)R * C) return;

extern "C" __global__ void car_t_move_occ(int R, int Z, int Y, int X, int C, const int* t_count,
                                          const int* t_pos, int* occ) {
    AGENT_INDEX
    move_occ(i, ag, t_count, t_pos, occ);
}

extern "C" __global__ void car_t_move_decide(int R, int Z, int Y, int X, int C, int m,
                                             const MoveK* pp, unsigned int seed, unsigned int step,
                                             const unsigned int* reps, const int* t_count,
                                             const int* t_pos, const signed char* t_dir,
                                             const unsigned char* kind, const float* ecm,
                                             const float* chem, const int* occ,
                                             unsigned long long* claims, int* tgt,
                                             signed char* dsel) {
    AGENT_INDEX
    const MoveK p = *pp;
    move_decide(i, m, ag, p, seed, step, reps, t_count, t_pos, t_dir, kind, ecm, chem, occ, claims,
                tgt, dsel);
}

extern "C" __global__ void car_t_move_apply(int R, int Z, int Y, int X, int C, const int* t_count,
                                            int* t_pos, signed char* t_dir, int* occ,
                                            const unsigned long long* claims, const int* tgt,
                                            const signed char* dsel) {
    AGENT_INDEX
    move_apply(i, ag, t_count, t_pos, t_dir, occ, claims, tgt, dsel);
}

extern "C" __global__ void car_t_move_reset(int R, int Z, int Y, int X, int C, const int* t_count,
                                            unsigned long long* claims, int* tgt) {
    AGENT_INDEX
    move_reset(i, ag, t_count, claims, tgt);
}

// car_t.cu -- CAR-T phase kernels before migration (engagement, exhaustion, fate, compaction), all
// replicates in one launch each.  NumPy twin: gpusim.model.car_t (_engage, _exhaustion, _fate,
// scatter); migration is car_t_move.cu.  Logic, shapes, dtypes, units and RNG streams:
// car_t_logic.cuh.
// Agent table (R, C) int32/uint8/... as in car_t_logic.cuh, passed as nine pointers; CarTK as a
// device pointer to the struct (17 + 6 + 3 float32, then 4 int32; step-dependent members filled
// by the host each step from CarTParams.pdl1_terms / p_division_at).  rec: uint64 (P, 65536), one
// recognition table per product (CarTParams.rec_tables).
// Launch order per step (per-entry kernels over R*C threads):
//   car_t_occ (car_t_move.cu's move_occ, occ filled with -1), car_t_engage_claim,
//   car_t_engage_resolve, car_t_claim_reset, car_t_exhaustion, car_t_fate_claim,
//   car_t_fate_resolve, car_t_claim_reset, host capacity check and destinations (compaction_slots), car_t_compact (table -> second
//   table), then the migration kernels.
#include "car_t_logic.cuh"

using namespace gpusim;

#define GPUSIM_TABLE_ARGS(n)                                                                    \
    unsigned char *n##_state, int *n##_pos, float *n##_exh, unsigned char *n##_div,            \
        int *n##_kills, signed char *n##_dir, short *n##_act, unsigned char *n##_eng,          \
        unsigned char *n##_prod
#define GPUSIM_TABLE(n)                                                                         \
    AgentTable{n##_state, n##_pos, n##_exh, n##_div, n##_kills, n##_dir, n##_act, n##_eng, n##_prod}
#define GPUSIM_ENTRY                                                                            \
    Geom geo{R, Z, Y, X};                                                                       \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                            \
    if (i >= (long long)R * C) return;

extern "C" __global__ void car_t_engage_claim(int R, int Z, int Y, int X, int C, const CarTK* pp,
                                              unsigned int seed, unsigned int step,
                                              const unsigned int* reps, const int* t_count,
                                              GPUSIM_TABLE_ARGS(t), const unsigned char* kind,
                                              const unsigned char* antigen_a,
                                              const unsigned char* antigen_b, const float* pdl1,
                                              const unsigned long long* rec,
                                              unsigned long long* claims, int* tgt,
                                              unsigned char* stim, unsigned char* killed,
                                              float* pd_seen, unsigned long long* counts) {
    GPUSIM_ENTRY
    engage_claim(i, geo, C, *pp, seed, step, reps, t_count, GPUSIM_TABLE(t), kind, antigen_a,
                 antigen_b, pdl1, rec, claims, tgt, stim, killed, pd_seen, counts);
}

extern "C" __global__ void car_t_engage_resolve(int R, int Z, int Y, int X, int C, const CarTK* pp,
                                                unsigned int seed, unsigned int step,
                                                const unsigned int* reps, const int* t_count,
                                                GPUSIM_TABLE_ARGS(t), unsigned char* kind,
                                                unsigned char* antigen_a, unsigned char* antigen_b,
                                                const float* o2, const float* glucose,
                                                const float* tgfb, const float* il12,
                                                const float* pdl1, const unsigned long long* rec,
                                                const unsigned long long* claims, const int* tgt,
                                                unsigned char* stim, unsigned char* killed,
                                                float* pd_seen, unsigned long long* counts) {
    GPUSIM_ENTRY
    engage_resolve(i, geo, C, *pp, seed, step, reps, t_count, GPUSIM_TABLE(t), kind, antigen_a,
                   antigen_b, o2, glucose, tgfb, il12, pdl1, rec, claims, tgt, stim, killed,
                   pd_seen, counts);
}

extern "C" __global__ void car_t_claim_reset(int R, int Z, int Y, int X, int C, const int* t_count,
                                             unsigned long long* claims, const int* tgt) {
    GPUSIM_ENTRY
    claim_reset(i, geo, C, t_count, claims, tgt);
}

extern "C" __global__ void car_t_exhaustion(int R, int Z, int Y, int X, int C, const CarTK* pp,
                                            const int* t_count, GPUSIM_TABLE_ARGS(t),
                                            const float* o2, const float* tgfb, const float* il12,
                                            const unsigned char* stim,
                                            const unsigned char* killed, const float* pd_seen) {
    GPUSIM_ENTRY
    exhaustion(i, geo, C, *pp, t_count, GPUSIM_TABLE(t), o2, tgfb, il12, stim, killed, pd_seen);
}

extern "C" __global__ void car_t_fate_claim(int R, int Z, int Y, int X, int C, const CarTK* pp,
                                            unsigned int seed, unsigned int step,
                                            const unsigned int* reps, const int* t_count,
                                            GPUSIM_TABLE_ARGS(t), const float* o2,
                                            const float* glucose, const float* tgfb,
                                            const float* il12, const float* p_death_r,
                                            const int* occ, unsigned long long* claims, int* tgt,
                                            unsigned char* died, unsigned char* born,
                                            unsigned long long* counts) {
    GPUSIM_ENTRY
    fate_claim(i, geo, C, *pp, seed, step, reps, t_count, GPUSIM_TABLE(t), o2, glucose, tgfb, il12,
               p_death_r, occ, claims, tgt, died, born, counts);
}

extern "C" __global__ void car_t_fate_resolve(int R, int Z, int Y, int X, int C, const int* t_count,
                                              GPUSIM_TABLE_ARGS(t),
                                              const unsigned long long* claims, const int* tgt,
                                              unsigned char* born, unsigned long long* counts) {
    GPUSIM_ENTRY
    fate_resolve(i, geo, C, t_count, GPUSIM_TABLE(t), claims, tgt, born, counts);
}

// One thread per table entry; o pre-filled with the padding values, destinations from
// compaction_slots (exact prefix sums), capacity checked on the host beforehand.
extern "C" __global__ void car_t_compact(int R, int Z, int Y, int X, int C, const CarTK* pp,
                                         const int* t_count, GPUSIM_TABLE_ARGS(t),
                                         GPUSIM_TABLE_ARGS(o), const unsigned char* died,
                                         const unsigned char* born, const int* tgt,
                                         const long long* dst_keep, const long long* dst_born) {
    GPUSIM_ENTRY
    (void)geo;
    compact_entry(i, C, *pp, t_count, GPUSIM_TABLE(t), GPUSIM_TABLE(o), died, born, tgt, dst_keep,
                  dst_born);
}

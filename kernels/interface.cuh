// interface.cuh -- GENERATED from gpusim/backends/interface.py by
// `python -m gpusim.backends.interface`; do not edit (tests/test_device.py keeps it
// current).  State codes, count orders, parameter structs and the prototype of every
// kernel; a .cu definition that disagrees with its prototype does not compile.
#pragma once
#include "common.cuh"

namespace gpusim {

enum KindCode : u8 {
    KIND_EMPTY = 0,
    KIND_TUMOUR = 1,
    KIND_HEALTHY = 2,
    KIND_FIBROBLAST = 3,
    KIND_APOPTOTIC = 4,
    KIND_NECROTIC = 5,
    KIND_VESSEL = 6,
};

enum TStateCode : u8 {
    TSTATE_NONE = 0,
    TSTATE_EFFECTOR = 1,
    TSTATE_EXHAUSTED = 2,
    TSTATE_MEMORY = 3,
};

enum Stream : u32 {
    INIT_TISSUE = 1,
    INIT_SEPTA = 2,
    INIT_PATCHES = 3,
    EXTRAVASATION = 10,
    ENTRY_PRODUCT = 11,
    TUMOUR_EVENT = 20,
    TUMOUR_DIVISION = 21,
    CLEARANCE = 22,
    CAR_T_ENGAGE = 30,
    CAR_T_FATE = 31,
    CAR_T_MOVE = 32,
};

enum TumourCount : u32 {
    TC_APOPTOSIS = 0,
    TC_NECROSIS = 1,
    TC_DIVISIONS = 2,
    TC_ANTIGEN_A_LOSS = 3,
    TC_ANTIGEN_B_LOSS = 4,
    TC_CLEARED = 5,
    TC_VESSEL_COLLAPSE = 6,
    TC_HEALTHY_DISPLACED = 7,
    TC_FIBROBLAST_DISPLACED = 8,
    TUMOUR_NCOUNT = 9,
};

enum CarTCount : u32 {
    CC_KILLS_TUMOUR = 0,
    CC_KILLS_HEALTHY = 1,
    CC_ENGAGEMENTS = 2,
    CC_TROGOCYTOSIS = 3,
    CC_DEATHS = 4,
    CC_BIRTHS = 5,
    CC_MEM_CONVERSIONS = 6,
    CC_MEM_REACTIVATIONS = 7,
    CC_PD1_REINVIGORATIONS = 8,
    CART_NCOUNT = 9,
};

enum MicroCount : u32 {
    MC_ANTIGEN_RECOVERED = 0,
    MC_KILLS_INNATE = 1,
    MC_KILLS_FIBROBLAST = 2,
    MICRO_NCOUNT = 3,
};

enum FieldId : i32 {
    FIELD_O2 = 0,
    FIELD_GLUCOSE = 1,
    FIELD_CHEMOKINE = 2,
    FIELD_TGFB = 3,
    FIELD_IFNG = 4,
    FIELD_IL12 = 5,
};

enum AgentMapBits : u8 {
    AMAP_TCELL = 1,
    AMAP_ENG = 2,
    AMAP_ACT = 4,
};

static constexpr i32 N_KINDS = 7;

struct TumourK {
    float p_apoptosis;
    float p_division_max;
    float p_necrosis_max;
    float p_clear_apoptotic;
    float p_clear_necrotic;
    float p_antigen_loss;
    float o2_full;
    float o2_zero;
    float o2_hypoxic;
    float o2_nec_onset;
    float o2_nec_max;
    float glucose_half;
    float block_density;
    float p_push;
    float push_ecm_max;
    int collapse_neighbours;
    int push_radius;
};

struct CarTK {
    float p_kill;
    float exh_per_kill;
    float inv_tgfb_half;
    float tgfb_half;
    float inv_il12_half;
    float il12_half;
    float kill_boost;
    float hypoxia_factor;
    float glucose_half;
    float exh_tgfb_gain;
    float exh_recovery;
    float exh_hypoxia;
    float o2_hypoxic;
    float daughter_exh;
    float starvation_glucose;
    float p_mem;
    float p_react;
    float inv_act;
    float g5_div;
    float g5_surv;
    float g5_mem;
    float revive_exh;
    float inhib;
    float exh_pd;
    float p_div_step;
    float p_revive;
    int dnTGFbRII;
    int tgfb_exh_on;
    int trog256;
    int activation_steps;
    int max_per_voxel;
};

struct MoveK {
    float p_move;
    float p_persist;
    float p_chemotaxis;
    float one_minus_perm;
    float crowding;
    float one_minus_slow;
    int max_per_voxel;
};

struct MicroK {
    float r_ifng;
    float r_hyp;
    float r_dec;
    float ifng_half;
    float o2_hypoxic;
    float p_recover;
    float d_car;
    float d_drug;
    float p_innate;
    float il12_half;
    float p_fap;
    float r_dep;
    float caf_level;
    float r_tgf_dep;
    float caf_half;
    int drug_on;
};

struct FieldCoefK {
    float o2_sink[7];
    float glucose_sink[7];
    float tgfb_src[7];
    float o2_src[7];
    float o2_t;
    float glucose_t;
    float chem_sec;
    float chem_base;
    float chem_boost;
    float ifng_half;
    float tgfb_base;
    float tgfb_hyp_src;
    float o2_hypoxic;
    float trap_uptake;
    float ifng_base;
    float ifng_sec;
    float il12_base;
    float il12_sec;
    float inv_dt;
    int trap;
};

struct AgentTable {
    unsigned char* state;
    int* pos;
    float* exh;
    unsigned char* div;
    int* kills;
    signed char* dir;
    short* act;
    unsigned char* eng;
    unsigned char* prod;
};

}  // namespace gpusim

// fields.cu
extern "C" __global__ void fields_prepare(int R, int Z, int Y, int X, float den0, const float* a, const float* s, const unsigned char* fixed, float fixed_value, float* c, float* den, float* s_split, float* a_split, unsigned char* fixed_split, unsigned int* cmax);
extern "C" __global__ void fields_sor_colour(int colour, int R, int Z, int Y, int X, int three_d, int dirichlet, float bv, float dh, float omega, int floor_on, float floor, float* c, const float* s, const float* den, const unsigned char* fixed, const unsigned char* active, unsigned int* maxchg, float* save, const float* base);
extern "C" __global__ void fields_after_sweep(int R, float tol, float rho_min, float scale, int max_iter, unsigned char* active, int* iters, unsigned int* maxchg, float* dprev, float* rprev, const unsigned int* cmax);

// multigrid.cu
extern "C" __global__ void mg_coarsen(int R, int Zf, int Yf, int Xf, int Zc, int Yc, int Xc, float K, float den0, const float* a_f, const unsigned char* fixed, float* a_c, float* den_c);
extern "C" __global__ void mg_residual(int R, int Z, int Y, int X, int three_d, int dirichlet, float bv, float dh, const float* c, const float* s, const float* den, const unsigned char* fixed, const unsigned char* active, float* res);
extern "C" __global__ void mg_restrict(int R, int Zf, int Yf, int Xf, int Zc, int Yc, int Xc, int three_d, const float* res, float* s_c, float* c_c, const unsigned char* active);
extern "C" __global__ void mg_prolong(int R, int Zf, int Yf, int Xf, int Zc, int Yc, int Xc, int three_d, const float* c_c, float* c, const unsigned char* fixed, const unsigned char* active);
extern "C" __global__ void mg_coarsest(int R, int dirichlet, const float* s, const float* a, const float* den, float* c, const unsigned char* active);

// field_coeffs.cu
extern "C" __global__ void field_agent_map_kernel(int R, int Z, int Y, int X, int C, const int* t_count, const int* t_pos, const unsigned char* t_eng, const short* t_act, const unsigned char* t_state, unsigned int* amap);
extern "C" __global__ void field_coeffs_kernel(int R, int Z, int Y, int X, int f, const gpusim::FieldCoefK* pp, const unsigned char* kind, const unsigned int* amap, float* c, const float* ifng, const float* o2, float den0, float fixed_value, float* den, float* s_split, float* a_split, unsigned char* fixed_split, unsigned int* cmax);

// tumour.cu
extern "C" __global__ void tumour_decide_kernel(int R, int Z, int Y, int X, const gpusim::TumourK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, const unsigned char* kind_in, unsigned char* kind_out, unsigned char* antigen_a, unsigned char* antigen_b, unsigned char* antigen_a_base, unsigned char* antigen_b_base, float* pdl1, const float* ecm, const float* o2, const float* glucose, unsigned long long* claims, unsigned long long* counts);
extern "C" __global__ void tumour_births_kernel(int R, int Z, int Y, int X, const gpusim::TumourK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, unsigned char* kind_out, unsigned char* antigen_a, unsigned char* antigen_b, unsigned char* antigen_a_base, unsigned char* antigen_b_base, float* pdl1, unsigned long long* claims, unsigned long long* counts);

// microenv.cu
extern "C" __global__ void microenv_agents_kernel(int R, int Z, int Y, int X, int C, const gpusim::MicroK* pp, const int* t_count, const unsigned char* t_state, const int* t_pos, unsigned int* ndeg);
extern "C" __global__ void microenv_voxel_kernel(int R, int Z, int Y, int X, const gpusim::MicroK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, unsigned char* kind, float* pdl1, const float* ifng, const float* o2, const float* il12, const float* tgfb, unsigned char* antigen_a, unsigned char* antigen_b, const unsigned char* antigen_a_base, const unsigned char* antigen_b_base, const unsigned int* ndeg, float* ecm, unsigned long long* counts);
extern "C" __global__ void microenv_fap_kernel(int R, int Z, int Y, int X, const gpusim::MicroK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, unsigned char* kind, const unsigned int* ndeg, unsigned long long* counts);

// car_t.cu
extern "C" __global__ void car_t_engage_claim(int R, int Z, int Y, int X, int C, const gpusim::CarTK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, const int* t_count, unsigned char* t_state, int* t_pos, float* t_exh, unsigned char* t_div, int* t_kills, signed char* t_dir, short* t_act, unsigned char* t_eng, unsigned char* t_prod, const unsigned char* kind, const unsigned char* antigen_a, const unsigned char* antigen_b, const float* pdl1, const unsigned long long* rec, unsigned long long* claims, int* tgt, unsigned char* stim, unsigned char* killed, float* pd_seen, unsigned long long* counts);
extern "C" __global__ void car_t_engage_resolve(int R, int Z, int Y, int X, int C, const gpusim::CarTK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, const int* t_count, unsigned char* t_state, int* t_pos, float* t_exh, unsigned char* t_div, int* t_kills, signed char* t_dir, short* t_act, unsigned char* t_eng, unsigned char* t_prod, unsigned char* kind, unsigned char* antigen_a, unsigned char* antigen_b, const float* o2, const float* glucose, const float* tgfb, const float* il12, const float* pdl1, const unsigned long long* rec, const unsigned long long* claims, const int* tgt, unsigned char* stim, unsigned char* killed, float* pd_seen, unsigned long long* counts);
extern "C" __global__ void car_t_claim_reset(int R, int Z, int Y, int X, int C, const int* t_count, unsigned long long* claims, const int* tgt);
extern "C" __global__ void car_t_exhaustion(int R, int Z, int Y, int X, int C, const gpusim::CarTK* pp, const int* t_count, unsigned char* t_state, int* t_pos, float* t_exh, unsigned char* t_div, int* t_kills, signed char* t_dir, short* t_act, unsigned char* t_eng, unsigned char* t_prod, const float* o2, const float* tgfb, const float* il12, const unsigned char* stim, const unsigned char* killed, const float* pd_seen);
extern "C" __global__ void car_t_fate_claim(int R, int Z, int Y, int X, int C, const gpusim::CarTK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, const int* t_count, unsigned char* t_state, int* t_pos, float* t_exh, unsigned char* t_div, int* t_kills, signed char* t_dir, short* t_act, unsigned char* t_eng, unsigned char* t_prod, const float* o2, const float* glucose, const float* tgfb, const float* il12, const float* p_death_r, const int* occ, unsigned long long* claims, int* tgt, unsigned char* died, unsigned char* born, unsigned long long* counts);
extern "C" __global__ void car_t_fate_resolve(int R, int Z, int Y, int X, int C, const int* t_count, unsigned char* t_state, int* t_pos, float* t_exh, unsigned char* t_div, int* t_kills, signed char* t_dir, short* t_act, unsigned char* t_eng, unsigned char* t_prod, const unsigned long long* claims, const int* tgt, unsigned char* born, unsigned long long* counts);
extern "C" __global__ void car_t_compact(int R, int Z, int Y, int X, int C, const gpusim::CarTK* pp, const int* t_count, unsigned char* t_state, int* t_pos, float* t_exh, unsigned char* t_div, int* t_kills, signed char* t_dir, short* t_act, unsigned char* t_eng, unsigned char* t_prod, unsigned char* o_state, int* o_pos, float* o_exh, unsigned char* o_div, int* o_kills, signed char* o_dir, short* o_act, unsigned char* o_eng, unsigned char* o_prod, const unsigned char* died, const unsigned char* born, const int* tgt, const long long* dst_keep, const long long* dst_born);

// car_t_move.cu
extern "C" __global__ void car_t_move_occ(int R, int Z, int Y, int X, int C, const int* t_count, const int* t_pos, int* occ);
extern "C" __global__ void car_t_move_decide(int R, int Z, int Y, int X, int C, int m, const gpusim::MoveK* pp, unsigned int seed, unsigned int step, const unsigned int* reps, const int* t_count, const int* t_pos, const signed char* t_dir, const unsigned char* kind, const float* ecm, const float* chem, const int* occ, unsigned long long* claims, int* tgt, signed char* dsel);
extern "C" __global__ void car_t_move_apply(int R, int Z, int Y, int X, int C, const int* t_count, int* t_pos, signed char* t_dir, int* occ, const unsigned long long* claims, const int* tgt, const signed char* dsel);
extern "C" __global__ void car_t_move_reset(int R, int Z, int Y, int X, int C, const int* t_count, unsigned long long* claims, int* tgt);

// systemic.cu
extern "C" __global__ void extravasation_weights_kernel(long long n, long long V, float weight256, const unsigned char* kind, const float* chem, const int* occ, int* w, unsigned long long* wsum);
extern "C" __global__ void extravasation_decide_kernel(int R, int Z, int Y, int X, unsigned int seed, unsigned int step, const unsigned int* reps, const float* scale, const int* w, unsigned char* enter, unsigned long long* counts);

// entry.cu
extern "C" __global__ void regional_free_kernel(int R, int F, long long V, const int* face, const int* occ, unsigned long long* nfree);
extern "C" __global__ void regional_decide_kernel(int R, int F, long long V, unsigned int seed, unsigned int step, const unsigned int* reps, const double* lam, const int* face, const int* occ, const unsigned long long* nfree, unsigned char* enter, unsigned long long* counts);

// Host harness for kernels/car_t_move_logic.cuh: CAR-T migration the way the CuPy backend
// launches it (occupancy map, then per sub-move: decide, apply, reset over every table entry).
// stdin: i32 R Z Y X C n_sub; u32 seed step; f32 × 5 (MoveK in order); u32 reps[R];
//        i32 t_count[R]; i32 t_pos[R*C]; i8 t_dir[R*C]; u8 kind[R*V]; f32 ecm[R*V], chem[R*V]
// stdout: i32 t_pos[R*C]; i8 t_dir[R*C]
#include "../../kernels/car_t_move_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(6);
    auto su = read_array<u32>(2);
    auto pf = read_array<float>(5);
    AgentGeom ag{{gi[0], gi[1], gi[2], gi[3]}, gi[4]};
    const i32 n_sub = gi[5];
    MoveK p{pf[0], pf[1], pf[2], pf[3], pf[4]};
    const i64 R = ag.g.R, C = ag.C, n = R * geo_nvox(ag.g);
    auto reps = read_array<u32>(R);
    auto count = read_array<i32>(R);
    auto pos = read_array<i32>(R * C);
    auto dir = read_array<i8>(R * C);
    auto kind = read_array<u8>(n);
    auto ecm = read_array<float>(n);
    auto chem = read_array<float>(n);
    std::vector<i32> occ(n, -1), tgt(R * C, -1);
    std::vector<i8> dsel(R * C, 0);
    std::vector<u64> claims(n, NO_CLAIM);
    for (i64 i = 0; i < R * C; ++i) move_occ(i, ag, count.data(), pos.data(), occ.data());
    for (i32 m = 0; m < n_sub; ++m) {
        for (i64 i = 0; i < R * C; ++i)
            move_decide(i, m, ag, p, su[0], su[1], reps.data(), count.data(), pos.data(), dir.data(),
                        kind.data(), ecm.data(), chem.data(), occ.data(), claims.data(), tgt.data(),
                        dsel.data());
        for (i64 i = 0; i < R * C; ++i)
            move_apply(i, ag, count.data(), pos.data(), dir.data(), occ.data(), claims.data(),
                       tgt.data(), dsel.data());
        for (i64 i = 0; i < R * C; ++i) move_reset(i, ag, count.data(), claims.data(), tgt.data());
    }
    for (i64 g = 0; g < n; ++g)
        if (claims[g] != NO_CLAIM) return 4;
    write_array(pos);
    write_array(dir);
    return 0;
}

// Host harness for kernels/car_t_logic.cuh + car_t_move_logic.cuh: one whole CAR-T phase the way
// the CuPy backend launches it (engage_claim, engage_resolve, claim_reset, exhaustion,
// fate_claim, fate_resolve, claim_reset over every table entry; compact_row per replicate into a
// second table; then the migration passes on the new table).  Twin: gpusim.model.car_t.car_t_phase.
// stdin: i32 R Z Y X C n_sub; u32 seed step; CarTK, MoveK (read_struct: the bytes of
//        cupy_backend.car_t_k / move_k); u32 reps[R]; u64 rec[65536];
//        i32 t_count[R]; table (R*C each): u8 state, i32 pos, f32 exh, u8 div, i32 kills, i8 dir,
//        i16 act, u8 eng; lattice (R*V each): u8 kind, antigen_a, antigen_b; f32 o2, glucose,
//        tgfb, il12, pdl1, ecm, chemokine
// stdout: i32 t_count[R]; the table as above; u8 kind, antigen_a, antigen_b;
//         u64 counts[R*CART_NCOUNT] (CarTCount order = cupy_backend.CART_COUNTS)
// exit 5: capacity overflow (CapacityError in the engine)
#include "../../kernels/car_t_logic.cuh"
#include "../../kernels/car_t_move_logic.cuh"
#include <algorithm>

#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(6);
    auto su = read_array<u32>(2);
    const CarTK p = read_struct<CarTK>();
    const MoveK mk = read_struct<MoveK>();
    const Geom geo{gi[0], gi[1], gi[2], gi[3]};
    const i32 C = gi[4], n_sub = gi[5];
    const u32 seed = su[0], step = su[1];
    const i64 R = geo.R, RC = R * C, n = R * geo_nvox(geo);
    auto reps = read_array<u32>(R);
    auto rec = read_array<u64>(65536);
    auto count = read_array<i32>(R);
    HostTable table = HostTable::read(RC);
    auto kind = read_array<u8>(n);
    auto aa = read_array<u8>(n);
    auto ab = read_array<u8>(n);
    auto o2 = read_array<float>(n);
    auto glu = read_array<float>(n);
    auto tgfb = read_array<float>(n);
    auto il12 = read_array<float>(n);
    auto pdl1 = read_array<float>(n);
    auto ecm = read_array<float>(n);
    auto chem = read_array<float>(n);
    const AgentTable t = table.view<AgentTable>();
    std::vector<u8> stim(RC), killed(RC), died(RC), born(RC);
    std::vector<i32> tgt(RC, -1), occ(n, -1);
    std::vector<float> pd_seen(RC);
    std::vector<i8> dsel(RC);
    std::vector<u64> claims(n, NO_CLAIM), counts(R * CART_NCOUNT, 0);
    const AgentGeom ag{geo, C};
    for (i64 i = 0; i < RC; ++i) move_occ(i, ag, count.data(), table.pos.data(), occ.data());
    for (i64 i = 0; i < RC; ++i)
        engage_claim(i, geo, C, p, seed, step, reps.data(), count.data(), t, kind.data(), aa.data(), ab.data(),
                     pdl1.data(), rec.data(), claims.data(), tgt.data(), stim.data(), killed.data(),
                     pd_seen.data(), counts.data());
    for (i64 i = 0; i < RC; ++i)
        engage_resolve(i, geo, C, p, seed, step, reps.data(), count.data(), t, kind.data(), aa.data(),
                       ab.data(), o2.data(), glu.data(), tgfb.data(), il12.data(), pdl1.data(), rec.data(),
                       claims.data(), tgt.data(), stim.data(), killed.data(), pd_seen.data(), counts.data());
    for (i64 i = 0; i < RC; ++i) claim_reset(i, geo, C, count.data(), claims.data(), tgt.data());
    for (i64 i = 0; i < RC; ++i)
        exhaustion(i, geo, C, p, count.data(), t, o2.data(), tgfb.data(), il12.data(), stim.data(),
                   killed.data(), pd_seen.data());
    for (i64 i = 0; i < RC; ++i)
        fate_claim(i, geo, C, p, seed, step, reps.data(), count.data(), t, o2.data(), glu.data(), tgfb.data(),
                   il12.data(), occ.data(), claims.data(), tgt.data(), died.data(), born.data(), counts.data());
    for (i64 i = 0; i < RC; ++i)
        fate_resolve(i, geo, C, count.data(), t, claims.data(), tgt.data(), born.data(), counts.data());
    for (i64 i = 0; i < RC; ++i) claim_reset(i, geo, C, count.data(), claims.data(), tgt.data());
    // the second table starts as a copy (entries beyond the old count keep their padding)
    HostTable table2 = table;
    const AgentTable t2 = table2.view<AgentTable>();
    for (i32 r = 0; r < R; ++r)
        if (!compact_row(r, C, p, count.data(), t, t2, died.data(), born.data(), tgt.data())) return 5;
    // migration on the new table
    std::fill(occ.begin(), occ.end(), -1);
    std::fill(tgt.begin(), tgt.end(), -1);
    for (i64 i = 0; i < RC; ++i) move_occ(i, ag, count.data(), table2.pos.data(), occ.data());
    for (i32 m = 0; m < n_sub; ++m) {
        for (i64 i = 0; i < RC; ++i)
            move_decide(i, m, ag, mk, seed, step, reps.data(), count.data(), table2.pos.data(), table2.dir.data(),
                        kind.data(), ecm.data(), chem.data(), occ.data(), claims.data(), tgt.data(), dsel.data());
        for (i64 i = 0; i < RC; ++i)
            move_apply(i, ag, count.data(), table2.pos.data(), table2.dir.data(), occ.data(), claims.data(), tgt.data(), dsel.data());
        for (i64 i = 0; i < RC; ++i) move_reset(i, ag, count.data(), claims.data(), tgt.data());
    }
    for (i64 g = 0; g < n; ++g)
        if (claims[g] != NO_CLAIM) return 4;
    write_array(count);
    table2.write();
    write_array(kind); write_array(aa); write_array(ab);
    write_array(counts);
    return 0;
}

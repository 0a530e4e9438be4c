// Host harness for kernels/systemic_logic.cuh: intravenous extravasation the way the CuPy backend
// launches it (occupancy, weights, host scale, decide, append).  Twin: the vessel part of
// gpusim.model.systemic.systemic_phase on a step without a dose.
// stdin: i32 R Z Y X C max_div; u32 seed step; f32 weight256; f64 lam[R]; u32 reps[R];
//        i32 t_count[R]; table (R*C each): u8 state, i32 pos, f32 exh, u8 div, i32 kills,
//        i8 dir, i16 act, u8 eng; u8 kind[R*V]; f32 chemokine[R*V]
// stdout: i32 t_count[R]; the table; u64 entered[R]; u64 wsum[R]
// exit 5: capacity overflow
#include "../../kernels/car_t_move_logic.cuh"
#include "../../kernels/systemic_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(6);
    auto su = read_array<u32>(2);
    const float weight256 = read_one<float>();
    const Geom geo{gi[0], gi[1], gi[2], gi[3]};
    const i32 C = gi[4];
    const i64 R = geo.R, RC = R * C, V = geo_nvox(geo), n = R * V;
    auto lam = read_array<double>(R);
    auto reps = read_array<u32>(R);
    auto count = read_array<i32>(R);
    HostTable table = HostTable::read(RC);
    auto kind = read_array<u8>(n);
    auto chem = read_array<float>(n);
    std::vector<i32> occ(n, -1);
    std::vector<i64> w(n);
    std::vector<u64> wsum(R, 0), counts(R, 0);
    std::vector<u8> enter(n);
    std::vector<float> scale(R, 0.0f);
    const AgentGeom ag{geo, C};
    for (i64 i = 0; i < RC; ++i) move_occ(i, ag, count.data(), table.pos.data(), occ.data());
    for (i64 g = 0; g < n; ++g) extravasation_weights(g, weight256, kind.data(), chem.data(), occ.data(), w.data(), wsum.data(), V);
    for (i64 r = 0; r < R; ++r) scale[r] = wsum[r] > 0 ? (float)(lam[r] / (double)wsum[r]) : 0.0f;
    for (i64 g = 0; g < n; ++g)
        extravasation_decide(g, geo, su[0], su[1], reps.data(), scale.data(), w.data(), enter.data(), counts.data());
    const AgentTable t = table.view<AgentTable>();
    for (i32 r = 0; r < R; ++r)
        if (!append_row(r, V, C, (u8)gi[5], count.data(), t, enter.data())) return 5;
    write_array(count);
    table.write();
    write_array(counts);
    write_array(wsum);
    return 0;
}

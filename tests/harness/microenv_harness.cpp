// Host harness for kernels/microenv_logic.cuh: one microenvironment phase the way the CuPy
// backend launches it (microenv_agents over the table, then microenv_voxel over every voxel).
// Twin: gpusim.model.microenv.microenv_phase.
// stdin: i32 R Z Y X C; u32 seed step; MicroK (read_struct: cupy_backend.microenv_k); u32 reps[R];
//        i32 t_count[R]; u8 t_state[R*C]; i32 t_pos[R*C]; u8 kind[R*V]; f32 pdl1, ifng, o2 [R*V];
//        u8 antigen_a, antigen_b, antigen_a_base, antigen_b_base [R*V]; f32 ecm[R*V]
// stdout: f32 pdl1[R*V]; u8 antigen_a, antigen_b [R*V]; f32 ecm[R*V]; u64 counts[R]
#include "../../kernels/microenv_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(5);
    auto su = read_array<u32>(2);
    const MicroK p = read_struct<MicroK>();
    const Geom geo{gi[0], gi[1], gi[2], gi[3]};
    const i32 C = gi[4];
    const i64 R = geo.R, RC = R * C, n = R * geo_nvox(geo);
    auto reps = read_array<u32>(R);
    auto count = read_array<i32>(R);
    auto state = read_array<u8>(RC);
    auto pos = read_array<i32>(RC);
    auto kind = read_array<u8>(n);
    auto pdl1 = read_array<float>(n);
    auto ifng = read_array<float>(n);
    auto o2 = read_array<float>(n);
    auto aa = read_array<u8>(n);
    auto ab = read_array<u8>(n);
    auto ba = read_array<u8>(n);
    auto bb = read_array<u8>(n);
    auto ecm = read_array<float>(n);
    std::vector<u64> counts(R, 0);
    for (i64 i = 0; i < RC; ++i) microenv_agents(i, geo, C, p, count.data(), state.data(), pos.data(), ecm.data());
    for (i64 g = 0; g < n; ++g)
        microenv_voxel(g, geo, p, su[0], su[1], reps.data(), kind.data(), pdl1.data(), ifng.data(), o2.data(),
                       aa.data(), ab.data(), ba.data(), bb.data(), ecm.data(), counts.data());
    write_array(pdl1);
    write_array(aa);
    write_array(ab);
    write_array(ecm);
    write_array(counts);
    return 0;
}

// Host harness for kernels/field_coeffs_logic.cuh: the agent map, then a and s of all six fields
// from one state.  Twin: the coefficient assembly of gpusim.model.environment.FieldsPhase.solve.
// stdin: i32 R Z Y X C; FieldCoefK (read_struct: cupy_backend.field_coef_k); i32 t_count[R];
//        i32 t_pos[R*C]; u8 t_eng[R*C]; i16 t_act[R*C]; u8 t_state[R*C]; u8 kind[R*V];
//        f32 o2, glucose, chemokine, tgfb, ifng, il12 [R*V]
// stdout: for f = 0..5: f32 a[R*V], s[R*V]
#include "../../kernels/field_coeffs_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(5);
    const FieldCoefK p = read_struct<FieldCoefK>();
    const Geom geo{gi[0], gi[1], gi[2], gi[3]};
    const i32 C = gi[4];
    const i64 R = geo.R, RC = R * C, n = R * geo_nvox(geo);
    auto count = read_array<i32>(R);
    auto pos = read_array<i32>(RC);
    auto eng = read_array<u8>(RC);
    auto act = read_array<i16>(RC);
    auto state = read_array<u8>(RC);
    auto kind = read_array<u8>(n);
    std::vector<std::vector<float>> fld;
    for (int f = 0; f < 6; ++f) fld.push_back(read_array<float>(n));
    std::vector<u8> amap(n, 0);
    for (i64 i = 0; i < RC; ++i)
        field_agent_map(i, geo, C, count.data(), pos.data(), eng.data(), act.data(), state.data(), amap.data());
    std::vector<float> a(n), s(n);
    for (int f = 0; f < 6; ++f) {
        for (i64 g = 0; g < n; ++g)
            field_coeffs(g, f, p, kind.data(), amap.data(), fld[f].data(), fld[4].data(), fld[0].data(),
                         a.data(), s.data());
        write_array(a);
        write_array(s);
    }
    return 0;
}

// Host harness for kernels/fields_logic.cuh: runs a whole solve the way the CuPy backend
// launches it (prepare, then colour 0, colour 1, after-sweep until no replicate is active), one
// "thread" at a time.
// stdin: i32 R Z Y X dirichlet max_iter floor_on; f32 bv dh omega den0 tol fixed_value floor;
//        f32 c[R*V], a[R*V], s[R*V]; u8 fixed[R*V]
// stdout: f32 c[R*V]; i32 iters[R]
#include "../../kernels/fields_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(7);
    auto gf = read_array<float>(7);
    FieldGeom g{gi[0], gi[1], gi[2], gi[3], gi[4], gf[0], gf[1], gf[2], gi[6], gf[6]};
    const i32 max_iter = gi[5];
    const float den0 = gf[3], tol = gf[4], fixed_value = gf[5];
    const i64 n = (i64)g.R * g.Z * g.Y * g.X;
    auto c = read_array<float>(n);
    auto a = read_array<float>(n);
    auto s = read_array<float>(n);
    auto fixed = read_array<u8>(n);
    std::vector<float> den(n);
    std::vector<u8> active(g.R, max_iter > 0 ? 1 : 0);
    std::vector<i32> iters(g.R, 0);
    std::vector<u32> maxchg(g.R, 0);
    for (i64 v = 0; v < n; ++v) sor_prepare(v, den0, a.data(), den.data(), c.data(), fixed.data(), fixed_value);
    const i64 nt = sor_threads(g);
    for (;;) {
        bool any = false;
        for (i32 r = 0; r < g.R; ++r) any = any || active[r];
        if (!any) break;
        for (i32 colour = 0; colour < 2; ++colour)
            for (i64 t = 0; t < nt; ++t)
                sor_voxel(t, colour, g, c.data(), s.data(), den.data(), fixed.data(), active.data(), maxchg.data());
        for (i32 r = 0; r < g.R; ++r) sor_after_sweep(r, tol, max_iter, active.data(), iters.data(), maxchg.data());
    }
    write_array(c);
    write_array(iters);
    return 0;
}

// Host harness for kernels/tumour_logic.cuh: one tumour phase the way the CuPy backend launches
// it (tumour_decide over every voxel, then tumour_births over every voxel).
// stdin: i32 R Z Y X collapse_neighbours has_extra; u32 seed step; f32 × 13 (TumourK floats in order);
//        u32 reps[R]; u8 kind[R*V], antigen_a[R*V], antigen_b[R*V]; f32 ecm, o2, glucose [R*V];
//        if has_extra: u8 antigen_a_base[R*V], antigen_b_base[R*V]; f32 pdl1[R*V]
// stdout: u8 kind[R*V], antigen_a[R*V], antigen_b[R*V]; if has_extra: u8 antigen_a_base,
//         antigen_b_base, f32 pdl1; u64 counts[R*TUMOUR_NCOUNT]
#include "../../kernels/tumour_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    auto gi = read_array<i32>(6);
    auto su = read_array<u32>(2);
    auto pf = read_array<float>(13);
    Geom geo{gi[0], gi[1], gi[2], gi[3]};
    TumourK p{pf[0], pf[1], pf[2], pf[3], pf[4], pf[5], pf[6], pf[7], pf[8], pf[9], pf[10],
              pf[11], pf[12], gi[4]};
    const i64 n = (i64)geo.R * geo_nvox(geo);
    auto reps = read_array<u32>(geo.R);
    auto kind = read_array<u8>(n);
    auto aa = read_array<u8>(n);
    auto ab = read_array<u8>(n);
    auto ecm = read_array<float>(n);
    auto o2 = read_array<float>(n);
    auto glu = read_array<float>(n);
    const bool extra = gi[5] != 0;
    auto ba = read_array<u8>(extra ? n : 0);
    auto bb = read_array<u8>(extra ? n : 0);
    auto pd = read_array<float>(extra ? n : 0);
    u8* pba = extra ? ba.data() : nullptr;
    u8* pbb = extra ? bb.data() : nullptr;
    float* ppd = extra ? pd.data() : nullptr;
    std::vector<u8> kind_out(n);
    std::vector<u64> claims(n, NO_CLAIM), counts((size_t)geo.R * TUMOUR_NCOUNT, 0);
    for (i64 g = 0; g < n; ++g)
        tumour_decide(g, geo, p, su[0], su[1], reps.data(), kind.data(), kind_out.data(), aa.data(),
                      ab.data(), pba, pbb, ppd, ecm.data(), o2.data(), glu.data(), claims.data(), counts.data());
    for (i64 g = 0; g < n; ++g)
        tumour_births(g, geo, p, su[0], su[1], reps.data(), kind_out.data(), aa.data(), ab.data(),
                      pba, pbb, ppd, claims.data(), counts.data());
    for (i64 g = 0; g < n; ++g)
        if (claims[g] != NO_CLAIM) {
            std::fprintf(stderr, "claim slot %lld not reset\n", (long long)g);
            return 4;
        }
    write_array(kind_out);
    write_array(aa);
    write_array(ab);
    write_array(ba);
    write_array(bb);
    write_array(pd);
    write_array(counts);
    return 0;
}

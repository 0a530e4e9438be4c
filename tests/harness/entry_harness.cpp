// Host harness for kernels/entry_logic.cuh: the intratumoral placement or the regional face entry
// the way the CuPy backend launches it (occupancy, inject_select per replicate or regional_free +
// regional_decide over replicate × face voxel, capacity check, append_row per replicate).  Twin:
// gpusim.model.systemic._inject / _regional_entry (+ _append); the vessel entry that follows in
// the same step is tests/harness/systemic_harness.cpp.
// stdin: u8 mode ('I' intratumoral, 'G' regional); i32 R Z Y X C max_div; u32 seed step;
//        u32 reps[R]; i32 t_count[R]; table (harness_io.h HostTable, R*C each);
//        'I': i64 n; i32 S; i32 order[V]; i32 shell[S+1]
//        'G': i32 F; f64 lam; i32 face[F]
// stdout: u64 counts[R] (entrants); u64 nfree[R] (regional; zeros for 'I'); u8 overflow (1: some
//         replicate would exceed C slots, nothing appended: CapacityError in the engine);
//         i32 t_count[R]; the table
#include "../../kernels/car_t_move_logic.cuh"
#include "../../kernels/entry_logic.cuh"
#include "harness_io.h"

using namespace gpusim;

int main() {
    const u8 mode = read_one<u8>();
    auto gi = read_array<i32>(6);
    auto su = read_array<u32>(2);
    const Geom geo{gi[0], gi[1], gi[2], gi[3]};
    const i32 C = gi[4];
    const u32 seed = su[0], step = su[1];
    const i64 R = geo.R, RC = R * C, V = geo_nvox(geo), n = R * V;
    auto reps = read_array<u32>(R);
    auto count = read_array<i32>(R);
    HostTable table = HostTable::read(RC);
    std::vector<i32> occ(n, -1);
    std::vector<u8> enter(n, 0);
    std::vector<u64> counts(R, 0), nfree(R, 0);
    const AgentGeom ag{geo, C};
    for (i64 i = 0; i < RC; ++i) move_occ(i, ag, count.data(), table.pos.data(), occ.data());
    if (mode == 'I') {
        const i64 ncell = read_one<i64>();
        const i32 S = read_one<i32>();
        auto order = read_array<i32>(V);
        auto shell = read_array<i32>(S + 1);
        std::vector<u32> wbuf(n, 0);
        for (i32 r = 0; r < R; ++r)
            counts[r] = (u64)inject_select(r, V, seed, step, reps.data(), ncell, S, order.data(), shell.data(),
                                           occ.data(), wbuf.data(), enter.data());
    } else if (mode == 'G') {
        const i32 F = read_one<i32>();
        const double lam = read_one<double>();
        auto face = read_array<i32>(F);
        for (i64 g = 0; g < R * F; ++g) regional_free(g, F, V, face.data(), occ.data(), nfree.data());
        for (i64 g = 0; g < R * F; ++g)
            regional_decide(g, F, V, seed, step, reps.data(), lam, face.data(), occ.data(), nfree.data(),
                            enter.data(), counts.data());
    } else {
        std::fprintf(stderr, "entry_harness: unknown mode %d\n", (int)mode);
        return 2;
    }
    // the enter mask must agree with the counts (one mark per entrant)
    for (i32 r = 0; r < R; ++r) {
        u64 m = 0;
        for (i64 v = 0; v < V; ++v) m += enter[r * V + v];
        if (m != counts[r]) return 4;
    }
    u8 overflow = 0;
    for (i32 r = 0; r < R; ++r) overflow |= (u64)count[r] + counts[r] > (u64)C ? 1 : 0;
    const AgentTable t = table.view<AgentTable>();
    if (!overflow)
        for (i32 r = 0; r < R; ++r)
            if (!append_row(r, V, C, (u8)gi[5], count.data(), t, enter.data())) return 5;
    write_array(counts);
    write_array(nfree);
    write_array(std::vector<u8>(1, overflow));
    write_array(count);
    table.write();
    return 0;
}

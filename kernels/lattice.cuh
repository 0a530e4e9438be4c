// lattice.cuh -- cell kinds, geometry and the Moore neighbourhood (CUDA twin of
// gpusim.model.lattice).  Voxel index within a replicate v = (z * Y + y) * X + x; neighbours in
// the fixed order of lattice.moore_offsets: lexicographic in (dz, dy, dx), centre left out
// (8 in 2D, 26 in 3D); a neighbour outside the domain is reported as -1.
#pragma once
#include "interface.cuh"

namespace gpusim {

// Kind codes (KindCode) and T-cell states (TStateCode): interface.cuh.

static constexpr i32 MAX_NB = 26;

struct Geom {
    i32 R, Z, Y, X;
};

GPUSIM_HD i64 geo_nvox(const Geom& g) { return (i64)g.Z * g.Y * g.X; }

// Fills nb[0 .. K-1] with the Moore neighbours of voxel v (-1 outside the domain); returns K.
GPUSIM_HD i32 moore_neighbours(const Geom& g, u32 v, i64* nb) {
    const i32 x = (i32)(v % (u32)g.X);
    const u32 t = v / (u32)g.X;
    const i32 y = (i32)(t % (u32)g.Y);
    const i32 z = (i32)(t / (u32)g.Y);
    const i32 dz0 = g.Z == 1 ? 0 : -1, dz1 = g.Z == 1 ? 0 : 1;
    i32 k = 0;
    for (i32 dz = dz0; dz <= dz1; ++dz)
        for (i32 dy = -1; dy <= 1; ++dy)
            for (i32 dx = -1; dx <= 1; ++dx) {
                if (dz == 0 && dy == 0 && dx == 0) continue;
                const i32 zz = z + dz, yy = y + dy, xx = x + dx;
                const bool ok = zz >= 0 && zz < g.Z && yy >= 0 && yy < g.Y && xx >= 0 && xx < g.X;
                nb[k++] = ok ? ((i64)zz * g.Y + yy) * g.X + xx : -1;
            }
    return k;
}

}  // namespace gpusim

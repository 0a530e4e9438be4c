// philox.cuh -- Philox4x32-10 counter-based random numbers, the CUDA twin of gpusim/rng.py.
//
// key     = (seed, global replicate)             two u32 words
// counter = (entity, draw, step, stream)         four u32 words
// One block = four u32 words.  `word(...)` gives word (entity & 3) of block (entity >> 2), as
// gpusim.rng.words does for per-voxel draws.
//
// Decisions: an event of float32 probability p happens iff word < threshold(p), with
// threshold(p) = floor(double(p) * 2^32) as u64 (gpusim.rng.threshold); a uniform choice among n
// is (u64(word) * n) >> 32 (gpusim.rng.choose).
//
// The Stream ids are generated from gpusim.rng.Stream into interface.cuh.  The device step, bitwise
// equal to the NumPy engine on the emulated device (tests/test_device.py), checks every draw
// against gpusim.rng, itself checked against the Random123 known-answer vectors.
#pragma once
#include "interface.cuh"

namespace gpusim {

// Stream ids: enum Stream of interface.cuh (generated from gpusim.rng.Stream).

static constexpr u32 PHILOX_M0 = 0xD2511F53u;
static constexpr u32 PHILOX_M1 = 0xCD9E8D57u;
static constexpr u32 PHILOX_W0 = 0x9E3779B9u;
static constexpr u32 PHILOX_W1 = 0xBB67AE85u;

struct Block4 {
    u32 w[4];
};

GPUSIM_HD void mulhilo32(u32 a, u32 b, u32* hi, u32* lo) {
    *hi = __umulhi(a, b);
    *lo = a * b;
}

// Philox4x32 with `rounds` rounds (10 is the standard), as gpusim.rng.philox4x32.
GPUSIM_HD Block4 philox4x32(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1, int rounds = 10) {
    for (int r = 0; r < rounds; ++r) {
        if (r) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        u32 hi0, lo0, hi1, lo1;
        mulhilo32(c0, PHILOX_M0, &hi0, &lo0);
        mulhilo32(c2, PHILOX_M1, &hi1, &lo1);
        u32 n0 = hi1 ^ c1 ^ k0;
        u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    Block4 b;
    b.w[0] = c0;
    b.w[1] = c1;
    b.w[2] = c2;
    b.w[3] = c3;
    return b;
}

// gpusim.rng.blocks for one entity: key (seed, replicate), counter (entity, draw, step, stream).
GPUSIM_HD Block4 block(u32 seed, u32 replicate, u32 step, u32 stream, u32 entity, u32 draw = 0) {
    return philox4x32(entity, draw, step, stream, seed, replicate);
}

// gpusim.rng.words for one entity: word (entity & 3) of block (entity >> 2).
GPUSIM_HD u32 word(u32 seed, u32 replicate, u32 step, u32 stream, u32 entity) {
    Block4 b = block(seed, replicate, step, stream, entity >> 2, 0);
    return b.w[entity & 3u];
}

// gpusim.rng.threshold: floor(double(p) * 2^32) as u64 (exact: the product is a float32 value
// scaled by a power of two).  Probabilities are never negative in the engine; p <= 0 gives 0.
GPUSIM_HD u64 threshold(float p) {
    double x = (double)p * 4294967296.0;
    return x > 0.0 ? (u64)x : 0ull;
}

// gpusim.rng.below
GPUSIM_HD bool below(u32 w, float p) { return (u64)w < threshold(p); }

// gpusim.rng.choose: uniform in 0 .. n-1.
GPUSIM_HD u32 choose(u32 w, u32 n) { return (u32)(((u64)w * (u64)n) >> 32); }

}  // namespace gpusim

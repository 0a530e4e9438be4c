// common.cuh -- portability shim shared by every kernel header of gpusim.
//
// Every kernel is compiled as device code: by NVRTC for a GPU (gpusim/backends/nvrtc.py, without
// flush-to-zero or contraction) and, for the tests, by the host C++ compiler as the emulated
// device (gpusim/backends/emulated.py, whose emu_shim.h supplies the CUDA built-ins and atomics
// and defines __CUDA_ARCH__).  Nothing here includes a system header: NVRTC has none.
//
// Both builds round every float32 + - * / exactly as NumPy does (no fused multiply-add; the host
// build uses -ffp-contract=off on x86-64/SSE).
#pragma once

#define GPUSIM_HD __host__ __device__ __forceinline__

namespace gpusim {

typedef unsigned char u8;
typedef signed char i8;
typedef short i16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

GPUSIM_HD u32 f32_bits(float x) { return __float_as_uint(x); }

GPUSIM_HD float f32_from_bits(u32 b) { return __uint_as_float(b); }

// |x| by clearing the sign bit (exact, like numpy.abs).
GPUSIM_HD float abs_f32(float x) { return f32_from_bits(f32_bits(x) & 0x7FFFFFFFu); }

static constexpr u64 NO_CLAIM = 0xFFFFFFFFFFFFFFFFull;  // an empty claim slot (no claimant)

// Claims (ARCHITECTURE.md, determinism rule 3): the smallest 64-bit key wins (atomicMin).
// Equivalent to gpusim.model.lattice.resolve_claims.
GPUSIM_HD void claim_min(u64* slot, u64 key) { atomicMin(slot, key); }

// Integer event counters (exact, order-free).
GPUSIM_HD void count_add(u64* slot, u64 n) { atomicAdd(slot, n); }

// Occupancy counts and bit maps (integer atomics: exact, order-free).
GPUSIM_HD void occ_add(i32* slot, i32 n) { atomicAdd(slot, n); }
GPUSIM_HD void bits_or(u32* slot, u32 bits) { atomicOr(slot, bits); }

// Max of non-negative float32 values through their bit patterns (monotone for x >= 0): exact,
// so the order of the updates does not matter.
// On the device the lanes of a warp that update the same slot first combine their values (warp
// reduction), then one lane issues the atomic: one atomic per warp and slot instead of one per
// thread (max is exact, so the grouping cannot change the result).
GPUSIM_HD void max_nonneg_f32(u32* slot, float x) {
    u32 bits = f32_bits(x);
#if __CUDA_ARCH__ >= 800
    const unsigned mask = __activemask();
    const unsigned grp = __match_any_sync(mask, (unsigned long long)slot);
    bits = __reduce_max_sync(grp, bits);
    if ((threadIdx.x & 31u) == (unsigned)(__ffs((int)grp) - 1)) atomicMax(slot, bits);
#else
    atomicMax(slot, bits);
#endif
}

}  // namespace gpusim

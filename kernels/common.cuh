// common.cuh — portability shim shared by every kernel header of gpusim.
//
// The kernel logic is written as __host__ __device__ functions so that the same source is
// compiled by nvcc/NVRTC (the CuPy backend) and by the host C++ compiler (the test harness in
// tests/harness/, which checks it bitwise against the NumPy engine without a GPU).  Nothing here
// includes a system header: NVRTC has none.
//
// Host builds must use IEEE float32 without contraction (g++ -ffp-contract=off on x86-64/SSE),
// device builds --fmad=false: every float32 + - * / is then rounded exactly as NumPy rounds it.
#pragma once

#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#endif

#define GPUSIM_HD __host__ __device__ __forceinline__

namespace gpusim {

typedef unsigned char u8;
typedef signed char i8;
typedef short i16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

GPUSIM_HD u32 f32_bits(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    u32 b;
    __builtin_memcpy(&b, &x, 4);
    return b;
#endif
}

GPUSIM_HD float f32_from_bits(u32 b) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(b);
#else
    float x;
    __builtin_memcpy(&x, &b, 4);
    return x;
#endif
}

// |x| by clearing the sign bit (exact, like numpy.abs).
GPUSIM_HD float abs_f32(float x) { return f32_from_bits(f32_bits(x) & 0x7FFFFFFFu); }

static constexpr u64 NO_CLAIM = 0xFFFFFFFFFFFFFFFFull;  // an empty claim slot (no claimant)

// Claims (ARCHITECTURE.md, determinism rule 3): the smallest 64-bit key wins.  On the device an
// atomicMin; on the host harness (one thread) a plain min.  Equivalent to
// gpusim.model.lattice.resolve_claims.
GPUSIM_HD void claim_min(u64* slot, u64 key) {
#if defined(__CUDA_ARCH__)
    atomicMin(slot, key);
#else
    if (key < *slot) *slot = key;
#endif
}

// Integer event counters (exact, order-free).
GPUSIM_HD void count_add(u64* slot, u64 n) {
#if defined(__CUDA_ARCH__)
    atomicAdd(slot, n);
#else
    *slot += n;
#endif
}

// Max of non-negative float32 values through their bit patterns (monotone for x >= 0): exact,
// so the order of the updates does not matter.
GPUSIM_HD void max_nonneg_f32(u32* slot, float x) {
    u32 bits = f32_bits(x);
#if defined(__CUDA_ARCH__)
    atomicMax(slot, bits);
#else
    if (bits > *slot) *slot = bits;
#endif
}

}  // namespace gpusim

// emu_shim.h -- the emulated device: the host twin of the CUDA built-ins the kernels use.
// Force-included by g++ (gpusim/backends/emulated.py) when a kernels/*.cu file is compiled for the
// host: __CUDA_ARCH__ is defined, so the DEVICE branches of common.cuh and philox.cuh are the ones
// compiled; a kernel is a plain extern "C" function that reads the thread-local blockIdx /
// blockDim / threadIdx, run over its grid by emu_launch one thread at a time, in order, in
// reverse, or in a shuffled order.  Bit 2 of `mode` sets the x86 MXCSR FTZ and DAZ bits during the
// launch: the host twin of a kernel compiled with -ftz=true.
#pragma once
#define __CUDA_ARCH__ 900
#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#include <xmmintrin.h>

struct emu_uint3 { unsigned int x, y, z; };
static thread_local emu_uint3 blockIdx{0, 0, 0}, threadIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};

static inline unsigned int __float_as_uint(float x) { unsigned int b; std::memcpy(&b, &x, 4); return b; }
static inline float __uint_as_float(unsigned int b) { float x; std::memcpy(&x, &b, 4); return x; }
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * (unsigned long long)b) >> 32);
}
static inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
    unsigned long long old = *p; if (v < old) *p = v; return old;
}
static inline unsigned int atomicMax(unsigned int* p, unsigned int v) {
    unsigned int old = *p; if (v > old) *p = v; return old;
}
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    unsigned long long old = *p; *p = old + v; return old;
}
static inline int atomicAdd(int* p, int v) { int old = *p; *p = old + v; return old; }
static inline unsigned int atomicAdd(unsigned int* p, unsigned int v) {
    unsigned int old = *p; *p = old + v; return old;
}
static inline unsigned int atomicOr(unsigned int* p, unsigned int v) {
    unsigned int old = *p; *p = old | v; return old;
}
// Warp intrinsics for threads run one at a time: each thread is a warp of its own.
static inline unsigned __activemask() { return 1u << (threadIdx.x & 31u); }
static inline unsigned __match_any_sync(unsigned mask, unsigned long long) { return mask; }
static inline unsigned __reduce_max_sync(unsigned, unsigned v) { return v; }
static inline int __ffs(int x) { return __builtin_ffs(x); }

template <typename... A, std::size_t... I>
static std::tuple<A...> emu_unpack(void** p, std::index_sequence<I...>) {
    return std::tuple<A...>{*static_cast<std::remove_reference_t<A>*>(p[I])...};
}
// cuLaunchKernel-like: params[i] points at the bytes of argument i (the size read is the kernel's
// own parameter type, as the CUDA driver does).  mode & 3: 0 in order, 1 reversed, 2 shuffled
// (a permutation of the blocks and of the threads of each block drawn from `seed`).
template <typename... A>
static void emu_launch(void (*k)(A...), unsigned gx, unsigned bx, void** p, int mode, unsigned seed) {
    auto args = emu_unpack<A...>(p, std::index_sequence_for<A...>{});
    const unsigned saved = _mm_getcsr();
    if (mode & 4) _mm_setcsr(saved | 0x8040u);
    const int order = mode & 3;
    std::vector<unsigned> blocks(gx), threads(bx);
    for (unsigned i = 0; i < gx; ++i) blocks[i] = order == 1 ? gx - 1 - i : i;
    for (unsigned i = 0; i < bx; ++i) threads[i] = order == 1 ? bx - 1 - i : i;
    unsigned long long s = 0x9E3779B97F4A7C15ull ^ seed;
    auto next = [&s]() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; };
    if (order == 2) {
        for (unsigned i = gx; i > 1; --i) std::swap(blocks[i - 1], blocks[next() % i]);
    }
    blockDim = {bx, 1, 1};
    gridDim = {gx, 1, 1};
    for (unsigned b : blocks) {
        blockIdx = {b, 0, 0};
        if (order == 2) {
            for (unsigned i = bx; i > 1; --i) std::swap(threads[i - 1], threads[next() % i]);
        }
        for (unsigned t : threads) {
            threadIdx = {t, 0, 0};
            std::apply(k, args);
        }
    }
    _mm_setcsr(saved);
}
#define EMU_EXPORT(name)                                                                        \
    extern "C" void emu_launch_##name(unsigned gx, unsigned bx, void** p, int mode, unsigned seed) { \
        emu_launch(name, gx, bx, p, mode, seed);                                               \
    }

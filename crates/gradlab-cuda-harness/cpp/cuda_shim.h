// Just enough of CUDA C++ to compile kernels/*.cu with a host C++ compiler
// and run them on the CPU (see runtime.cpp): qualifiers, the thread and
// block indices, __shared__ memory, __syncthreads, warp shuffles, atomics,
// vector types and the math functions the kernels use.
//
// Execution model: the blocks of a grid run one after another; the threads
// of the running block are real OS threads, so __syncthreads is a real
// barrier and a missing one shows up as a wrong (or varying) result.
// __shared__ variables become function-local statics: one copy, shared by
// the threads of the one block that runs at a time. Warp shuffles go through
// a per-warp exchange slot array guarded by a per-warp barrier.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define GRADLAB_CPU_HARNESS 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace harness {
// Barrier across the threads of the running block that have not returned.
void sync_block();
// Barrier across the live lanes of the calling thread's warp.
void sync_warp();
// Every live lane of the warp calls this; each gets the value `src_lane`
// offered (its own when src_lane is outside the warp).
std::uint64_t warp_exchange(std::uint64_t mine, int src_lane);
// Lane index (0..31) of the calling thread.
int lane_id();
}  // namespace harness

inline void __syncthreads() { harness::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { harness::sync_warp(); }

template <class T>
inline T harness_shuffle(T v, int src_lane) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a plain value");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = harness::warp_exchange(bits, src_lane);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    const int lane = harness::lane_id();
    return harness_shuffle(v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    const int lane = harness::lane_id();
    const int src = lane ^ mask;
    const bool inside = (src & ~(width - 1)) == (lane & ~(width - 1));
    return harness_shuffle(v, inside ? src : lane);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    const int lane = harness::lane_id();
    const int src = lane + (int)delta;
    const bool inside = (src & ~(width - 1)) == (lane & ~(width - 1));
    return harness_shuffle(v, inside ? src : lane);
}
template <class T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    const int lane = harness::lane_id();
    const int src = lane - (int)delta;
    const bool inside = src >= 0 && (src & ~(width - 1)) == (lane & ~(width - 1));
    return harness_shuffle(v, inside ? src : lane);
}

// ----------------------------------------------------------------- atomics --
template <class T>
inline T harness_fetch_add(T* p, T v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
inline int atomicAdd(int* p, int v) { return harness_fetch_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return harness_fetch_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return harness_fetch_add(p, v);
}
inline float atomicAdd(float* p, float v) {
    std::uint32_t* bits = reinterpret_cast<std::uint32_t*>(p);
    std::uint32_t old = __atomic_load_n(bits, __ATOMIC_SEQ_CST);
    for (;;) {
        float f;
        std::memcpy(&f, &old, 4);
        f += v;
        std::uint32_t next;
        std::memcpy(&next, &f, 4);
        if (__atomic_compare_exchange_n(bits, &old, next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            std::memcpy(&f, &old, 4);
            return f;
        }
    }
}
template <class T>
inline T harness_cas(T* p, T expected, T desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;  // the old value, as CUDA's atomicCAS returns
}
inline int atomicCAS(int* p, int e, int d) { return harness_cas(p, e, d); }
inline unsigned atomicCAS(unsigned* p, unsigned e, unsigned d) { return harness_cas(p, e, d); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long e,
                                    unsigned long long d) {
    return harness_cas(p, e, d);
}
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline int atomicMax(int* p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <class T>
inline T __ldg(const T* p) {
    return *p;
}

// ------------------------------------------------------------ vector types --
struct __align__(8) float2 {
    float x, y;
};
struct __align__(16) float4 {
    float x, y, z, w;
};
struct __align__(8) int2 {
    int x, y;
};
struct __align__(16) int4 {
    int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

// ------------------------------------------------------------------- math --
using std::isfinite;
using std::isinf;
using std::isnan;

template <class A, class B>
inline auto min(A a, B b) -> std::common_type_t<A, B> {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<C>) return std::fmin((C)a, (C)b);
    else return (C)a < (C)b ? (C)a : (C)b;
}
template <class A, class B>
inline auto max(A a, B b) -> std::common_type_t<A, B> {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<C>) return std::fmax((C)a, (C)b);
    else return (C)a > (C)b ? (C)a : (C)b;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, 4);
    return i;
}
inline float __uint_as_float(unsigned i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned i;
    std::memcpy(&i, &f, 4);
    return i;
}

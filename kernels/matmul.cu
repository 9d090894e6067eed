// Single-precision GEMM, several versions side by side, from the plainest to
// the fastest: C = alpha * A·B + beta * C.
//
// Every kernel takes the same arguments. A is M×K, B is K×N, C is M×N, each
// with a row stride and a column stride (so a transposed operand is just
// swapped strides) and a batch stride applied per blockIdx.z. When beta is 0,
// C is written without being read, as BLAS does, so NaNs already there vanish.
// Every kernel bounds-checks its tails: any M, N, K >= 0 is valid.
//
// Versions 4-6 come in one kernel per operand layout (suffix _nn, _nt, _tn,
// _tt, chosen on the host from the strides, see "Operand tiles" below), so
// that each compiled kernel has one way to load each operand: no run-time
// loader modes, fewer registers.

typedef long long i64;

#define GEMM_ARGS                                                            \
    int M, int N, int K, float alpha,                                        \
    const float* __restrict__ A, i64 rsa, i64 csa, i64 bsa,                  \
    const float* __restrict__ B, i64 rsb, i64 csb, i64 bsb,                  \
    float beta, float* __restrict__ C, i64 rsc, i64 csc, i64 bsc

#define GEMM_BATCH_OFFSET()                                                  \
    A += (i64)blockIdx.z * bsa;                                              \
    B += (i64)blockIdx.z * bsb;                                              \
    C += (i64)blockIdx.z * bsc

__device__ __forceinline__ void store_c(float* C, i64 rsc, i64 csc, int i, int j,
                                        float acc, float alpha, float beta) {
    float* p = C + (i64)i * rsc + (i64)j * csc;
    *p = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * *p;
}

// Stores four consecutive columns of one row; one 16-byte store when the row
// is contiguous, aligned and entirely inside C.
__device__ __forceinline__ void store_c4(float* C, i64 rsc, i64 csc, int M, int N,
                                         int i, int j, float v0, float v1, float v2,
                                         float v3, float alpha, float beta, bool vec) {
    if (i >= M) return;
    if (vec && j + 3 < N) {
        float4* p = reinterpret_cast<float4*>(C + (i64)i * rsc + j);
        float4 o;
        if (beta == 0.0f) {
            o = make_float4(alpha * v0, alpha * v1, alpha * v2, alpha * v3);
        } else {
            float4 old = *p;
            o = make_float4(alpha * v0 + beta * old.x, alpha * v1 + beta * old.y,
                            alpha * v2 + beta * old.z, alpha * v3 + beta * old.w);
        }
        *p = o;
        return;
    }
    if (j < N) store_c(C, rsc, csc, i, j, v0, alpha, beta);
    if (j + 1 < N) store_c(C, rsc, csc, i, j + 1, v1, alpha, beta);
    if (j + 2 < N) store_c(C, rsc, csc, i, j + 2, v2, alpha, beta);
    if (j + 3 < N) store_c(C, rsc, csc, i, j + 3, v3, alpha, beta);
}

__device__ __forceinline__ bool c_is_vectorizable(const float* C, i64 rsc, i64 csc) {
    return csc == 1 && (rsc & 3) == 0 && (((unsigned long long)C) & 15) == 0;
}

// ---------------------------------------------------------------------------
// 1. Naive: one thread per element of C, operands straight from global memory.
// Block 32×8, grid (ceil(N/32), ceil(M/8), batch).
extern "C" __global__ void matmul_naive(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= M || j >= N) return;
    float acc = 0.0f;
    for (int p = 0; p < K; ++p) acc += A[(i64)i * rsa + (i64)p * csa] * B[(i64)p * rsb + (i64)j * csb];
    store_c(C, rsc, csc, i, j, acc, alpha, beta);
}

// ---------------------------------------------------------------------------
// 2. Shared-memory tiling: a 32×32 block stages 32×32 tiles of A and B in
// shared memory so each global element is read once per block, not 32 times.
// Block 32×32, grid (ceil(N/32), ceil(M/32), batch).
#define ST_TILE 32
extern "C" __global__ void matmul_shared_tiled(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    __shared__ float As[ST_TILE][ST_TILE + 1];
    __shared__ float Bs[ST_TILE][ST_TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int i = blockIdx.y * ST_TILE + ty;
    const int j = blockIdx.x * ST_TILE + tx;
    float acc = 0.0f;
    for (int p0 = 0; p0 < K; p0 += ST_TILE) {
        As[ty][tx] = (i < M && p0 + tx < K) ? A[(i64)i * rsa + (i64)(p0 + tx) * csa] : 0.0f;
        Bs[ty][tx] = (p0 + ty < K && j < N) ? B[(i64)(p0 + ty) * rsb + (i64)j * csb] : 0.0f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < ST_TILE; ++kk) acc += As[ty][kk] * Bs[kk][tx];
        __syncthreads();
    }
    if (i < M && j < N) store_c(C, rsc, csc, i, j, acc, alpha, beta);
}

// ---------------------------------------------------------------------------
// 3. 2-D register blocking: a 128×128 block tile, 256 threads, each thread
// keeps an 8×8 tile of C in registers, so every value read from shared memory
// feeds 8 multiply-adds instead of 1. A is stored k-major in shared memory so
// a thread's 8 rows sit side by side.
// Block 256, grid (ceil(N/128), ceil(M/128), batch).
#define RB_BM 128
#define RB_BN 128
#define RB_BK 8
extern "C" __global__ void __launch_bounds__(256)
matmul_register_blocked(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    __shared__ float As[RB_BK][RB_BM];
    __shared__ float Bs[RB_BK][RB_BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * RB_BM, n0 = blockIdx.x * RB_BN;
    float acc[8][8];
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += RB_BK) {
        for (int idx = tid; idx < RB_BM * RB_BK; idx += 256) {
            const int kk = idx % RB_BK, mm = idx / RB_BK;
            const int gi = m0 + mm, gp = k0 + kk;
            As[kk][mm] = (gi < M && gp < K) ? A[(i64)gi * rsa + (i64)gp * csa] : 0.0f;
        }
        for (int idx = tid; idx < RB_BK * RB_BN; idx += 256) {
            const int nn = idx % RB_BN, kk = idx / RB_BN;
            const int gp = k0 + kk, gj = n0 + nn;
            Bs[kk][nn] = (gp < K && gj < N) ? B[(i64)gp * rsb + (i64)gj * csb] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < RB_BK; ++kk) {
            float a[8], b[8];
#pragma unroll
            for (int r = 0; r < 8; ++r) a[r] = As[kk][ty * 8 + r];
#pragma unroll
            for (int c = 0; c < 8; ++c) b[c] = Bs[kk][tx * 8 + c];
#pragma unroll
            for (int r = 0; r < 8; ++r)
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r][c] += a[r] * b[c];
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 8; ++r)
#pragma unroll
        for (int c = 0; c < 8; ++c) {
            const int i = m0 + ty * 8 + r, j = n0 + tx * 8 + c;
            if (i < M && j < N) store_c(C, rsc, csc, i, j, acc[r][c], alpha, beta);
        }
}

// ---------------------------------------------------------------------------
// Operand tiles for versions 4-6.
//
// Both operands are staged "k-major": a tile T[k][d] holds BK slices of BD
// rows of A (d = m) or columns of B (d = n), so a thread reads 4 consecutive
// d with one float4. An operand is seen as a D×K matrix X with element (d, k)
// at X[d*sd + k*sk]: A is (M×K, sd = rsa, sk = csa); B is seen transposed
// (N×K, sd = csb, sk = rsb). Two loaders:
//
//  * DirectTile, when d is contiguous (sd == 1: a transposed A, a plain B):
//    the tile rows are copied as they are, 16 bytes at a time with cp.async
//    (global to shared without passing through registers) when the tile is
//    inside the matrix and 16-byte aligned, else 4 bytes at a time with
//    zero-fill for elements outside the matrix (the predicated edge path).
//    Stores are whole 16-byte rows segments: conflict-free.
//  * TransposingTile, otherwise (k contiguous: a plain A, a transposed B, or
//    any other strides): each thread reads 4 consecutive k of one d (a float4
//    when k is contiguous, aligned and inside; else predicated scalar loads)
//    into registers while the previous tile is multiplied, then stores them
//    transposed. Element (k, d) goes to column d ^ swizzle(k), which XORs the
//    quad index of k into bits 3-4 (BK = 16) or bit 4 (BK = 8) of d: the 32
//    stores of a warp then fall in 32 distinct banks, and 4-aligned groups of
//    d stay together, so the float4 reads of the multiply are unchanged.
//
// cp.async needs sm_80; older targets and the CPU harness copy at once.

__device__ __forceinline__ bool aligned16(const void* p) {
    return (((unsigned long long)p) & 15) == 0;
}

__device__ __forceinline__ void copy16_async(float* smem, const float* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
#else
    *reinterpret_cast<float4*>(smem) = *reinterpret_cast<const float4*>(gmem);
#endif
}

// Copies one float, or writes 0 when !valid (gmem is then not read).
__device__ __forceinline__ void copy4_async(float* smem, const float* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem),
                 "r"(valid ? 4 : 0));
#else
    *smem = valid ? *gmem : 0.0f;
#endif
}

// Waits for this thread's cp.async copies (a __syncthreads must follow
// before other threads read them).
__device__ __forceinline__ void async_copies_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;\n" ::);
#endif
}

// The shared-memory column of element (k, d) of a transposed tile.
template <int BK>
__device__ __forceinline__ int swizzle(int k, int d) {
    return d ^ ((k >> 2) * (32 / (BK / 4)));
}

template <int BK, int BD, int PITCH, int NT>
struct DirectTile {
    static constexpr bool TRANSPOSED = false;
    static constexpr int CHUNKS = BK * BD / 4 / NT;  // 16-byte pieces per thread
    static_assert(CHUNKS >= 1 && BK * BD / 4 % NT == 0, "tile must split evenly");

    // Whether the 16-byte path can be used for this operand at all.
    __device__ static bool vector_ok(const float* X, i64 sd, i64 sk) {
        return sd == 1 && (sk & 3) == 0 && aligned16(X);
    }

    __device__ __forceinline__ void fetch(float* tile, const float* __restrict__ X, i64 sd, i64 sk,
                                          int D, int K, int d0, int k0, bool vec) {
        const int tid = threadIdx.x;
        const bool inside = vec && d0 + BD <= D && k0 + BK <= K;
#pragma unroll
        for (int q = 0; q < CHUNKS; ++q) {
            const int c = tid + q * NT;
            const int k = c / (BD / 4), d = (c % (BD / 4)) * 4;
            float* dst = tile + k * PITCH + d;
            const float* src = X + (i64)(k0 + k) * sk + (d0 + d);
            if (inside) {
                copy16_async(dst, src);
            } else {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const bool valid = d0 + d + e < D && k0 + k < K;
                    copy4_async(dst + e, valid ? src + e : X, valid);
                }
            }
        }
    }
    __device__ __forceinline__ void commit(float*) const {}
};

template <int BK, int BD, int PITCH, int NT>
struct TransposingTile {
    static constexpr bool TRANSPOSED = true;
    static constexpr int QUADS = BK / 4;
    static constexpr int CHUNKS = BD * QUADS / NT;  // 4-element pieces per thread
    static_assert(CHUNKS >= 1 && BD * QUADS % NT == 0, "tile must split evenly");
    float v[CHUNKS][4];

    __device__ static bool vector_ok(const float* X, i64 sd, i64 sk) {
        return sk == 1 && (sd & 3) == 0 && aligned16(X);
    }

    __device__ __forceinline__ void fetch(float*, const float* __restrict__ X, i64 sd, i64 sk, int D,
                                          int K, int d0, int k0, bool vec) {
        const int tid = threadIdx.x;
        const bool inside = vec && d0 + BD <= D && k0 + BK <= K;
#pragma unroll
        for (int q = 0; q < CHUNKS; ++q) {
            const int c = tid + q * NT;
            const int d = c / QUADS, k = (c % QUADS) * 4;
            const float* src = X + (i64)(d0 + d) * sd + (i64)(k0 + k) * sk;
            if (inside) {
                const float4 f = *reinterpret_cast<const float4*>(src);
                v[q][0] = f.x;
                v[q][1] = f.y;
                v[q][2] = f.z;
                v[q][3] = f.w;
            } else {
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    v[q][e] = (d0 + d < D && k0 + k + e < K) ? src[(i64)e * sk] : 0.0f;
            }
        }
    }

    __device__ __forceinline__ void commit(float* tile) const {
        const int tid = threadIdx.x;
#pragma unroll
        for (int q = 0; q < CHUNKS; ++q) {
            const int c = tid + q * NT;
            const int d = c / QUADS, k = (c % QUADS) * 4;
#pragma unroll
            for (int e = 0; e < 4; ++e) tile[(k + e) * PITCH + swizzle<BK>(k + e, d)] = v[q][e];
        }
    }
};

// Column of logical (k, d) in a tile written by loader L.
template <class L, int BK>
__device__ __forceinline__ int tile_col(int k, int d) {
    return L::TRANSPOSED ? swizzle<BK>(k, d) : d;
}

// The loaders of one layout: A_T / B_T say whether A's / B's tile is
// transposed on the way in (k contiguous in memory).
template <bool T, int BK, int BD, int PITCH, int NT>
struct TileOf {
    using type = DirectTile<BK, BD, PITCH, NT>;
};
template <int BK, int BD, int PITCH, int NT>
struct TileOf<true, BK, BD, PITCH, NT> {
    using type = TransposingTile<BK, BD, PITCH, NT>;
};

// Kernel names per layout: the first letter is A, the second B; n = stored
// as its own shape (A row-major M×K, B row-major K×N), t = stored transposed.
// A plain A and a transposed B have k contiguous, so their tiles are
// transposed on the way in.
#define GEMM_LAYOUTS(MACRO, NAME)          \
    MACRO(NAME##_nn, true, false)          \
    MACRO(NAME##_nt, true, true)           \
    MACRO(NAME##_tn, false, false)         \
    MACRO(NAME##_tt, false, true)

// ---------------------------------------------------------------------------
// 4. Vectorised: version 3 with float4 loads where the layout allows, float4
// shared-memory reads, and a split thread tile (rows ty*4.. and 64+ty*4..,
// same for columns) so that a warp's shared reads hit distinct banks and its
// stores to C are 16-byte wide. One K slice in flight.
// Block 256, grid (ceil(N/128), ceil(M/128), batch).
template <bool A_T, bool B_T>
__device__ __forceinline__ void vectorized_gemm(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    constexpr int BM = 128, BN = 128, BK = 8;
    using LA = typename TileOf<A_T, BK, BM, BM, 256>::type;
    using LB = typename TileOf<B_T, BK, BN, BN, 256>::type;
    __shared__ __align__(16) float As[BK * BM];
    __shared__ __align__(16) float Bs[BK * BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const bool a_vec = LA::vector_ok(A, rsa, csa), b_vec = LB::vector_ok(B, csb, rsb);
    LA la;
    LB lb;
    float acc[8][8];
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += BK) {
        la.fetch(As, A, rsa, csa, M, K, m0, k0, a_vec);
        lb.fetch(Bs, B, csb, rsb, N, K, n0, k0, b_vec);
        la.commit(As);
        lb.commit(Bs);
        async_copies_wait();
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float* ar = As + kk * BM;
            const float* br = Bs + kk * BN;
            const float4 a0 = *reinterpret_cast<const float4*>(ar + tile_col<LA, BK>(kk, ty * 4));
            const float4 a1 = *reinterpret_cast<const float4*>(ar + tile_col<LA, BK>(kk, 64 + ty * 4));
            const float4 b0 = *reinterpret_cast<const float4*>(br + tile_col<LB, BK>(kk, tx * 4));
            const float4 b1 = *reinterpret_cast<const float4*>(br + tile_col<LB, BK>(kk, 64 + tx * 4));
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int r = 0; r < 8; ++r)
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r][c] += a[r] * b[c];
        }
        __syncthreads();
    }
    const bool vec = c_is_vectorizable(C, rsc, csc);
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        const int i = m0 + (r < 4 ? ty * 4 + r : 64 + ty * 4 + r - 4);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int j = n0 + h * 64 + tx * 4;
            store_c4(C, rsc, csc, M, N, i, j, acc[r][4 * h], acc[r][4 * h + 1],
                     acc[r][4 * h + 2], acc[r][4 * h + 3], alpha, beta, vec);
        }
    }
}

#define VECTORIZED_KERNEL(NAME, A_T, B_T)                                  \
    extern "C" __global__ void __launch_bounds__(256, 2) NAME(GEMM_ARGS) { \
        vectorized_gemm<A_T, B_T>(M, N, K, alpha, A, rsa, csa, bsa, B, rsb, \
                                  csb, bsb, beta, C, rsc, csc, bsc);      \
    }
GEMM_LAYOUTS(VECTORIZED_KERNEL, matmul_vectorized)

// ---------------------------------------------------------------------------
// 5. Warp tiling with double buffering: 8 warps each own a 64×32 piece of the
// 128×128 block tile (2 warps down, 4 across); inside a warp the 32 lanes form
// an 8×4 grid and each lane computes two 4×4 sub-tiles in each direction.
// The next K slice is loaded (cp.async or registers) while the current one is
// multiplied, into the other half of a double shared buffer, so one barrier
// per slice suffices. Tile rows are padded to 136 floats (as the tensor-core
// version needs) so both versions share the loaders. Slices are 16 deep, or
// 8 when both tiles are transposed (_nt), so that the registers staging the
// next slice fit beside the accumulators.
// Block 256, grid (ceil(N/128), ceil(M/128), batch); at most 128 registers
// (two blocks per SM).
#define WT_PITCH 136
template <bool A_T, bool B_T>
__device__ __forceinline__ void warp_tiled_gemm(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    constexpr int BM = 128, BN = 128, BK = (A_T && B_T) ? 8 : 16, P = WT_PITCH;
    using LA = typename TileOf<A_T, BK, BM, P, 256>::type;
    using LB = typename TileOf<B_T, BK, BN, P, 256>::type;
    __shared__ __align__(16) float As[2][BK * P];
    __shared__ __align__(16) float Bs[2][BK * P];
    const int tid = threadIdx.x;
    const int warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wn = warp % 4;
    const int lr = lane / 4, lc = lane % 4;
    const int row_base = wm * 64 + lr * 4;  // and row_base + 32
    const int col_base = wn * 32 + lc * 4;  // and col_base + 16
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const bool a_vec = LA::vector_ok(A, rsa, csa), b_vec = LB::vector_ok(B, csb, rsb);
    LA la;
    LB lb;
    float acc[8][8];
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    const int tiles = (K + BK - 1) / BK;
    if (tiles > 0) {
        la.fetch(As[0], A, rsa, csa, M, K, m0, 0, a_vec);
        lb.fetch(Bs[0], B, csb, rsb, N, K, n0, 0, b_vec);
        la.commit(As[0]);
        lb.commit(Bs[0]);
        async_copies_wait();
        __syncthreads();
    }
    for (int t = 0; t < tiles; ++t) {
        const int s = t & 1;
        const bool more = t + 1 < tiles;
        if (more) {
            la.fetch(As[s ^ 1], A, rsa, csa, M, K, m0, (t + 1) * BK, a_vec);
            lb.fetch(Bs[s ^ 1], B, csb, rsb, N, K, n0, (t + 1) * BK, b_vec);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float* ar = As[s] + kk * P;
            const float* br = Bs[s] + kk * P;
            const float4 a0 = *reinterpret_cast<const float4*>(ar + tile_col<LA, BK>(kk, row_base));
            const float4 a1 = *reinterpret_cast<const float4*>(ar + tile_col<LA, BK>(kk, row_base + 32));
            const float4 b0 = *reinterpret_cast<const float4*>(br + tile_col<LB, BK>(kk, col_base));
            const float4 b1 = *reinterpret_cast<const float4*>(br + tile_col<LB, BK>(kk, col_base + 16));
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int r = 0; r < 8; ++r)
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r][c] += a[r] * b[c];
        }
        if (more) {
            la.commit(As[s ^ 1]);
            lb.commit(Bs[s ^ 1]);
            async_copies_wait();
        }
        __syncthreads();
    }
    const bool vec = c_is_vectorizable(C, rsc, csc);
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        const int i = m0 + row_base + (r < 4 ? r : 32 + r - 4);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int j = n0 + col_base + h * 16;
            store_c4(C, rsc, csc, M, N, i, j, acc[r][4 * h], acc[r][4 * h + 1],
                     acc[r][4 * h + 2], acc[r][4 * h + 3], alpha, beta, vec);
        }
    }
}

#define WARP_TILED_KERNEL(NAME, A_T, B_T)                                  \
    extern "C" __global__ void __launch_bounds__(256, 2) NAME(GEMM_ARGS) { \
        warp_tiled_gemm<A_T, B_T>(M, N, K, alpha, A, rsa, csa, bsa, B, rsb, \
                                  csb, bsb, beta, C, rsc, csc, bsc);      \
    }
GEMM_LAYOUTS(WARP_TILED_KERNEL, matmul_warp_tiled)

// ---------------------------------------------------------------------------
// 6. Tensor cores, TF32 inputs with f32 accumulation, through the warp-level
// `mma.sync.m16n8k8` instruction (sm_80 and newer; inline PTX, so the CPU
// harness leaves it to the GPU). Same 128×128 block tile, same tiles and
// loaders as version 5 (slices 16 deep, 8 when a tile is transposed, whose
// staging registers the fragments need), 8 warps each computing 64×32 as 4×4
// mma tiles of 16×8. Operands are rounded to TF32 (10-bit mantissa) when read from shared
// memory, so results differ from f32 by about 1e-3 relative: it is a
// separate variant.
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32):
//   g = lane / 4, t = lane % 4
//   A 16×8:  a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4)
//   B 8×8:   b0 (t, g)  b1 (t+4, g)
//   C 16×8:  c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1)
// With tile rows of 136 floats, lane (g, t) of a fragment read hits bank
// 8t + g (plus a constant): 32 distinct banks.
#if !defined(GRADLAB_CPU_HARNESS)
__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void mma_tf32(float* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <bool A_T, bool B_T>
__device__ __forceinline__ void tf32_gemm(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    constexpr int BM = 128, BN = 128, BK = (A_T || B_T) ? 8 : 16, P = WT_PITCH;
    using LA = typename TileOf<A_T, BK, BM, P, 256>::type;
    using LB = typename TileOf<B_T, BK, BN, P, 256>::type;
    __shared__ __align__(16) float As[2][BK * P];
    __shared__ __align__(16) float Bs[2][BK * P];
    const int tid = threadIdx.x;
    const int warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wn = warp % 4;  // warp tile at rows wm*64, cols wn*32
    const int g = lane / 4, t4 = lane % 4;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const bool a_vec = LA::vector_ok(A, rsa, csa), b_vec = LB::vector_ok(B, csb, rsb);
    LA la;
    LB lb;
    float acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[a][b][c] = 0.0f;

    const int tiles = (K + BK - 1) / BK;
    if (tiles > 0) {
        la.fetch(As[0], A, rsa, csa, M, K, m0, 0, a_vec);
        lb.fetch(Bs[0], B, csb, rsb, N, K, n0, 0, b_vec);
        la.commit(As[0]);
        lb.commit(Bs[0]);
        async_copies_wait();
        __syncthreads();
    }
    for (int t = 0; t < tiles; ++t) {
        const int s = t & 1;
        const bool more = t + 1 < tiles;
        if (more) {
            la.fetch(As[s ^ 1], A, rsa, csa, M, K, m0, (t + 1) * BK, a_vec);
            lb.fetch(Bs[s ^ 1], B, csb, rsb, N, K, n0, (t + 1) * BK, b_vec);
        }
        const float* at = As[s];
        const float* bt = Bs[s];
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {
            const int k_lo = kk + t4, k_hi = kk + t4 + 4;
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                const int r = wm * 64 + mi * 16 + g;
                af[mi][0] = to_tf32(at[k_lo * P + tile_col<LA, BK>(k_lo, r)]);
                af[mi][1] = to_tf32(at[k_lo * P + tile_col<LA, BK>(k_lo, r + 8)]);
                af[mi][2] = to_tf32(at[k_hi * P + tile_col<LA, BK>(k_hi, r)]);
                af[mi][3] = to_tf32(at[k_hi * P + tile_col<LA, BK>(k_hi, r + 8)]);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const int c = wn * 32 + ni * 8 + g;
                bf[ni][0] = to_tf32(bt[k_lo * P + tile_col<LB, BK>(k_lo, c)]);
                bf[ni][1] = to_tf32(bt[k_hi * P + tile_col<LB, BK>(k_hi, c)]);
            }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_tf32(acc[mi][ni], af[mi], bf[ni]);
        }
        if (more) {
            la.commit(As[s ^ 1]);
            lb.commit(Bs[s ^ 1]);
            async_copies_wait();
        }
        __syncthreads();
    }
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const int i = m0 + wm * 64 + mi * 16 + g;
            const int j = n0 + wn * 32 + ni * 8 + 2 * t4;
            if (i < M && j < N) store_c(C, rsc, csc, i, j, acc[mi][ni][0], alpha, beta);
            if (i < M && j + 1 < N) store_c(C, rsc, csc, i, j + 1, acc[mi][ni][1], alpha, beta);
            if (i + 8 < M && j < N) store_c(C, rsc, csc, i + 8, j, acc[mi][ni][2], alpha, beta);
            if (i + 8 < M && j + 1 < N) store_c(C, rsc, csc, i + 8, j + 1, acc[mi][ni][3], alpha, beta);
        }
}

#define TF32_KERNEL(NAME, A_T, B_T)                                        \
    extern "C" __global__ void __launch_bounds__(256, 2) NAME(GEMM_ARGS) { \
        tf32_gemm<A_T, B_T>(M, N, K, alpha, A, rsa, csa, bsa, B, rsb, csb,  \
                            bsb, beta, C, rsc, csc, bsc);                 \
    }
GEMM_LAYOUTS(TF32_KERNEL, matmul_tf32)
#endif  // !GRADLAB_CPU_HARNESS

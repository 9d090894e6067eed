// Single-precision GEMM, several versions side by side, from the plainest to
// the fastest: C = alpha * A·B + beta * C.
//
// Every kernel takes the same arguments. A is M×K, B is K×N, C is M×N, each
// with a row stride and a column stride (so a transposed operand is just
// swapped strides) and a batch stride applied per blockIdx.z. When beta is 0,
// C is written without being read, as BLAS does, so NaNs already there vanish.
// Every kernel bounds-checks its tails: any M, N, K >= 0 is valid.

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
// Global -> register -> shared tile staging used by the faster kernels.
//
// Reads an R×C window (rows r0.., columns c0..) of a strided matrix into
// registers, PER floats per thread, then hands them to a store callback.
// Three ways to read, chosen per tile and the same for the whole block:
//   0: the row is contiguous, 16-byte aligned and the tile fully inside:
//      one float4 load per four elements;
//   1: neighbouring threads take neighbouring columns (column stride small);
//   2: neighbouring threads take neighbouring rows (a transposed operand).
// Elements outside the matrix read as 0, which adds nothing to the products.
template <int R, int C, int NT>
struct TileLoader {
    static constexpr int PER = R * C / NT;
    static_assert(PER % 4 == 0, "tile must give every thread a multiple of 4 elements");
    float v[PER];
    int mode;

    __device__ __forceinline__ void fetch(const float* __restrict__ X, i64 rs, i64 cs, int rows,
                                          int cols, int r0, int c0) {
        const int tid = threadIdx.x;
        const bool full = (r0 + R <= rows) && (c0 + C <= cols);
        if (cs == 1 && full && (rs & 3) == 0 && (((unsigned long long)X) & 15) == 0) {
            mode = 0;
#pragma unroll
            for (int q = 0; q < PER / 4; ++q) {
                const int idx = tid + q * NT;
                const int r = idx / (C / 4), c = (idx % (C / 4)) * 4;
                const float4 f = *reinterpret_cast<const float4*>(X + (i64)(r0 + r) * rs + (c0 + c));
                v[4 * q] = f.x;
                v[4 * q + 1] = f.y;
                v[4 * q + 2] = f.z;
                v[4 * q + 3] = f.w;
            }
        } else if (cs <= rs) {
            mode = 1;
#pragma unroll
            for (int q = 0; q < PER; ++q) {
                const int idx = tid + q * NT;
                const int r = idx / C, c = idx % C;
                const int gr = r0 + r, gc = c0 + c;
                v[q] = (gr < rows && gc < cols) ? X[(i64)gr * rs + (i64)gc * cs] : 0.0f;
            }
        } else {
            mode = 2;
#pragma unroll
            for (int q = 0; q < PER; ++q) {
                const int idx = tid + q * NT;
                const int r = idx % R, c = idx / R;
                const int gr = r0 + r, gc = c0 + c;
                v[q] = (gr < rows && gc < cols) ? X[(i64)gr * rs + (i64)gc * cs] : 0.0f;
            }
        }
    }

    template <class Put>
    __device__ __forceinline__ void commit(Put put) const {
        const int tid = threadIdx.x;
        if (mode == 0) {
#pragma unroll
            for (int q = 0; q < PER / 4; ++q) {
                const int idx = tid + q * NT;
                const int r = idx / (C / 4), c = (idx % (C / 4)) * 4;
                put(r, c, v[4 * q]);
                put(r, c + 1, v[4 * q + 1]);
                put(r, c + 2, v[4 * q + 2]);
                put(r, c + 3, v[4 * q + 3]);
            }
        } else if (mode == 1) {
#pragma unroll
            for (int q = 0; q < PER; ++q) {
                const int idx = tid + q * NT;
                put(idx / C, idx % C, v[q]);
            }
        } else {
#pragma unroll
            for (int q = 0; q < PER; ++q) {
                const int idx = tid + q * NT;
                put(idx % R, idx / R, v[q]);
            }
        }
    }
};

// ---------------------------------------------------------------------------
// 4. Vectorised: version 3 plus float4 global loads (when the layout allows),
// float4 shared-memory reads, and a split thread tile (rows ty*4.. and
// 64+ty*4.., same for columns) so that a warp's shared reads hit distinct
// banks and its stores to C are 16-byte wide.
// Block 256, grid (ceil(N/128), ceil(M/128), batch).
extern "C" __global__ void __launch_bounds__(256)
matmul_vectorized(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    constexpr int BM = 128, BN = 128, BK = 8;
    __shared__ __align__(16) float As[BK][BM];
    __shared__ __align__(16) float Bs[BK][BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    TileLoader<BM, BK, 256> la;
    TileLoader<BK, BN, 256> lb;
    float acc[8][8];
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += BK) {
        la.fetch(A, rsa, csa, M, K, m0, k0);
        lb.fetch(B, rsb, csb, K, N, k0, n0);
        la.commit([&](int r, int c, float x) { As[c][r] = x; });
        lb.commit([&](int r, int c, float x) { Bs[r][c] = x; });
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float4 a0 = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&As[kk][64 + ty * 4]);
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[kk][64 + tx * 4]);
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

// ---------------------------------------------------------------------------
// 5. Warp tiling with double buffering: 8 warps each own a 64×32 piece of the
// 128×128 block tile (2 warps down, 4 across); inside a warp the 32 lanes form
// an 8×4 grid and each lane computes two 4×4 sub-tiles in each direction.
// The next K slice is loaded into registers while the current one is
// multiplied, and written to the other half of a double shared buffer, so one
// barrier per slice suffices.
// Block 256, grid (ceil(N/128), ceil(M/128), batch).
extern "C" __global__ void __launch_bounds__(256)
matmul_warp_tiled(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    constexpr int BM = 128, BN = 128, BK = 16;
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    const int tid = threadIdx.x;
    const int warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wn = warp % 4;
    const int lr = lane / 4, lc = lane % 4;
    const int row_base = wm * 64 + lr * 4;  // and row_base + 32
    const int col_base = wn * 32 + lc * 4;  // and col_base + 16
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    TileLoader<BM, BK, 256> la;
    TileLoader<BK, BN, 256> lb;
    float acc[8][8];
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    const int tiles = (K + BK - 1) / BK;
    if (tiles > 0) {
        la.fetch(A, rsa, csa, M, K, m0, 0);
        lb.fetch(B, rsb, csb, K, N, 0, n0);
        la.commit([&](int r, int c, float x) { As[0][c][r] = x; });
        lb.commit([&](int r, int c, float x) { Bs[0][r][c] = x; });
        __syncthreads();
    }
    for (int t = 0; t < tiles; ++t) {
        const int s = t & 1;
        const bool more = t + 1 < tiles;
        if (more) {
            la.fetch(A, rsa, csa, M, K, m0, (t + 1) * BK);
            lb.fetch(B, rsb, csb, K, N, (t + 1) * BK, n0);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float4 a0 = *reinterpret_cast<const float4*>(&As[s][kk][row_base]);
            const float4 a1 = *reinterpret_cast<const float4*>(&As[s][kk][row_base + 32]);
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[s][kk][col_base]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[s][kk][col_base + 16]);
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int r = 0; r < 8; ++r)
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r][c] += a[r] * b[c];
        }
        if (more) {
            la.commit([&](int r, int c, float x) { As[s ^ 1][c][r] = x; });
            lb.commit([&](int r, int c, float x) { Bs[s ^ 1][r][c] = x; });
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

// ---------------------------------------------------------------------------
// 6. Tensor cores, TF32 inputs with f32 accumulation, through the warp-level
// `mma.sync.m16n8k8` instruction (sm_80 and newer). Same 128×128 block tile,
// BK = 16, 8 warps each computing 64×32 as 4×4 mma tiles of 16×8.
// Operands are rounded to TF32 (10-bit mantissa) when read from shared memory,
// so results differ from f32 by about 1e-3 relative: it is a separate variant.
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32):
//   g = lane / 4, t = lane % 4
//   A 16×8:  a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4)
//   B 8×8:   b0 (t, g)  b1 (t+4, g)
//   C 16×8:  c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1)
// Padding of the shared rows (BK+4 for A, BN+8 for B) makes the fragment reads
// of a warp fall in 32 distinct banks.
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

extern "C" __global__ void __launch_bounds__(256)
matmul_tf32_tensor_core(GEMM_ARGS) {
    GEMM_BATCH_OFFSET();
    constexpr int BM = 128, BN = 128, BK = 16;
    constexpr int AS = BK + 4, BS = BN + 8;
    __shared__ __align__(16) float As[2][BM][AS];
    __shared__ __align__(16) float Bs[2][BK][BS];
    const int tid = threadIdx.x;
    const int warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wn = warp % 4;  // warp tile at rows wm*64, cols wn*32
    const int g = lane / 4, t4 = lane % 4;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    TileLoader<BM, BK, 256> la;
    TileLoader<BK, BN, 256> lb;
    float acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[a][b][c] = 0.0f;

    const int tiles = (K + BK - 1) / BK;
    if (tiles > 0) {
        la.fetch(A, rsa, csa, M, K, m0, 0);
        lb.fetch(B, rsb, csb, K, N, 0, n0);
        la.commit([&](int r, int c, float x) { As[0][r][c] = x; });
        lb.commit([&](int r, int c, float x) { Bs[0][r][c] = x; });
        __syncthreads();
    }
    for (int t = 0; t < tiles; ++t) {
        const int s = t & 1;
        const bool more = t + 1 < tiles;
        if (more) {
            la.fetch(A, rsa, csa, M, K, m0, (t + 1) * BK);
            lb.fetch(B, rsb, csb, K, N, (t + 1) * BK, n0);
        }
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                const int r = wm * 64 + mi * 16 + g;
                af[mi][0] = to_tf32(As[s][r][kk + t4]);
                af[mi][1] = to_tf32(As[s][r + 8][kk + t4]);
                af[mi][2] = to_tf32(As[s][r][kk + t4 + 4]);
                af[mi][3] = to_tf32(As[s][r + 8][kk + t4 + 4]);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const int c = wn * 32 + ni * 8 + g;
                bf[ni][0] = to_tf32(Bs[s][kk + t4][c]);
                bf[ni][1] = to_tf32(Bs[s][kk + t4 + 4][c]);
            }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_tf32(acc[mi][ni], af[mi], bf[ni]);
        }
        if (more) {
            la.commit([&](int r, int c, float x) { As[s ^ 1][r][c] = x; });
            lb.commit([&](int r, int c, float x) { Bs[s ^ 1][r][c] = x; });
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

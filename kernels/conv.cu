// 2-D convolution (NCHW, PyTorch semantics) as implicit GEMM: the im2col
// matrix is never built; each tile loader computes which input element a
// (row, column) of the virtual matrix stands for.
//
//   forward          C[oc][n,oh,ow]   = W[oc][ic,kh,kw]   · X~[ic,kh,kw][n,oh,ow]
//   backward data    dX[ic][n,ih,iw]  = W^T[ic][oc,kh,kw] · dY~[oc,kh,kw][n,ih,iw]
//   backward weight  dW[oc][ic,kh,kw] = dY[oc][n,oh,ow]   · X~[n,oh,ow][ic,kh,kw]
// one GEMM per group (blockIdx.z). Backward weight has a long K (batch·OH·OW)
// and a small output, so K is split across blockIdx.z as well; each split
// writes its own slice of a workspace and `conv2d_sum_splits` adds them in a
// fixed order, which keeps the result deterministic (no atomics).
//
// Index arithmetic is kept out of the inner loops: each thread's B column is
// fixed for the whole K loop, so what it stands for (a `Column`: base offset
// and window origin) is computed once per block into a shared table (kept
// there rather than in registers, which the largest tile needs for its
// accumulators); what each k of a K slice
// stands for (a `Tap`: offsets and kernel displacement) is computed by 8
// threads into a small shared table, one slice ahead. A load is then a few
// adds and a bounds check, with no division.

typedef long long i64;

struct ConvParams {
    int batch, in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int kh, kw;
    int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int groups;
};

// An origin that no displacement brings into the image: marks a column or a
// tap outside the problem, so that its loads read as 0.
#define OUTSIDE (-0x20000000)

// The shared tile engine: BM = 16*TM rows, BN = 128 columns, BK = 8, 256
// threads in a 16×16 grid, each holding TM×8 results. Columns of a thread are
// tx*4.. and 64+tx*4.. (rows likewise when TM == 8) so that shared reads are
// conflict-free. The next K slice is fetched into registers while the current
// one is multiplied (double-buffered shared memory, one barrier per slice).
//
// Loads: thread tid reads A at rows tid/8 + 32q, k = tid % 8, and B at column
// tid % 128, k = tid/128 + 2q. A goes to As[k][m ^ 4k]: the XOR spreads the
// warp's 8 k × 4 m stores over 32 banks (without it they would hit 4 banks
// 8 times) and keeps groups of 4 m together for the float4 reads.
template <int TM, class P>
__device__ __forceinline__ void implicit_gemm(const P& p, int M, int N, int k_begin, int k_end) {
    constexpr int BM = 16 * TM, BN = 128, BK = 8, NT = 256;
    constexpr int A_PER = BM * BK / NT;  // TM / 2
    constexpr int B_PER = BK * BN / NT;  // 4
    static_assert(A_PER >= 1 && BM >= 32, "TM must be at least 2");
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    __shared__ typename P::Tap taps[2][BK];
    __shared__ typename P::Column columns[BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int ka = tid % BK;  // this thread's k (within a slice) for A
    float ra[A_PER], rb[B_PER];
    float acc[TM][8];
#pragma unroll
    for (int a = 0; a < TM; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    auto tabulate = [&](int slice, int buf) {
        if (tid < BK) {
            const int k = k_begin + slice * BK + tid;
            taps[buf][tid] = p.tap(k, k < k_end);
        }
    };
    auto fetch = [&](int slice, int buf) {
        const int k = k_begin + slice * BK + ka;
#pragma unroll
        for (int q = 0; q < A_PER; ++q) {
            const int m = m0 + tid / BK + q * (NT / BK);
            ra[q] = (m < M && k < k_end) ? p.a(m, k, taps[buf][ka]) : 0.0f;
        }
        const typename P::Column col = columns[tid % BN];
#pragma unroll
        for (int q = 0; q < B_PER; ++q) rb[q] = p.b(taps[buf][tid / BN + q * (NT / BN)], col);
    };
    auto commit = [&](int s) {
#pragma unroll
        for (int q = 0; q < A_PER; ++q) As[s][ka][(tid / BK + q * (NT / BK)) ^ (4 * ka)] = ra[q];
#pragma unroll
        for (int q = 0; q < B_PER; ++q) Bs[s][tid / BN + q * (NT / BN)][tid % BN] = rb[q];
    };

    const int tiles = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;
    if (tiles > 0) {
        if (tid < BN) columns[tid] = p.column(n0 + tid, n0 + tid < N);
        tabulate(0, 0);
        tabulate(1, 1);
        __syncthreads();
        fetch(0, 0);
        commit(0);
        __syncthreads();
    }
    for (int t = 0; t < tiles; ++t) {
        const int s = t & 1;
        const bool more = t + 1 < tiles;
        if (more) fetch(t + 1, s ^ 1);
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM];
            if constexpr (TM == 8) {
                const float4 a0 = *reinterpret_cast<const float4*>(&As[s][kk][(ty * 4) ^ (4 * kk)]);
                const float4 a1 =
                    *reinterpret_cast<const float4*>(&As[s][kk][(BM / 2 + ty * 4) ^ (4 * kk)]);
                a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
                a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
            } else {
#pragma unroll
                for (int r = 0; r < TM; ++r) a[r] = As[s][kk][(ty * TM + r) ^ (4 * kk)];
            }
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[s][kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[s][kk][64 + tx * 4]);
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int r = 0; r < TM; ++r)
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r][c] += a[r] * b[c];
        }
        if (more) commit(s ^ 1);
        // taps[s] was last read by fetch(t) (in the previous iteration, or
        // the prologue); refill it for slice t + 2.
        if (t + 2 < tiles) tabulate(t + 2, s);
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < TM; ++r) {
        const int m = m0 + (TM == 8 ? (r < 4 ? ty * 4 + r : BM / 2 + ty * 4 + r - 4) : ty * TM + r);
        if (m >= M) continue;
#pragma unroll
        for (int c = 0; c < 8; ++c) {
            const int n = n0 + (c < 4 ? tx * 4 + c : 64 + tx * 4 + c - 4);
            if (n < N) p.store(m, n, acc[r][c]);
        }
    }
}

__device__ __forceinline__ bool inside(int i, int n) { return (unsigned)i < (unsigned)n; }

// ---------------------------------------------------------------- forward --
struct ForwardProblem {
    ConvParams s;
    const float* __restrict__ x;
    const float* __restrict__ w;
    const float* __restrict__ bias;  // may be null
    float* __restrict__ y;
    int g, icg, ocg, khw, ohw, in_hw;

    // k = (ic, kh, kw): its offset within an image's group and its displacement.
    struct Tap {
        i64 off;
        int dh, dw;
    };
    // column = (n, oh, ow): the offset of its window origin and that origin.
    struct Column {
        i64 base;
        int ih0, iw0;
    };

    __device__ __forceinline__ Tap tap(int k, bool valid) const {
        const int ic = k / khw, r = k % khw;
        const int dh = (r / s.kw) * s.dil_h, dw = (r % s.kw) * s.dil_w;
        return Tap{(i64)ic * in_hw + (i64)dh * s.in_w + dw, valid ? dh : OUTSIDE, dw};
    }
    __device__ __forceinline__ Column column(int col, bool valid) const {
        const int n = col / ohw, o = col % ohw;
        const int ih0 = (o / s.out_w) * s.stride_h - s.pad_h;
        const int iw0 = (o % s.out_w) * s.stride_w - s.pad_w;
        const i64 base = ((i64)n * s.in_c + (i64)g * icg) * in_hw + (i64)ih0 * s.in_w + iw0;
        return Column{base, valid ? ih0 : OUTSIDE, iw0};
    }
    // A: weight row oc (within the group), columns (ic, kh, kw) contiguous.
    __device__ __forceinline__ float a(int m, int k, const Tap&) const {
        return w[(i64)(g * ocg + m) * (icg * khw) + k];
    }
    // B: the input element that tap (ic, kh, kw) sees at output (n, oh, ow).
    __device__ __forceinline__ float b(const Tap& t, const Column& c) const {
        return inside(c.ih0 + t.dh, s.in_h) && inside(c.iw0 + t.dw, s.in_w) ? x[c.base + t.off] : 0.0f;
    }
    __device__ __forceinline__ void store(int m, int col, float v) const {
        const int oc = g * ocg + m;
        const int n = col / ohw, o = col % ohw;
        if (bias) v += bias[oc];
        y[((i64)n * s.out_c + oc) * ohw + o] = v;
    }
};

#define CONV_FORWARD(NAME, TM, MIN_BLOCKS)                                                     \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS)                             \
    NAME(ConvParams s, const float* x, const float* w, const float* bias, float* y) {         \
        ForwardProblem p{s, x, w, bias, y, (int)blockIdx.z, s.in_c / s.groups,                 \
                         s.out_c / s.groups, s.kh * s.kw, s.out_h * s.out_w, s.in_h * s.in_w}; \
        implicit_gemm<TM>(p, p.ocg, s.batch * p.ohw, 0, p.icg * p.khw);                        \
    }
CONV_FORWARD(conv2d_forward_m32, 2, 1)
CONV_FORWARD(conv2d_forward_m64, 4, 1)
CONV_FORWARD(conv2d_forward_m128, 8, 2)

// ---------------------------------------------------------- backward data --
struct BackwardDataProblem {
    ConvParams s;
    const float* __restrict__ dy;
    const float* __restrict__ w;
    float* __restrict__ dx;
    int g, icg, ocg, khw, ihw, ohw;

    // k = (oc, kh, kw): offsets in W (of its group) and in an image's dY, and
    // the displacement.
    struct Tap {
        i64 a_off, b_off;
        int dh, dw;
    };
    // column = (n, ih, iw): its image's dY offset and its padded position.
    struct Column {
        i64 base;
        int ihp, iwp;
    };

    __device__ __forceinline__ Tap tap(int k, bool valid) const {
        const int oc = k / khw, r = k % khw;
        const int dh = (r / s.kw) * s.dil_h, dw = (r % s.kw) * s.dil_w;
        return Tap{((i64)g * ocg + oc) * icg * khw + r, (i64)oc * ohw, valid ? dh : -OUTSIDE, dw};
    }
    __device__ __forceinline__ Column column(int col, bool valid) const {
        const int n = col / ihw, i = col % ihw;
        const i64 base = ((i64)n * s.out_c + (i64)g * ocg) * ohw;
        return Column{base, valid ? i / s.in_w + s.pad_h : OUTSIDE, i % s.in_w + s.pad_w};
    }
    // A: W^T, row ic (within the group), columns (oc, kh, kw).
    __device__ __forceinline__ float a(int m, int, const Tap& t) const {
        return w[t.a_off + (i64)m * khw];
    }
    // B: the output gradient that tap (oc, kh, kw) sends to input (n, ih, iw),
    // zero when no output position reaches it with that tap.
    __device__ __forceinline__ float b(const Tap& t, const Column& c) const {
        int oh = c.ihp - t.dh, ow = c.iwp - t.dw;
        if (oh < 0 || ow < 0) return 0.0f;
        if (s.stride_h != 1) {
            if (oh % s.stride_h != 0) return 0.0f;
            oh /= s.stride_h;
        }
        if (s.stride_w != 1) {
            if (ow % s.stride_w != 0) return 0.0f;
            ow /= s.stride_w;
        }
        if (oh >= s.out_h || ow >= s.out_w) return 0.0f;
        return dy[c.base + t.b_off + (i64)oh * s.out_w + ow];
    }
    __device__ __forceinline__ void store(int m, int col, float v) const {
        const int n = col / ihw, i = col % ihw;
        dx[((i64)n * s.in_c + g * icg + m) * ihw + i] = v;
    }
};

#define CONV_BACKWARD_DATA(NAME, TM, MIN_BLOCKS)                                               \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS)                             \
    NAME(ConvParams s, const float* dy, const float* w, float* dx) {                          \
        BackwardDataProblem p{s, dy, w, dx, (int)blockIdx.z, s.in_c / s.groups,                \
                              s.out_c / s.groups, s.kh * s.kw, s.in_h * s.in_w,               \
                              s.out_h * s.out_w};                                             \
        implicit_gemm<TM>(p, p.icg, s.batch * p.ihw, 0, p.ocg * p.khw);                        \
    }
CONV_BACKWARD_DATA(conv2d_backward_data_m32, 2, 1)
CONV_BACKWARD_DATA(conv2d_backward_data_m64, 4, 1)
CONV_BACKWARD_DATA(conv2d_backward_data_m128, 8, 2)

// -------------------------------------------------------- backward weight --
struct BackwardWeightProblem {
    ConvParams s;
    const float* __restrict__ x;
    const float* __restrict__ dy;
    float* __restrict__ out;  // this split's slice: [groups][ocg][icg*khw]
    int g, icg, ocg, khw, ohw, in_hw;

    // k = (n, oh, ow): its dY offset (at the group's first channel), the
    // offset of its window origin in x, and that origin.
    struct Tap {
        i64 a_off, b_off;
        int ih0, iw0;
    };
    // column = (ic, kh, kw): its offset within an image's group and its displacement.
    struct Column {
        i64 off;
        int dh, dw;
    };

    __device__ __forceinline__ Tap tap(int k, bool valid) const {
        const int n = k / ohw, o = k % ohw;
        const int ih0 = (o / s.out_w) * s.stride_h - s.pad_h;
        const int iw0 = (o % s.out_w) * s.stride_w - s.pad_w;
        const i64 b_off = ((i64)n * s.in_c + (i64)g * icg) * in_hw + (i64)ih0 * s.in_w + iw0;
        return Tap{((i64)n * s.out_c + (i64)g * ocg) * ohw + o, b_off, valid ? ih0 : OUTSIDE, iw0};
    }
    __device__ __forceinline__ Column column(int col, bool valid) const {
        const int ic = col / khw, r = col % khw;
        const int dh = (r / s.kw) * s.dil_h, dw = (r % s.kw) * s.dil_w;
        return Column{(i64)ic * in_hw + (i64)dh * s.in_w + dw, valid ? dh : OUTSIDE, dw};
    }
    // A: output gradient, row oc (within the group), columns (n, oh, ow).
    __device__ __forceinline__ float a(int m, int, const Tap& t) const {
        return dy[t.a_off + (i64)m * ohw];
    }
    // B: row (n, oh, ow), column (ic, kh, kw): the input that tap sees there.
    __device__ __forceinline__ float b(const Tap& t, const Column& c) const {
        return inside(t.ih0 + c.dh, s.in_h) && inside(t.iw0 + c.dw, s.in_w) ? x[t.b_off + c.off] : 0.0f;
    }
    __device__ __forceinline__ void store(int m, int col, float v) const {
        out[((i64)g * ocg + m) * (icg * khw) + col] = v;
    }
};

// blockIdx.z = split * groups + group. Split `sp` covers K rows
// [sp*k_chunk, min(K, (sp+1)*k_chunk)) and writes workspace slice `sp`.
#define CONV_BACKWARD_WEIGHT(NAME, TM, MIN_BLOCKS)                                             \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS)                             \
    NAME(ConvParams s, const float* x, const float* dy, float* workspace, int k_chunk) {      \
        const int g = blockIdx.z % s.groups, sp = blockIdx.z / s.groups;                       \
        const int icg = s.in_c / s.groups, ocg = s.out_c / s.groups, khw = s.kh * s.kw;        \
        float* out = workspace + (i64)sp * s.out_c * icg * khw;                                \
        BackwardWeightProblem p{s, x, dy, out, g, icg, ocg, khw, s.out_h * s.out_w,            \
                                s.in_h * s.in_w};                                              \
        const int K = s.batch * p.ohw;                                                         \
        const int kb = sp * k_chunk;                                                           \
        const int ke = min(K, kb + k_chunk);                                                   \
        implicit_gemm<TM>(p, ocg, icg * khw, kb, ke);                                          \
    }
CONV_BACKWARD_WEIGHT(conv2d_backward_weight_m32, 2, 1)
CONV_BACKWARD_WEIGHT(conv2d_backward_weight_m64, 4, 1)
CONV_BACKWARD_WEIGHT(conv2d_backward_weight_m128, 8, 2)

// out[i] = Σ_sp parts[sp*len + i], splits added in order 0, 1, 2, ...
extern "C" __global__ void conv2d_sum_splits(const float* __restrict__ parts, float* __restrict__ out,
                                             int len, int splits) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < len; i += gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int sp = 0; sp < splits; ++sp) acc += parts[(i64)sp * len + i];
        out[i] = acc;
    }
}

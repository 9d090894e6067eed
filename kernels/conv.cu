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

typedef long long i64;

struct ConvParams {
    int batch, in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int kh, kw;
    int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int groups;
};

// The shared tile engine: BM = 16*TM rows, BN = 128 columns, BK = 8, 256
// threads in a 16×16 grid, each holding TM×8 results. Columns of a thread are
// tx*4.. and 64+tx*4.. (rows likewise when TM == 8) so that shared reads are
// conflict-free. The next K slice is fetched into registers while the current
// one is multiplied (double-buffered shared memory, one barrier per slice).
// B_KFAST picks which way neighbouring threads walk when loading B: along
// columns (n) when those are contiguous in memory, along K otherwise.
template <int TM, bool B_KFAST, class P>
__device__ __forceinline__ void implicit_gemm(const P& p, int M, int N, int k_begin, int k_end) {
    constexpr int BM = 16 * TM, BN = 128, BK = 8, NT = 256;
    constexpr int A_PER = BM * BK / NT;  // TM / 2
    constexpr int B_PER = BK * BN / NT;  // 4
    static_assert(A_PER >= 1, "TM must be at least 2");
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    float ra[A_PER], rb[B_PER];
    float acc[TM][8];
#pragma unroll
    for (int a = 0; a < TM; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    auto fetch = [&](int k0) {
#pragma unroll
        for (int q = 0; q < A_PER; ++q) {
            const int idx = tid + q * NT;
            const int m = m0 + idx / BK, k = k0 + idx % BK;
            ra[q] = (m < M && k < k_end) ? p.a(m, k) : 0.0f;
        }
#pragma unroll
        for (int q = 0; q < B_PER; ++q) {
            const int idx = tid + q * NT;
            const int kk = B_KFAST ? idx % BK : idx / BN;
            const int nn = B_KFAST ? idx / BK : idx % BN;
            const int k = k0 + kk, n = n0 + nn;
            rb[q] = (k < k_end && n < N) ? p.b(k, n) : 0.0f;
        }
    };
    auto commit = [&](int s) {
#pragma unroll
        for (int q = 0; q < A_PER; ++q) {
            const int idx = tid + q * NT;
            As[s][idx % BK][idx / BK] = ra[q];
        }
#pragma unroll
        for (int q = 0; q < B_PER; ++q) {
            const int idx = tid + q * NT;
            if (B_KFAST) Bs[s][idx % BK][idx / BK] = rb[q];
            else Bs[s][idx / BN][idx % BN] = rb[q];
        }
    };

    const int tiles = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;
    if (tiles > 0) {
        fetch(k_begin);
        commit(0);
        __syncthreads();
    }
    for (int t = 0; t < tiles; ++t) {
        const int s = t & 1;
        const bool more = t + 1 < tiles;
        if (more) fetch(k_begin + (t + 1) * BK);
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM];
            if constexpr (TM == 8) {
                const float4 a0 = *reinterpret_cast<const float4*>(&As[s][kk][ty * 4]);
                const float4 a1 = *reinterpret_cast<const float4*>(&As[s][kk][BM / 2 + ty * 4]);
                a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
                a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
            } else {
#pragma unroll
                for (int r = 0; r < TM; ++r) a[r] = As[s][kk][ty * TM + r];
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

// ---------------------------------------------------------------- forward --
struct ForwardProblem {
    ConvParams s;
    const float* __restrict__ x;
    const float* __restrict__ w;
    const float* __restrict__ bias;  // may be null
    float* __restrict__ y;
    int g, icg, ocg, khw, ohw;

    // A: weight row oc (within the group), columns (ic, kh, kw) contiguous.
    __device__ __forceinline__ float a(int m, int k) const {
        return w[(i64)(g * ocg + m) * (icg * khw) + k];
    }
    // B: the input element that tap (ic, kh, kw) sees at output (n, oh, ow).
    __device__ __forceinline__ float b(int k, int col) const {
        const int ic = k / khw, r = k % khw;
        const int kh = r / s.kw, kw = r % s.kw;
        const int n = col / ohw, o = col % ohw;
        const int oh = o / s.out_w, ow = o % s.out_w;
        const int ih = oh * s.stride_h - s.pad_h + kh * s.dil_h;
        const int iw = ow * s.stride_w - s.pad_w + kw * s.dil_w;
        if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) return 0.0f;
        return x[(((i64)n * s.in_c + g * icg + ic) * s.in_h + ih) * s.in_w + iw];
    }
    __device__ __forceinline__ void store(int m, int col, float v) const {
        const int oc = g * ocg + m;
        const int n = col / ohw, o = col % ohw;
        if (bias) v += bias[oc];
        y[((i64)n * s.out_c + oc) * ohw + o] = v;
    }
};

#define CONV_FORWARD(NAME, TM)                                                          \
    extern "C" __global__ void __launch_bounds__(256)                                  \
    NAME(ConvParams s, const float* x, const float* w, const float* bias, float* y) {  \
        ForwardProblem p{s, x, w, bias, y, (int)blockIdx.z, s.in_c / s.groups,          \
                         s.out_c / s.groups, s.kh * s.kw, s.out_h * s.out_w};           \
        implicit_gemm<TM, false>(p, p.ocg, s.batch * p.ohw, 0, p.icg * p.khw);          \
    }
CONV_FORWARD(conv2d_forward_m32, 2)
CONV_FORWARD(conv2d_forward_m64, 4)
CONV_FORWARD(conv2d_forward_m128, 8)

// ---------------------------------------------------------- backward data --
struct BackwardDataProblem {
    ConvParams s;
    const float* __restrict__ dy;
    const float* __restrict__ w;
    float* __restrict__ dx;
    int g, icg, ocg, khw, ihw;

    // A: W^T, row ic (within the group), columns (oc, kh, kw).
    __device__ __forceinline__ float a(int m, int k) const {
        const int oc = k / khw, r = k % khw;
        return w[((i64)(g * ocg + oc) * icg + m) * khw + r];
    }
    // B: the output gradient that tap (oc, kh, kw) sends to input (n, ih, iw),
    // zero when no output position reaches it with that tap.
    __device__ __forceinline__ float b(int k, int col) const {
        const int oc = k / khw, r = k % khw;
        const int kh = r / s.kw, kw = r % s.kw;
        const int n = col / ihw, i = col % ihw;
        const int ih = i / s.in_w, iw = i % s.in_w;
        const int th = ih + s.pad_h - kh * s.dil_h;
        const int tw = iw + s.pad_w - kw * s.dil_w;
        if (th < 0 || tw < 0 || th % s.stride_h != 0 || tw % s.stride_w != 0) return 0.0f;
        const int oh = th / s.stride_h, ow = tw / s.stride_w;
        if (oh >= s.out_h || ow >= s.out_w) return 0.0f;
        return dy[(((i64)n * s.out_c + g * ocg + oc) * s.out_h + oh) * s.out_w + ow];
    }
    __device__ __forceinline__ void store(int m, int col, float v) const {
        const int n = col / ihw, i = col % ihw;
        dx[((i64)n * s.in_c + g * icg + m) * ihw + i] = v;
    }
};

#define CONV_BACKWARD_DATA(NAME, TM)                                                      \
    extern "C" __global__ void __launch_bounds__(256)                                    \
    NAME(ConvParams s, const float* dy, const float* w, float* dx) {                     \
        BackwardDataProblem p{s, dy, w, dx, (int)blockIdx.z, s.in_c / s.groups,           \
                              s.out_c / s.groups, s.kh * s.kw, s.in_h * s.in_w};          \
        implicit_gemm<TM, false>(p, p.icg, s.batch * p.ihw, 0, p.ocg * p.khw);            \
    }
CONV_BACKWARD_DATA(conv2d_backward_data_m32, 2)
CONV_BACKWARD_DATA(conv2d_backward_data_m64, 4)
CONV_BACKWARD_DATA(conv2d_backward_data_m128, 8)

// -------------------------------------------------------- backward weight --
struct BackwardWeightProblem {
    ConvParams s;
    const float* __restrict__ x;
    const float* __restrict__ dy;
    float* __restrict__ out;  // this split's slice: [groups][ocg][icg*khw]
    int g, icg, ocg, khw, ohw;

    // A: output gradient, row oc (within the group), columns (n, oh, ow).
    __device__ __forceinline__ float a(int m, int k) const {
        const int n = k / ohw, o = k % ohw;
        return dy[((i64)n * s.out_c + g * ocg + m) * ohw + o];
    }
    // B: row (n, oh, ow), column (ic, kh, kw): the input that tap sees there.
    __device__ __forceinline__ float b(int k, int col) const {
        const int n = k / ohw, o = k % ohw;
        const int oh = o / s.out_w, ow = o % s.out_w;
        const int ic = col / khw, r = col % khw;
        const int kh = r / s.kw, kw = r % s.kw;
        const int ih = oh * s.stride_h - s.pad_h + kh * s.dil_h;
        const int iw = ow * s.stride_w - s.pad_w + kw * s.dil_w;
        if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) return 0.0f;
        return x[(((i64)n * s.in_c + g * icg + ic) * s.in_h + ih) * s.in_w + iw];
    }
    __device__ __forceinline__ void store(int m, int col, float v) const {
        out[((i64)g * ocg + m) * (icg * khw) + col] = v;
    }
};

// blockIdx.z = split * groups + group. Split `sp` covers K rows
// [sp*k_chunk, min(K, (sp+1)*k_chunk)) and writes workspace slice `sp`.
#define CONV_BACKWARD_WEIGHT(NAME, TM)                                                    \
    extern "C" __global__ void __launch_bounds__(256)                                    \
    NAME(ConvParams s, const float* x, const float* dy, float* workspace, int k_chunk) { \
        const int g = blockIdx.z % s.groups, sp = blockIdx.z / s.groups;                  \
        const int icg = s.in_c / s.groups, ocg = s.out_c / s.groups, khw = s.kh * s.kw;   \
        float* out = workspace + (i64)sp * s.out_c * icg * khw;                           \
        BackwardWeightProblem p{s, x, dy, out, g, icg, ocg, khw, s.out_h * s.out_w};      \
        const int K = s.batch * p.ohw;                                                    \
        const int kb = sp * k_chunk;                                                      \
        const int ke = min(K, kb + k_chunk);                                              \
        implicit_gemm<TM, true>(p, ocg, icg * khw, kb, ke);                               \
    }
CONV_BACKWARD_WEIGHT(conv2d_backward_weight_m32, 2)
CONV_BACKWARD_WEIGHT(conv2d_backward_weight_m64, 4)
CONV_BACKWARD_WEIGHT(conv2d_backward_weight_m128, 8)

// out[i] = Σ_sp parts[sp*len + i], splits added in order 0, 1, 2, ...
extern "C" __global__ void conv2d_sum_splits(const float* __restrict__ parts, float* __restrict__ out,
                                             int len, int splits) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < len; i += gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int sp = 0; sp < splits; ++sp) acc += parts[(i64)sp * len + i];
        out[i] = acc;
    }
}

// Reductions, softmax and cross-entropy over rows. Every reduction runs in a
// fixed order (per-thread strided partials, then a fixed tree), so a given
// launch configuration always produces the same bits.

typedef long long i64;

#define RED_SUM 0
#define RED_MEAN 1
#define RED_MAX 2
#define RED_MIN 3

#define BLOCK 256

__device__ __forceinline__ float red_identity(int op) {
    if (op == RED_MAX) return -__int_as_float(0x7f800000);
    if (op == RED_MIN) return __int_as_float(0x7f800000);
    return 0.0f;
}

// NaN-propagating max/min, like torch.max / torch.min.
__device__ __forceinline__ float red_combine(int op, float a, float b) {
    if (op == RED_MAX) return (a > b || isnan(a)) ? a : b;
    if (op == RED_MIN) return (a < b || isnan(a)) ? a : b;
    return a + b;
}

// Reduces `v` over the block (BLOCK threads); every thread gets the result.
__device__ __forceinline__ float block_reduce(int op, float v) {
    __shared__ float partial[BLOCK / 32];
    __shared__ float result;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v = red_combine(op, v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < BLOCK / 32 ? partial[lane] : red_identity(op);
#pragma unroll
        for (int o = 16; o > 0; o /= 2) w = red_combine(op, w, __shfl_xor_sync(0xffffffffu, w, o));
        if (lane == 0) result = w;
    }
    __syncthreads();
    const float r = result;
    __syncthreads();  // `partial` and `result` may be reused by the next call
    return r;
}

// x viewed as [outer, len] contiguous; out[o] = reduce(x[o, :]). One block per row.
extern "C" __global__ void __launch_bounds__(BLOCK)
reduce_rows(int op, const float* __restrict__ x, float* __restrict__ out, i64 outer, i64 len) {
    for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
        const float* xr = x + row * len;
        float acc = red_identity(op);
        for (i64 j = threadIdx.x; j < len; j += BLOCK) acc = red_combine(op, acc, xr[j]);
        acc = block_reduce(op, acc);
        if (threadIdx.x == 0) out[row] = (op == RED_MEAN) ? acc / (float)len : acc;
    }
}

// x viewed as [outer, len, inner] contiguous; out[o, i] = reduce(x[o, :, i]).
// One thread per output; neighbouring threads read neighbouring addresses.
extern "C" __global__ void reduce_middle(int op, const float* __restrict__ x, float* __restrict__ out,
                                         i64 outer, i64 len, i64 inner) {
    const i64 total = outer * inner;
    for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
        const i64 o = t / inner, i = t % inner;
        const float* xp = x + o * len * inner + i;
        float acc = red_identity(op);
        for (i64 j = 0; j < len; ++j) acc = red_combine(op, acc, xp[j * inner]);
        out[t] = (op == RED_MEAN) ? acc / (float)len : acc;
    }
}

// Row-wise softmax (log_softmax when `take_log` != 0) of x [rows, cols].
extern "C" __global__ void __launch_bounds__(BLOCK)
softmax_rows(const float* __restrict__ x, float* __restrict__ y, i64 rows, i64 cols, int take_log) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        float m = red_identity(RED_MAX);
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) m = red_combine(RED_MAX, m, xr[j]);
        m = block_reduce(RED_MAX, m);
        float s = 0.0f;
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) s += expf(xr[j] - m);
        s = block_reduce(RED_SUM, s);
        if (take_log) {
            const float lse = m + logf(s);
            for (i64 j = threadIdx.x; j < cols; j += BLOCK) yr[j] = xr[j] - lse;
        } else {
            const float inv = 1.0f / s;
            for (i64 j = threadIdx.x; j < cols; j += BLOCK) yr[j] = expf(xr[j] - m) * inv;
        }
    }
}

// Cross-entropy of logits [rows, cols] against class indices:
// loss[r] = logsumexp(x[r, :]) - x[r, target[r]]. A target outside 0..cols
// gives NaN, so a bad label cannot pass silently.
extern "C" __global__ void __launch_bounds__(BLOCK)
cross_entropy_forward(const float* __restrict__ x, const unsigned* __restrict__ target,
                      float* __restrict__ loss, i64 rows, i64 cols) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* xr = x + row * cols;
        float m = red_identity(RED_MAX);
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) m = red_combine(RED_MAX, m, xr[j]);
        m = block_reduce(RED_MAX, m);
        float s = 0.0f;
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) s += expf(xr[j] - m);
        s = block_reduce(RED_SUM, s);
        if (threadIdx.x == 0) {
            const unsigned t = target[row];
            loss[row] = (t < cols) ? m + logf(s) - xr[t] : __int_as_float(0x7fffffff);
        }
    }
}

// d loss / d logits: (softmax(x[r]) - onehot(target[r])) * grad_loss[r * grad_stride] * scale.
// grad_stride 0 broadcasts one upstream gradient (a mean or sum loss) to all
// rows; scale is 1/rows for a mean.
extern "C" __global__ void __launch_bounds__(BLOCK)
cross_entropy_backward(const float* __restrict__ x, const unsigned* __restrict__ target,
                       const float* __restrict__ grad_loss, i64 grad_stride, float scale,
                       float* __restrict__ dx, i64 rows, i64 cols) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* xr = x + row * cols;
        float* dr = dx + row * cols;
        float m = red_identity(RED_MAX);
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) m = red_combine(RED_MAX, m, xr[j]);
        m = block_reduce(RED_MAX, m);
        float s = 0.0f;
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) s += expf(xr[j] - m);
        s = block_reduce(RED_SUM, s);
        const unsigned t = target[row];
        const float g = grad_loss[row * grad_stride] * scale;
        const float inv = 1.0f / s;
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) {
            const float p = expf(xr[j] - m) * inv;
            dr[j] = (t < cols) ? (p - (j == (i64)t ? 1.0f : 0.0f)) * g : __int_as_float(0x7fffffff);
        }
    }
}

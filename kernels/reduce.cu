// Reductions, softmax and cross-entropy over rows. Every reduction runs in a
// fixed order (per-thread strided partials, then a fixed tree; long axes in
// fixed chunks whose partials a second pass adds in chunk order), so a given
// shape always produces the same bits, run after run.

typedef long long i64;

#define RED_SUM 0
#define RED_MEAN 1
#define RED_MAX 2
#define RED_MIN 3

#define BLOCK 256

// Codes written to the device status block (see `status_error` in device.rs).
#define STATUS_TARGET_OUT_OF_RANGE 1

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

// The final value of a reduction: a mean divides the sum by `count`.
__device__ __forceinline__ float red_finish(int op, float acc, i64 count) {
    return op == RED_MEAN ? acc / (float)count : acc;
}

// x viewed as [outer, len] contiguous, each row cut into gridDim.x chunks of
// `chunk` elements: out[row * gridDim.x + c] = reduce(chunk c of row). One
// block per (chunk, row); rows beyond the grid are strided over. With one
// chunk this is the whole reduction (a mean divides by `count`); with more,
// a second launch of this kernel (or reduce_middle) combines the chunks.
extern "C" __global__ void __launch_bounds__(BLOCK)
reduce_rows(int op, const float* __restrict__ x, float* __restrict__ out, i64 outer, i64 len,
            i64 chunk, i64 count) {
    const i64 begin = (i64)blockIdx.x * chunk;
    const i64 end = min(len, begin + chunk);
    for (i64 row = blockIdx.y; row < outer; row += gridDim.y) {
        const float* xr = x + row * len;
        float acc = red_identity(op);
        for (i64 j = begin + threadIdx.x; j < end; j += BLOCK) acc = red_combine(op, acc, xr[j]);
        acc = block_reduce(op, acc);
        if (threadIdx.x == 0) out[row * gridDim.x + blockIdx.x] = red_finish(op, acc, count);
    }
}

// x viewed as [outer, len, inner] contiguous, the middle axis cut into
// `chunks` pieces of `chunk` elements: out[o, c, i] = reduce(x[o, chunk c, i]).
// One thread per output; neighbouring threads read neighbouring addresses.
// A mean divides by `count` (give the sum op and combine later when chunks > 1).
extern "C" __global__ void reduce_middle(int op, const float* __restrict__ x, float* __restrict__ out,
                                         i64 outer, i64 len, i64 inner, i64 chunks, i64 chunk,
                                         i64 count) {
    const i64 total = outer * chunks * inner;
    for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
        const i64 i = t % inner, c = (t / inner) % chunks, o = t / (inner * chunks);
        const i64 begin = c * chunk, end = min(len, begin + chunk);
        const float* xp = x + (o * len) * inner + i;
        float acc = red_identity(op);
        for (i64 j = begin; j < end; ++j) acc = red_combine(op, acc, xp[j * inner]);
        out[t] = red_finish(op, acc, count);
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

// ----------------------------------------------------------- cross-entropy --
// PyTorch's torch.nn.functional.cross_entropy on logits [rows, cols] and i64
// class indices: a row whose target equals `ignore_index` counts for nothing
// (loss 0, gradient 0, and not in a mean's denominator); any other target
// outside 0..cols is an error, reported through the status block (the first
// one found wins) while the row's loss and gradient become NaN. With label
// smoothing eps the target distribution is (1 - eps) * onehot + eps / cols:
//   loss = (1 - eps) * (lse - x[t]) + eps * (lse - mean(x)),  lse = logsumexp(x).

__device__ __forceinline__ void report_bad_target(i64* status, i64 row, i64 target, i64 cols,
                                                  i64 ignore_index) {
    unsigned long long* word = reinterpret_cast<unsigned long long*>(status);
    if (atomicCAS(word, 0ull, (unsigned long long)STATUS_TARGET_OUT_OF_RANGE) == 0ull) {
        status[1] = row;
        status[2] = target;
        status[3] = cols;
        status[4] = ignore_index;
    }
}

// Max and logsumexp of one row over the block.
__device__ __forceinline__ void row_logsumexp(const float* xr, i64 cols, float* m_out, float* s_out) {
    float m = red_identity(RED_MAX);
    for (i64 j = threadIdx.x; j < cols; j += BLOCK) m = red_combine(RED_MAX, m, xr[j]);
    m = block_reduce(RED_MAX, m);
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < cols; j += BLOCK) s += expf(xr[j] - m);
    *m_out = m;
    *s_out = block_reduce(RED_SUM, s);
}

// loss[r] for every row (0 for an ignored row).
extern "C" __global__ void __launch_bounds__(BLOCK)
cross_entropy_rows(const float* __restrict__ x, const i64* __restrict__ target, i64 rows, i64 cols,
                   i64 ignore_index, float smoothing, float* __restrict__ loss, i64* status) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const i64 t = target[row];  // the same for the whole block: branches are uniform
        if (t == ignore_index) {
            if (threadIdx.x == 0) loss[row] = 0.0f;
            continue;
        }
        if (t < 0 || t >= cols) {
            if (threadIdx.x == 0) {
                report_bad_target(status, row, t, cols, ignore_index);
                loss[row] = __int_as_float(0x7fffffff);
            }
            continue;
        }
        const float* xr = x + row * cols;
        float m, s;
        row_logsumexp(xr, cols, &m, &s);
        float sum_x = 0.0f;
        if (smoothing != 0.0f) {
            for (i64 j = threadIdx.x; j < cols; j += BLOCK) sum_x += xr[j];
            sum_x = block_reduce(RED_SUM, sum_x);
        }
        if (threadIdx.x == 0) {
            const float lse = m + logf(s);
            float l = (1.0f - smoothing) * (lse - xr[t]);
            if (smoothing != 0.0f) l += smoothing * (lse - sum_x / (float)cols);
            loss[row] = l;
        }
    }
}

// out[0] = Σ loss (sum) or Σ loss / counted rows (mean), and total_weight[0]
// = the number of rows not ignored (PyTorch's total_weight; a mean over no
// counted row is 0/0 = NaN, as in PyTorch). One block, fixed order.
extern "C" __global__ void __launch_bounds__(BLOCK)
cross_entropy_reduce(const float* __restrict__ loss, const i64* __restrict__ target, i64 rows,
                     i64 ignore_index, int mean, float* __restrict__ out,
                     float* __restrict__ total_weight) {
    float sum = 0.0f, counted = 0.0f;
    for (i64 r = threadIdx.x; r < rows; r += BLOCK) {
        sum += loss[r];
        counted += target[r] != ignore_index ? 1.0f : 0.0f;
    }
    sum = block_reduce(RED_SUM, sum);
    counted = block_reduce(RED_SUM, counted);
    if (threadIdx.x == 0) {
        out[0] = mean ? sum / counted : sum;
        total_weight[0] = counted;
    }
}

// d loss / d logits in one pass: for row r with target t,
//   dx[r, c] = (softmax(x[r])[c] - (1 - eps) * [c == t] - eps / cols) * g_r,
//   g_r = grad[r * grad_stride] * scale (/ total_weight[0] when given),
// and 0 for an ignored row. grad_stride 0 broadcasts one upstream gradient
// (a summed or averaged loss); total_weight makes it a mean over counted rows.
extern "C" __global__ void __launch_bounds__(BLOCK)
cross_entropy_backward(const float* __restrict__ x, const i64* __restrict__ target, i64 rows,
                       i64 cols, i64 ignore_index, float smoothing, const float* __restrict__ grad,
                       i64 grad_stride, float scale, const float* __restrict__ total_weight,
                       float* __restrict__ dx, i64* status) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* xr = x + row * cols;
        float* dr = dx + row * cols;
        const i64 t = target[row];
        if (t == ignore_index) {
            for (i64 j = threadIdx.x; j < cols; j += BLOCK) dr[j] = 0.0f;
            continue;
        }
        if (t < 0 || t >= cols) {
            if (threadIdx.x == 0) report_bad_target(status, row, t, cols, ignore_index);
            for (i64 j = threadIdx.x; j < cols; j += BLOCK) dr[j] = __int_as_float(0x7fffffff);
            continue;
        }
        float m, s;
        row_logsumexp(xr, cols, &m, &s);
        float g = grad[row * grad_stride] * scale;
        if (total_weight) g /= total_weight[0];
        const float inv = 1.0f / s;
        const float uniform = smoothing / (float)cols;
        for (i64 j = threadIdx.x; j < cols; j += BLOCK) {
            const float p = expf(xr[j] - m) * inv;
            dr[j] = (p - (j == t ? 1.0f - smoothing : 0.0f) - uniform) * g;
        }
    }
}

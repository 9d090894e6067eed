// 2-D max pooling (NCHW, PyTorch semantics) with the argmax recorded as a
// 64-bit index within the input plane (ih * in_w + iw; -1 for a window that
// saw no element), and a backward pass that gathers: each input element
// sums, in output order, the gradients of the windows it won. No atomics, so
// the result is deterministic and equals the CPU reference bit for bit.

typedef long long i64;

struct PoolParams {
    int planes;  // batch * channels
    int in_h, in_w, out_h, out_w;
    int kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

#define NO_ARGMAX (-1LL)

// One thread per output element. Ties keep the first maximum in scan order;
// a NaN beats every number and the last NaN of a window wins (PyTorch's rule).
extern "C" __global__ void max_pool2d_forward(PoolParams p, const float* __restrict__ x,
                                              float* __restrict__ y, i64* __restrict__ argmax) {
    const i64 total = (i64)p.planes * p.out_h * p.out_w;
    const i64 plane_len = (i64)p.in_h * p.in_w;
    for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < total; o += (i64)gridDim.x * blockDim.x) {
        const int ow = (int)(o % p.out_w);
        const int oh = (int)((o / p.out_w) % p.out_h);
        const i64 plane = o / ((i64)p.out_w * p.out_h);
        const float* xp = x + plane * plane_len;
        float best = -__int_as_float(0x7f800000);
        i64 best_idx = NO_ARGMAX;
        for (int i = 0; i < p.kh; ++i) {
            const int ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
            if (ih < 0 || ih >= p.in_h) continue;
            for (int j = 0; j < p.kw; ++j) {
                const int iw = ow * p.stride_w - p.pad_w + j * p.dil_w;
                if (iw < 0 || iw >= p.in_w) continue;
                const i64 idx = (i64)ih * p.in_w + iw;
                const float v = xp[idx];
                if (best_idx == NO_ARGMAX || v > best || isnan(v)) {
                    best = v;
                    best_idx = idx;
                }
            }
        }
        y[o] = best;
        argmax[o] = best_idx;
    }
}

// First output index along one axis whose window can reach input position i.
__device__ __forceinline__ int first_window(int i, int pad, int k, int dil, int stride) {
    const int lo = i + pad - (k - 1) * dil;  // window start must be >= this
    return lo <= 0 ? 0 : (lo + stride - 1) / stride;
}

// One thread per input element: visits every window that could contain it
// and adds the gradient of those whose argmax is this element.
extern "C" __global__ void max_pool2d_backward(PoolParams p, const float* __restrict__ dy,
                                               const i64* __restrict__ argmax,
                                               float* __restrict__ dx) {
    const i64 total = (i64)p.planes * p.in_h * p.in_w;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x) {
        const int iw = (int)(e % p.in_w);
        const int ih = (int)((e / p.in_w) % p.in_h);
        const i64 plane = e / ((i64)p.in_w * p.in_h);
        const i64 me = (i64)ih * p.in_w + iw;
        const int oh_lo = first_window(ih, p.pad_h, p.kh, p.dil_h, p.stride_h);
        const int oh_hi = min(p.out_h - 1, (ih + p.pad_h) / p.stride_h);
        const int ow_lo = first_window(iw, p.pad_w, p.kw, p.dil_w, p.stride_w);
        const int ow_hi = min(p.out_w - 1, (iw + p.pad_w) / p.stride_w);
        const i64 base = plane * p.out_h * p.out_w;
        float acc = 0.0f;
        for (int oh = oh_lo; oh <= oh_hi; ++oh)
            for (int ow = ow_lo; ow <= ow_hi; ++ow) {
                const i64 o = base + (i64)oh * p.out_w + ow;
                if (argmax[o] == me) acc += dy[o];
            }
        dx[e] = acc;
    }
}

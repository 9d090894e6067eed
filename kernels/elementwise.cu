// Elementwise kernels: broadcasting binary ops over strided operands, unary
// ops on contiguous buffers, fill, and strided copy (which makes a view
// contiguous). Ops are chosen by a small integer so that one compiled kernel
// serves them all; the branch is uniform across a launch. The output of the
// binary and unary kernels may be an input (in-place updates), so those
// pointers are not __restrict__.
//
// Dense operands (the common case) take the contiguous kernels: plain
// indexing, four elements per float4 when every pointer is 16-byte aligned.
// Only views with gaps or broadcasts take the strided kernels, whose
// multi-index walk uses 32-bit division when the element count allows
// (the host merges dimensions first, so the rank is as small as it can be).

typedef long long i64;

#define MAX_RANK 6

// Shape and strides (in elements) of up to three operands: 0 = output,
// 1 = first input, 2 = second input. A broadcast dimension has stride 0.
struct StridedArgs {
    int rank;
    int pad_;
    i64 shape[MAX_RANK];
    i64 strides[3][MAX_RANK];
    i64 offsets[3];
};

// Binary op codes: stable numbers, which the host's op enum maps onto (see
// `BinaryOp::code` in ops/elementwise.rs); never renumber, only add.
#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3
#define OP_MAX 4
#define OP_RELU_BACKWARD 7  // a * (b > 0): gradient a masked by relu input b

__device__ __forceinline__ float binary_apply(int op, float a, float b) {
    switch (op) {
        case OP_ADD: return a + b;
        case OP_SUB: return a - b;
        case OP_MUL: return a * b;
        case OP_DIV: return a / b;
        case OP_MAX: return (a > b || isnan(a)) ? a : b;
        case OP_RELU_BACKWARD: return b > 0.0f ? a : 0.0f;
        default: return __int_as_float(0x7fffffff);
    }
}

// Offsets of element `linear` (row-major over shape) in each operand. I is
// the index type of the division: int when the element count fits.
template <class I>
__device__ __forceinline__ void strided_offsets(const StridedArgs& s, i64 linear, int operands,
                                                i64* off) {
    for (int t = 0; t < operands; ++t) off[t] = s.offsets[t];
    I rest = (I)linear;
    for (int d = s.rank - 1; d >= 0; --d) {
        const I n = (I)s.shape[d];
        const I idx = rest % n;
        rest /= n;
        for (int t = 0; t < operands; ++t) off[t] += (i64)idx * s.strides[t][d];
    }
}

template <class I>
__device__ __forceinline__ void binary_strided_body(int op, const StridedArgs& s, i64 numel,
                                                    const float* a, const float* b, float* out) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < numel; i += (i64)gridDim.x * blockDim.x) {
        i64 off[3];
        strided_offsets<I>(s, i, 3, off);
        out[off[0]] = binary_apply(op, a[off[1]], b[off[2]]);
    }
}

extern "C" __global__ void binary_strided(int op, StridedArgs s, i64 numel, const float* a,
                                          const float* b, float* out) {
    binary_strided_body<i64>(op, s, numel, a, b, out);
}

// numel < 2^31: the same walk with 32-bit division.
extern "C" __global__ void binary_strided_i32(int op, StridedArgs s, i64 numel, const float* a,
                                              const float* b, float* out) {
    binary_strided_body<int>(op, s, numel, a, b, out);
}

__device__ __forceinline__ bool all_aligned16(const void* a, const void* b, const void* c) {
    return ((((unsigned long long)a) | ((unsigned long long)b) | ((unsigned long long)c)) & 15) == 0;
}

// All three operands dense and of the same shape (pointers already at their
// first element). Four elements at a time when all are 16-byte aligned.
extern "C" __global__ void binary_contiguous(int op, i64 numel, const float* a, const float* b,
                                             float* out) {
    const i64 stride = (i64)gridDim.x * blockDim.x;
    const i64 first = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    i64 done = 0;
    if (all_aligned16(a, b, out)) {
        const i64 quads = numel / 4;
        for (i64 q = first; q < quads; q += stride) {
            const float4 x = reinterpret_cast<const float4*>(a)[q];
            const float4 y = reinterpret_cast<const float4*>(b)[q];
            reinterpret_cast<float4*>(out)[q] =
                make_float4(binary_apply(op, x.x, y.x), binary_apply(op, x.y, y.y),
                            binary_apply(op, x.z, y.z), binary_apply(op, x.w, y.w));
        }
        done = quads * 4;
    }
    for (i64 i = done + first; i < numel; i += stride) out[i] = binary_apply(op, a[i], b[i]);
}

// Unary op codes: stable numbers, as for the binary ones (see
// `UnaryOp::code_and_param`). `param` is the exponent of POWF and the scalar
// of ADD_SCALAR / MUL_SCALAR.
#define UOP_NEG 0
#define UOP_EXP 1
#define UOP_LOG 2
#define UOP_SQRT 3
#define UOP_RELU 4
#define UOP_SIGMOID 5
#define UOP_TANH 6
#define UOP_ABS 7
#define UOP_POWF 8
#define UOP_ADD_SCALAR 9
#define UOP_MUL_SCALAR 10
#define UOP_GT_MASK 12  // 1 where x > param, else 0 (NaN gives 0)

__device__ __forceinline__ float unary_apply(int op, float x, float param) {
    switch (op) {
        case UOP_NEG: return -x;
        case UOP_EXP: return expf(x);
        case UOP_LOG: return logf(x);
        case UOP_SQRT: return sqrtf(x);
        case UOP_RELU: return x > 0.0f ? x : (isnan(x) ? x : 0.0f);
        case UOP_SIGMOID: return 1.0f / (1.0f + expf(-x));
        case UOP_TANH: return tanhf(x);
        case UOP_ABS: return fabsf(x);
        case UOP_POWF: return powf(x, param);
        case UOP_ADD_SCALAR: return x + param;
        case UOP_MUL_SCALAR: return x * param;
        case UOP_GT_MASK: return x > param ? 1.0f : 0.0f;
        default: return __int_as_float(0x7fffffff);
    }
}

// Four elements at a time when both pointers are 16-byte aligned.
extern "C" __global__ void unary_contiguous(int op, float param, i64 numel, const float* x,
                                            float* out) {
    const i64 stride = (i64)gridDim.x * blockDim.x;
    const i64 first = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    i64 done = 0;
    if (all_aligned16(x, out, out)) {
        const i64 quads = numel / 4;
        for (i64 q = first; q < quads; q += stride) {
            const float4 v = reinterpret_cast<const float4*>(x)[q];
            reinterpret_cast<float4*>(out)[q] =
                make_float4(unary_apply(op, v.x, param), unary_apply(op, v.y, param),
                            unary_apply(op, v.z, param), unary_apply(op, v.w, param));
        }
        done = quads * 4;
    }
    for (i64 i = done + first; i < numel; i += stride) out[i] = unary_apply(op, x[i], param);
}

extern "C" __global__ void fill_f32(float* __restrict__ out, i64 numel, float value) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < numel; i += (i64)gridDim.x * blockDim.x)
        out[i] = value;
}

// out (operand 0) <- x (operand 1), both strided over the same shape.
template <class I>
__device__ __forceinline__ void copy_strided_body(const StridedArgs& s, i64 numel,
                                                  const float* __restrict__ x, float* __restrict__ out) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < numel; i += (i64)gridDim.x * blockDim.x) {
        i64 off[2];
        strided_offsets<I>(s, i, 2, off);
        out[off[0]] = x[off[1]];
    }
}

extern "C" __global__ void copy_strided(StridedArgs s, i64 numel, const float* __restrict__ x,
                                        float* __restrict__ out) {
    copy_strided_body<i64>(s, numel, x, out);
}

extern "C" __global__ void copy_strided_i32(StridedArgs s, i64 numel, const float* __restrict__ x,
                                            float* __restrict__ out) {
    copy_strided_body<int>(s, numel, x, out);
}

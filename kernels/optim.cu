// Optimizer updates, applied in place outside the autograd graph.

typedef long long i64;

// One SGD step with PyTorch's semantics (torch.optim.SGD):
//   d = grad + weight_decay * param
//   if momentum != 0:
//       buf = first_step ? d : momentum * buf + (1 - dampening) * d
//       d = nesterov ? d + momentum * buf : buf
//   param -= lr * d
// `buf` is not touched when momentum is 0 (it may then be null).
extern "C" __global__ void sgd_step(float* __restrict__ param, const float* __restrict__ grad,
                                    float* __restrict__ buf, i64 n, float lr, float momentum,
                                    float dampening, float weight_decay, int nesterov, int first_step) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const float p = param[i];
        float d = grad[i];
        if (weight_decay != 0.0f) d += weight_decay * p;
        if (momentum != 0.0f) {
            const float b = first_step ? d : momentum * buf[i] + (1.0f - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        param[i] = p - lr * d;
    }
}

// One Adam(W) step with PyTorch's semantics (torch.optim.Adam / AdamW), for
// step number `step` (1 on the first), with the bias corrections folded into
// `step_size = lr / (1 - beta1^step)` and `bc2_sqrt = sqrt(1 - beta2^step)`
// on the host:
//   param *= 1 - lr * weight_decay           (AdamW: decoupled != 0)
//   grad  += weight_decay * param            (Adam)
//   m = m + (1 - beta1) * (grad - m);  v = beta2 * v + (1 - beta2) * grad^2
//   param -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
extern "C" __global__ void adam_step(float* __restrict__ param, const float* __restrict__ grad,
                                     float* __restrict__ m, float* __restrict__ v, i64 n,
                                     float step_size, float beta1, float beta2, float bc2_sqrt,
                                     float eps, float lr, float weight_decay, int decoupled) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        float p = param[i];
        float g = grad[i];
        if (weight_decay != 0.0f) {
            if (decoupled) p *= 1.0f - lr * weight_decay;
            else g += weight_decay * p;
        }
        const float mi = m[i] + (1.0f - beta1) * (g - m[i]);
        const float vi = v[i] * beta2 + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

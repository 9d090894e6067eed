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

//! The cost (FLOPs, bytes moved) of each primitive of the [`Backend`]
//! contract, from the operands it is called with.
//!
//! Convolutions, pooling, batch norm and GEMM take their formulas from the
//! kernels' own shapes ([`gradlab_cpu::cost`], where the conventions are
//! written down); the elementwise ops, reductions, softmax, cross-entropy,
//! copies and optimizer updates are counted here. Every backend does the
//! same arithmetic for a primitive, so one formula serves all three.
//!
//! [`Backend`]: super::Backend

use crate::{DType, Shape, Tensor};
pub use gradlab_cpu::cost::{gemm_cost, Cost, INDEX_BYTES};
use gradlab_cpu::optim::{AdamConfig, SgdConfig};
use gradlab_cpu::{BatchNormShape, Conv2dShape, Pool2dShape};

fn bytes_of(elements: usize, dtype: DType) -> f64 {
    elements as f64 * dtype.size_in_bytes() as f64
}

fn tensor_bytes(t: &Tensor) -> f64 {
    bytes_of(t.numel(), t.dtype())
}

/// A fill: writes the result.
pub fn full(shape: &Shape, dtype: DType) -> Cost {
    Cost::bytes_only(bytes_of(shape.numel(), dtype))
}

/// A contiguous copy: reads and writes every element.
pub fn copy(x: &Tensor) -> Cost {
    Cost::bytes_only(2.0 * tensor_bytes(x))
}

/// A conversion: reads `x`, writes it as `dtype`.
pub fn cast(x: &Tensor, dtype: DType) -> Cost {
    Cost::bytes_only(tensor_bytes(x) + bytes_of(x.numel(), dtype))
}

/// Zeros of `shape` with parts copied in: writes the result, reads the parts.
pub fn assemble(shape: &Shape, dtype: DType, parts: &[(&Tensor, crate::Layout)]) -> Cost {
    let read: f64 = parts.iter().map(|(t, _)| tensor_bytes(t)).sum();
    Cost::bytes_only(bytes_of(shape.numel(), dtype) + read)
}

/// One FLOP per element; reads `x`, writes the result.
///
/// ```
/// use gradlab_tensor::{backend::cost, DType, Tensor, UnaryOp};
/// let x = Tensor::zeros([2, 3], DType::F32);
/// let c = cost::unary(&x);
/// assert_eq!((c.flops, c.bytes), (6.0, 48.0));
/// ```
pub fn unary(x: &Tensor) -> Cost {
    Cost::new(x.numel() as f64, 2.0 * tensor_bytes(x))
}

/// One FLOP per result element; each operand read once (a broadcast
/// operand is read at its own size), the result written.
pub fn binary(a: &Tensor, b: &Tensor, shape: &Shape) -> Cost {
    Cost::new(
        shape.numel() as f64,
        tensor_bytes(a) + tensor_bytes(b) + bytes_of(shape.numel(), a.dtype()),
    )
}

/// One add per input element (and one multiply per result when scaled);
/// reads `x`, writes the reduced result.
pub fn sum(x: &Tensor, dims: &[usize], scale: f64) -> Cost {
    let kept: usize = x
        .dims()
        .iter()
        .enumerate()
        .map(|(i, &d)| if dims.contains(&i) { 1 } else { d })
        .product();
    let scaling = if scale == 1.0 { 0.0 } else { kept as f64 };
    Cost::new(
        x.numel() as f64 + scaling,
        tensor_bytes(x) + bytes_of(kept, x.dtype()),
    )
}

/// One comparison per element; reads `x`, writes values and i64 positions.
pub fn max_along(x: &Tensor, dim: usize) -> Cost {
    let along = x.dims().get(dim).copied().unwrap_or(1).max(1);
    let out = x.numel() / along;
    Cost::new(
        x.numel() as f64,
        tensor_bytes(x) + bytes_of(out, x.dtype()) + (out * INDEX_BYTES) as f64,
    )
}

/// No arithmetic; reads the index and one value per result, writes the result.
pub fn gather_along(x: &Tensor, index: &Tensor) -> Cost {
    let out = index.numel();
    Cost::bytes_only((out * INDEX_BYTES) as f64 + 2.0 * bytes_of(out, x.dtype()))
}

/// One add per source element; writes the zeroed result, reads the source
/// and the index.
pub fn scatter_add_along(src: &Tensor, shape: &Shape) -> Cost {
    Cost::new(
        src.numel() as f64,
        bytes_of(shape.numel(), src.dtype())
            + tensor_bytes(src)
            + (src.numel() * INDEX_BYTES) as f64,
    )
}

/// `a [.., m, k] @ b [.., k, n]` over the broadcast `batch`: `2·m·k·n`
/// FLOPs per product; each operand read once at its own size (a
/// broadcast operand is not read once per product), the result written.
///
/// ```
/// use gradlab_tensor::{backend::cost, DType, Shape, Tensor};
/// let a = Tensor::zeros([4, 2, 3], DType::F32);
/// let b = Tensor::zeros([3, 5], DType::F32); // broadcast over the batch of 4
/// let c = cost::matmul(&a, &b, &Shape::new(&[4]));
/// assert_eq!(c.flops, 4.0 * 2.0 * 2.0 * 3.0 * 5.0);
/// assert_eq!(c.bytes, (24.0 + 15.0 + 40.0) * 4.0);
/// ```
pub fn matmul(a: &Tensor, b: &Tensor, batch: &Shape) -> Cost {
    let (ra, rb) = (a.rank(), b.rank());
    if ra < 2 || rb < 2 {
        return Cost::ZERO;
    }
    let (m, k, n) = (a.dims()[ra - 2], a.dims()[ra - 1], b.dims()[rb - 1]);
    let products = batch.numel();
    Cost::new(
        gemm_cost(products, m, k, n, a.dtype().size_in_bytes()).flops,
        tensor_bytes(a) + tensor_bytes(b) + bytes_of(products * m * n, a.dtype()),
    )
}

pub fn conv2d(s: &Conv2dShape, x: &Tensor, bias: bool) -> Cost {
    s.forward_cost(x.dtype().size_in_bytes(), bias)
}

pub fn conv2d_backward_data(s: &Conv2dShape, grad: &Tensor) -> Cost {
    s.backward_data_cost(grad.dtype().size_in_bytes())
}

pub fn conv2d_backward_weight(s: &Conv2dShape, grad: &Tensor) -> Cost {
    s.backward_weight_cost(grad.dtype().size_in_bytes())
}

pub fn max_pool2d(s: &Pool2dShape, x: &Tensor) -> Cost {
    s.max_forward_cost(x.dtype().size_in_bytes())
}

pub fn max_pool2d_backward(s: &Pool2dShape, grad: &Tensor) -> Cost {
    s.max_backward_cost(grad.dtype().size_in_bytes())
}

pub fn max_pool2d_gather(s: &Pool2dShape, x: &Tensor) -> Cost {
    s.max_gather_cost(x.dtype().size_in_bytes())
}

pub fn batch_norm2d_train(s: BatchNormShape, x: &Tensor, weight: bool, bias: bool) -> Cost {
    s.train_forward_cost(x.dtype().size_in_bytes(), weight, bias)
}

pub fn batch_norm2d_inference(s: BatchNormShape, x: &Tensor) -> Cost {
    s.inference_cost(x.dtype().size_in_bytes())
}

pub fn batch_norm2d_backward(s: BatchNormShape, x: &Tensor) -> Cost {
    s.backward_cost(x.dtype().size_in_bytes())
}

/// Softmax along a dim: 5 FLOPs per element (the maximum, subtracting it,
/// `exp`, the sum, and the division, or for log-softmax the subtraction of
/// the log-sum); reads `x`, writes the result.
pub fn softmax(x: &Tensor) -> Cost {
    Cost::new(5.0 * x.numel() as f64, 2.0 * tensor_bytes(x))
}

/// Cross-entropy of `[R, C]` logits: a log-softmax's 5 FLOPs per logit
/// plus one for the (smoothed) target's weighted sum; reads the logits and
/// the i64 targets, writes one loss per row.
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Cost {
    let rows = target.numel();
    Cost::new(
        6.0 * logits.numel() as f64,
        tensor_bytes(logits) + (rows * INDEX_BYTES) as f64 + bytes_of(rows, logits.dtype()),
    )
}

/// Its gradient `(softmax(x) - q) · g`: the softmax's 5 FLOPs and 2 more
/// per logit; reads the logits, targets and row gradients, writes the
/// logits' gradient.
pub fn cross_entropy_backward(logits: &Tensor, target: &Tensor) -> Cost {
    let rows = target.numel();
    Cost::new(
        7.0 * logits.numel() as f64,
        2.0 * tensor_bytes(logits) + (rows * INDEX_BYTES) as f64 + bytes_of(rows, logits.dtype()),
    )
}

/// No arithmetic; reads the targets, writes the rows.
pub fn one_hot(target: &Tensor, classes: usize, dtype: DType) -> Cost {
    let rows = target.numel();
    Cost::bytes_only((rows * INDEX_BYTES) as f64 + bytes_of(rows * classes, dtype))
}

/// `p -= lr · (g + wd·p)` with an optional momentum buffer `b = μ·b + (1 -
/// dampening)·g` (and Nesterov's look-ahead): 2 FLOPs per element, 2 more
/// each for weight decay, momentum and Nesterov. Reads and writes the
/// parameter (and the buffer), reads the gradient.
pub fn sgd_step(param: &Tensor, config: &SgdConfig, momentum: bool) -> Cost {
    let n = param.numel() as f64;
    let extra = [
        config.weight_decay != 0.0,
        momentum,
        momentum && config.nesterov,
    ]
    .iter()
    .filter(|&&on| on)
    .count() as f64;
    let buffers = if momentum { 2.0 } else { 0.0 };
    Cost::new(
        n * (2.0 + 2.0 * extra),
        tensor_bytes(param) * (3.0 + buffers),
    )
}

/// Adam(W): two moment updates (3 FLOPs each), the bias-corrected step
/// (`m̂ / (sqrt(v̂) + eps)` and the update: 6), and 2 for weight decay.
/// Reads and writes the parameter and both moments, reads the gradient.
pub fn adam_step(param: &Tensor, config: &AdamConfig) -> Cost {
    let n = param.numel() as f64;
    let decay = if config.weight_decay != 0.0 { 2.0 } else { 0.0 };
    Cost::new(n * (12.0 + decay), tensor_bytes(param) * 7.0)
}

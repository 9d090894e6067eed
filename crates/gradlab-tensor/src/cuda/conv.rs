//! conv2d and its two backward products on CUDA (dense NCHW buffers).

use super::{alloc, backend, dense, from_f32};
use crate::{Result, Shape, Tensor};
use gradlab_cpu::Conv2dShape;
use gradlab_cuda as cu;

pub(crate) fn conv2d_forward(
    s: &Conv2dShape,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let (input, weight) = (dense(OP, x)?, dense(OP, w)?);
    let bias = b.map(|b| dense(OP, b)).transpose()?;
    let mut out = alloc(OP, x, s.output_len())?;
    cu::conv2d_forward(s, &input, &weight, bias.as_deref(), &mut out).map_err(backend(OP))?;
    let shape = Shape::new([s.batch, s.out_channels, s.out_h(), s.out_w()]);
    Ok(from_f32(out, shape))
}

pub(crate) fn conv2d_backward_data(
    s: &Conv2dShape,
    grad: &Tensor,
    w: &Tensor,
    input_shape: &Shape,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_data";
    let (g, weight) = (dense(OP, grad)?, dense(OP, w)?);
    let mut out = alloc(OP, grad, s.input_len())?;
    cu::conv2d_backward_data(s, &g, &weight, &mut out).map_err(backend(OP))?;
    Ok(from_f32(out, input_shape.clone()))
}

pub(crate) fn conv2d_backward_weight(
    s: &Conv2dShape,
    grad: &Tensor,
    x: &Tensor,
    weight_shape: &Shape,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let (g, input) = (dense(OP, grad)?, dense(OP, x)?);
    let mut out = alloc(OP, grad, s.weight_len())?;
    cu::conv2d_backward_weight(s, &input, &g, &mut out).map_err(backend(OP))?;
    Ok(from_f32(out, weight_shape.clone()))
}

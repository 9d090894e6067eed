//! conv2d and its two backward products on CUDA (dense NCHW buffers).

use super::{alloc, backend, dense, from_f32};
use crate::backend::reference::conv_output_shape;
use crate::{Result, Shape, Tensor};
use gradlab_cpu::Conv2dShape;
use gradlab_cuda as cu;

pub(super) fn forward(
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
    Ok(from_f32(out, conv_output_shape(s)))
}

pub(super) fn backward_data(s: &Conv2dShape, grad: &Tensor, w: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_data";
    let (g, weight) = (dense(OP, grad)?, dense(OP, w)?);
    let mut out = alloc(OP, grad, s.input_len())?;
    cu::conv2d_backward_data(s, &g, &weight, &mut out).map_err(backend(OP))?;
    Ok(from_f32(
        out,
        Shape::new([s.batch, s.in_channels, s.in_h, s.in_w]),
    ))
}

pub(super) fn backward_weight(s: &Conv2dShape, grad: &Tensor, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let (g, input) = (dense(OP, grad)?, dense(OP, x)?);
    let mut out = alloc(OP, grad, s.weight_len())?;
    cu::conv2d_backward_weight(s, &input, &g, &mut out).map_err(backend(OP))?;
    Ok(from_f32(
        out,
        Shape::new([s.out_channels, s.in_per_group(), s.kernel_h, s.kernel_w]),
    ))
}

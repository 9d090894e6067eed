//! 2-D max pooling on CUDA: argmax positions are indices within a plane.

use super::{alloc, backend, dense, dense_index, from_f32, from_index, gpu_of};
use crate::backend::reference::pool_output_shape;
use crate::{Result, Shape, Tensor};
use gradlab_cpu::Pool2dShape;
use gradlab_cuda as cu;

pub(super) fn forward(s: &Pool2dShape, x: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "max_pool2d";
    let input = dense(OP, x)?;
    let gpu = gpu_of(OP, x)?;
    let mut out = cu::DeviceBuffer::uninit(&gpu, s.output_len()).map_err(backend(OP))?;
    let mut arg = cu::DeviceBuffer::uninit(&gpu, s.output_len()).map_err(backend(OP))?;
    cu::max_pool2d_forward(s, &input, &mut out, &mut arg).map_err(backend(OP))?;
    let shape = pool_output_shape(s);
    Ok((from_f32(out, shape.clone()), from_index(arg, shape)))
}

pub(super) fn backward(s: &Pool2dShape, grad: &Tensor, argmax: &Tensor) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    let g = dense(OP, grad)?;
    let arg = dense_index(OP, argmax)?;
    let mut out = alloc(OP, grad, s.input_len())?;
    cu::max_pool2d_backward(s, &g, &arg, &mut out).map_err(backend(OP))?;
    Ok(from_f32(
        out,
        Shape::new([s.batch, s.channels, s.in_h, s.in_w]),
    ))
}

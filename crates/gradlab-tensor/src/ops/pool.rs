//! 2-D max pooling with recorded argmax, and its scatter/gather adjoints.

use crate::{with_float, DType, Element, Result, Shape, Tensor, TensorError};
use gradlab_cpu::{Float, Pool2dShape};
use std::borrow::Cow;

/// Max-pool parameters with PyTorch's names and meaning (`stride` defaults
/// to the kernel size in PyTorch; here it is explicit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub ceil_mode: bool,
}

impl MaxPool2dParams {
    /// A `k x k` window moving by `k`, no padding: the usual pooling layer.
    pub fn square(k: usize) -> Self {
        MaxPool2dParams {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    pub fn problem(&self, op: &'static str, input: &Shape) -> Result<Pool2dShape> {
        let d = input.dims();
        if d.len() != 4 {
            return Err(TensorError::shape(
                op,
                format!("expects a 4-D input [N, C, H, W], got {input}"),
            ));
        }
        let p = self;
        if p.kernel.0 == 0
            || p.kernel.1 == 0
            || p.stride.0 == 0
            || p.stride.1 == 0
            || p.dilation.0 == 0
            || p.dilation.1 == 0
        {
            return Err(TensorError::invalid(
                op,
                format!(
                    "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                    p.kernel, p.stride, p.dilation
                ),
            ));
        }
        if 2 * p.padding.0 > p.kernel.0 || 2 * p.padding.1 > p.kernel.1 {
            return Err(TensorError::invalid(
                op,
                format!(
                    "padding {:?} must be at most half of kernel {:?}",
                    p.padding, p.kernel
                ),
            ));
        }
        let s = Pool2dShape {
            batch: d[0],
            channels: d[1],
            in_h: d[2],
            in_w: d[3],
            kernel: p.kernel,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            ceil_mode: p.ceil_mode,
        };
        s.check_sizes()
            .map_err(|e| TensorError::shape(op, e.to_string()))?;
        if s.out_h() == 0 || s.out_w() == 0 {
            return Err(TensorError::shape(
                op,
                format!(
                    "kernel {:?} with padding {:?} and dilation {:?} does not fit input {input}",
                    p.kernel, p.padding, p.dilation
                ),
            ));
        }
        Ok(s)
    }
}

fn out_shape(s: &Pool2dShape) -> Shape {
    Shape::new([s.batch, s.channels, s.out_h(), s.out_w()])
}

fn forward_impl<T: Element>(s: &Pool2dShape, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let x = x.contiguous_slice::<T>("max_pool2d")?;
    let mut out = gradlab_cpu::try_zeros::<T>("max_pool2d", s.output_len())?;
    let mut arg = gradlab_cpu::try_zeros::<i64>("max_pool2d", s.output_len())?;
    gradlab_cpu::max_pool2d_forward(s, &x, &mut out, &mut arg);
    Ok((
        Tensor::from_vec(out, out_shape(s))?,
        Tensor::from_vec(arg, out_shape(s))?,
    ))
}

/// The argmax entries as a slice, each checked to be `-1` (no winner) or
/// an index within a plane of `plane` elements: they may come from a user.
fn checked_argmax<'a>(
    op: &'static str,
    argmax: &'a Tensor,
    plane: usize,
) -> Result<Cow<'a, [i64]>> {
    let arg = argmax.contiguous_slice::<i64>(op)?;
    // A branch-free pass (the compiler vectorises it); the error path finds the culprit.
    let valid = arg
        .iter()
        .fold(true, |ok, &a| ok & (a >= -1) & (a < plane as i64));
    if !valid {
        let (at, bad) = arg
            .iter()
            .enumerate()
            .find(|(_, &a)| a < -1 || a >= plane as i64)
            .map(|(i, &a)| (i, a))
            .unwrap_or((0, 0));
        return Err(TensorError::shape(
            op,
            format!("argmax entry {bad} at flat index {at} is outside its plane of {plane} elements (or -1)"),
        ));
    }
    Ok(arg)
}

impl Tensor {
    /// `max_pool2d` returning the pooled values and, for each, the index of
    /// the winning element within its input plane (`h * W + w`, i64).
    pub fn max_pool2d(&self, params: MaxPool2dParams) -> Result<(Tensor, Tensor)> {
        self.check_float("max_pool2d")?;
        let s = params.problem("max_pool2d", self.shape())?;
        if self.is_cuda() {
            return crate::cuda::max_pool2d_forward(&s, self);
        }
        with_float!(self.dtype(), "max_pool2d", |T| forward_impl::<T>(&s, self))
    }

    /// Routes the output gradient `self` back to the argmax positions of an
    /// input of `input_shape` (the adjoint of [`Tensor::max_pool2d_gather`]).
    pub fn max_pool2d_backward(
        &self,
        argmax: &Tensor,
        input_shape: &Shape,
        params: MaxPool2dParams,
    ) -> Result<Tensor> {
        let op = "max_pool2d_backward";
        let s = params.problem(op, input_shape)?;
        check_pooled(op, self, argmax, &s)?;
        self.check_same_device(op, argmax)?;
        if self.is_cuda() {
            self.check_float(op)?;
            return crate::cuda::max_pool2d_backward(&s, self, argmax, input_shape);
        }
        let arg = checked_argmax(op, argmax, s.in_h * s.in_w)?;
        with_float!(self.dtype(), op, |T| {
            let g = self.contiguous_slice::<T>(op)?;
            // Already zero: the kernel only adds the winners' gradients.
            let mut out = gradlab_cpu::try_zeros::<T>(op, s.input_len())?;
            gradlab_cpu::max_pool2d_backward_add(&s, &g, &arg, &mut out);
            Tensor::from_vec(out, input_shape.clone())
        })
    }

    /// Reads `self` (shaped like the pool's input) at the argmax positions:
    /// the pooled shape's values of the winners. Linear in `self`.
    pub fn max_pool2d_gather(&self, argmax: &Tensor, params: MaxPool2dParams) -> Result<Tensor> {
        let op = "max_pool2d_gather";
        let s = params.problem(op, self.shape())?;
        if argmax.dtype() != DType::I64 || argmax.shape() != &out_shape(&s) {
            return Err(TensorError::shape(
                op,
                format!(
                    "argmax must be i64 of shape {}, got {} {}",
                    out_shape(&s),
                    argmax.dtype(),
                    argmax.shape()
                ),
            ));
        }
        self.check_same_device(op, argmax)?;
        if self.is_cuda() {
            return Err(crate::cuda::unsupported(op, self.device()));
        }
        let plane = s.in_h * s.in_w;
        let arg = checked_argmax(op, argmax, plane)?;
        let out_plane = s.out_h() * s.out_w();
        with_float!(self.dtype(), op, |T| {
            let x = self.contiguous_slice::<T>(op)?;
            let out: Vec<T> = arg
                .iter()
                .enumerate()
                .map(|(o, &a)| match usize::try_from(a) {
                    Ok(a) => x[(o / out_plane) * plane + a],
                    Err(_) => T::ZERO,
                })
                .collect();
            Tensor::from_vec(out, out_shape(&s))
        })
    }
}

fn check_pooled(op: &'static str, g: &Tensor, argmax: &Tensor, s: &Pool2dShape) -> Result<()> {
    let want = out_shape(s);
    if g.shape() != &want || argmax.shape() != &want || argmax.dtype() != DType::I64 {
        return Err(TensorError::shape(
            op,
            format!(
                "gradient {} and i64 argmax {} ({}) must both have the pooled shape {want}",
                g.shape(),
                argmax.shape(),
                argmax.dtype()
            ),
        ));
    }
    Ok(())
}

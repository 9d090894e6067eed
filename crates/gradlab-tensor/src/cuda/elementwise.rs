//! Elementwise ops, copies into views (cat, embed).

use super::{alloc, backend, dense, f32_buffer, from_f32, view_of};
use crate::ops::{BinaryOp, UnaryOp};
use crate::{DType, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cuda as cu;

fn cuda_unary(op: UnaryOp) -> Option<cu::UnaryOp> {
    Some(match op {
        UnaryOp::Neg => cu::UnaryOp::Neg,
        UnaryOp::Exp => cu::UnaryOp::Exp,
        UnaryOp::Log => cu::UnaryOp::Log,
        UnaryOp::Sqrt => cu::UnaryOp::Sqrt,
        UnaryOp::Relu => cu::UnaryOp::Relu,
        UnaryOp::Sigmoid => cu::UnaryOp::Sigmoid,
        UnaryOp::Tanh => cu::UnaryOp::Tanh,
        UnaryOp::Abs => cu::UnaryOp::Abs,
        UnaryOp::Pow(e) => cu::UnaryOp::Powf(e as f32),
        UnaryOp::AddScalar(s) => cu::UnaryOp::AddScalar(s as f32),
        UnaryOp::MulScalar(s) => cu::UnaryOp::MulScalar(s as f32),
        UnaryOp::GtMask(_) => return None,
    })
}

/// A unary op on a CUDA tensor (the result is contiguous).
pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let name = op.name();
    if let UnaryOp::GtMask(threshold) = op {
        return gt_mask(x, threshold);
    }
    let Some(kernel_op) = cuda_unary(op) else {
        return Err(super::unsupported(name, x.device()));
    };
    let src = dense(name, x)?;
    let mut out = alloc(name, x, x.numel())?;
    cu::unary(kernel_op, &src, &mut out).map_err(backend(name))?;
    Ok(from_f32(out, x.shape().clone()))
}

/// `x > t` as 1/0: the kernels' ReLU-backward op `a * (b > 0)` with `a = 1`
/// and `b = x - t` (exact: for floats `x - t > 0` exactly when `x > t`).
fn gt_mask(x: &Tensor, threshold: f64) -> Result<Tensor> {
    const OP: &str = "gt_mask";
    let shifted = if threshold == 0.0 {
        x.clone()
    } else {
        unary(x, UnaryOp::AddScalar(-threshold))?
    };
    let ones =
        super::transfer::ones_view(x.shape()).ok_or_else(|| super::unsupported(OP, x.device()))?;
    binary_kernel(OP, cu::BinaryOp::ReluBackward, &ones, &shifted, x.shape())
}

/// A broadcasting binary op on CUDA tensors (shapes already checked).
pub(crate) fn binary(a: &Tensor, b: &Tensor, op: BinaryOp, shape: &Shape) -> Result<Tensor> {
    let kernel_op = match op {
        BinaryOp::Add => cu::BinaryOp::Add,
        BinaryOp::Sub => cu::BinaryOp::Sub,
        BinaryOp::Mul => cu::BinaryOp::Mul,
        BinaryOp::Div => cu::BinaryOp::Div,
        BinaryOp::Maximum => cu::BinaryOp::Maximum,
        BinaryOp::ReluBackward => cu::BinaryOp::ReluBackward,
    };
    binary_kernel(op.name(), kernel_op, a, b, shape)
}

fn binary_kernel(
    name: &'static str,
    op: cu::BinaryOp,
    a: &Tensor,
    b: &Tensor,
    shape: &Shape,
) -> Result<Tensor> {
    let (la, lb) = (
        a.layout().broadcast_to(shape)?,
        b.layout().broadcast_to(shape)?,
    );
    let (ba, bb) = (f32_buffer(name, a)?, f32_buffer(name, b)?);
    let mut out = alloc(name, a, shape.numel())?;
    let out_strides = shape.contiguous_strides();
    cu::binary(
        op,
        shape.dims(),
        ba,
        view_of(&la),
        bb,
        view_of(&lb),
        &mut out,
        cu::View::new(0, &out_strides),
    )
    .map_err(backend(name))?;
    Ok(from_f32(out, shape.clone()))
}

fn check_f32(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(TensorError::UnsupportedDType {
            op,
            dtype: t.dtype(),
            expected: "f32 on CUDA",
        });
    }
    Ok(())
}

/// Copies each part into its slice of a new tensor of `shape`.
pub(crate) fn cat(tensors: &[&Tensor], dim: usize, shape: &Shape) -> Result<Tensor> {
    const OP: &str = "cat";
    check_f32(OP, tensors[0])?;
    let mut out = alloc(OP, tensors[0], shape.numel())?;
    let out_layout = Layout::contiguous(shape.clone(), 0);
    let mut start = 0;
    for t in tensors {
        let len = t.dims()[dim];
        let dst = out_layout.narrow(dim, start, len)?;
        cu::copy_strided(
            t.dims(),
            f32_buffer(OP, t)?,
            view_of(t.layout()),
            &mut out,
            view_of(&dst),
        )
        .map_err(backend(OP))?;
        start += len;
    }
    Ok(from_f32(out, shape.clone()))
}

/// Zeros of `shape` holding `x` at `start..` along `dim` (the adjoint of narrow).
pub(crate) fn embed(x: &Tensor, dim: usize, start: usize, shape: &Shape) -> Result<Tensor> {
    const OP: &str = "embed";
    check_f32(OP, x)?;
    let mut out = alloc(OP, x, shape.numel())?;
    cu::fill(&mut out, 0.0).map_err(backend(OP))?;
    let dst = Layout::contiguous(shape.clone(), 0).narrow(dim, start, x.dims()[dim])?;
    cu::copy_strided(
        x.dims(),
        f32_buffer(OP, x)?,
        view_of(x.layout()),
        &mut out,
        view_of(&dst),
    )
    .map_err(backend(OP))?;
    Ok(from_f32(out, shape.clone()))
}

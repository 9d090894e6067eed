//! Elementwise ops and copies into regions of a new tensor (cat, embed).

use super::{alloc, backend, dense, f32_buffer, from_f32, view_of};
use crate::{DType, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::{BinaryOp, UnaryOp};
use gradlab_cuda as cu;

/// The kernels' op for `op`; `None` for ops the unary kernel lacks.
fn kernel_unary(op: UnaryOp) -> Option<cu::UnaryOp> {
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

fn kernel_binary(op: BinaryOp) -> cu::BinaryOp {
    match op {
        BinaryOp::Add => cu::BinaryOp::Add,
        BinaryOp::Sub => cu::BinaryOp::Sub,
        BinaryOp::Mul => cu::BinaryOp::Mul,
        BinaryOp::Div => cu::BinaryOp::Div,
        BinaryOp::Maximum => cu::BinaryOp::Maximum,
        BinaryOp::ReluBackward => cu::BinaryOp::ReluBackward,
    }
}

/// A unary op on a CUDA tensor (the result is contiguous).
pub(super) fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let name = op.name();
    let Some(kernel_op) = kernel_unary(op) else {
        let UnaryOp::GtMask(threshold) = op else {
            unreachable!("only gt_mask lacks a unary kernel")
        };
        return gt_mask(x, threshold);
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
    let ones = super::transfer::full(x.shape().clone(), 1.0, DType::F32, x.device())?;
    binary_kernel(OP, cu::BinaryOp::ReluBackward, &ones, &shifted, x.shape())
}

/// A broadcasting binary op on CUDA tensors (shapes already checked).
pub(super) fn binary(a: &Tensor, b: &Tensor, op: BinaryOp, shape: &Shape) -> Result<Tensor> {
    binary_kernel(op.name(), kernel_binary(op), a, b, shape)
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

/// Zeros of `shape` with each part copied into its region.
pub(super) fn assemble(shape: &Shape, dtype: DType, parts: &[(&Tensor, Layout)]) -> Result<Tensor> {
    const OP: &str = "assemble";
    if dtype != DType::F32 {
        return Err(TensorError::UnsupportedDType {
            op: OP,
            dtype,
            expected: "f32 on CUDA",
        });
    }
    let Some((first, _)) = parts.first() else {
        return Err(TensorError::invalid(OP, "needs at least one part"));
    };
    let mut out = alloc(OP, first, shape.numel())?;
    cu::fill(&mut out, 0.0).map_err(backend(OP))?;
    for (part, region) in parts {
        cu::copy_strided(
            part.dims(),
            f32_buffer(OP, part)?,
            view_of(part.layout()),
            &mut out,
            view_of(region),
        )
        .map_err(backend(OP))?;
    }
    Ok(from_f32(out, shape.clone()))
}

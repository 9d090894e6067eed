//! Elementwise ops and copies into regions of a new tensor (cat, embed).

use super::{alloc, backend, dense, f32_buffer, from_f32, view_of};
use crate::{DType, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::{BinaryOp, UnaryOp};
use gradlab_cuda as cu;

/// A unary op on a CUDA tensor (the result is contiguous).
pub(super) fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let name = op.name();
    let src = dense(name, x)?;
    let mut out = alloc(name, x, x.numel())?;
    cu::unary(op, &src, &mut out).map_err(backend(name))?;
    Ok(from_f32(out, x.shape().clone()))
}

/// A broadcasting binary op on CUDA tensors (shapes already checked).
pub(super) fn binary(a: &Tensor, b: &Tensor, op: BinaryOp, shape: &Shape) -> Result<Tensor> {
    binary_kernel(op.name(), op, a, b, shape)
}

fn binary_kernel(
    name: &'static str,
    op: BinaryOp,
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

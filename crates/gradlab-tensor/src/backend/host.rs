//! What the two host backends (`reference` and `cpu`) share: typed access
//! to host storage, output buffers, and copy-on-write for in-place updates.

use crate::storage::{CpuStorage, Storage, StorageElement};
use crate::{DType, Element, Layout, Result, Shape, Tensor, TensorError};
use std::sync::Arc;

/// A buffer of `len` copies of `value` for the output of `op`: a clear
/// error ([`TensorError::Alloc`]), not an abort, when the memory is not there.
pub(crate) fn filled<T: Clone>(op: &'static str, len: usize, value: T) -> Result<Vec<T>> {
    Ok(gradlab_cpu::alloc::try_full(op, len, value)?)
}

/// A zeroed output buffer of `len` elements (fresh zero pages from the
/// allocator, as `vec![0; n]` gets), failing as [`filled`] does.
pub(crate) fn zeros<T: gradlab_cpu::alloc::Zeroable>(
    op: &'static str,
    len: usize,
) -> Result<Vec<T>> {
    Ok(gradlab_cpu::alloc::try_zeros(op, len)?)
}

/// A contiguous tensor of `shape` owning `data`.
pub(crate) fn tensor<T: StorageElement>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape)
}

/// The elements of `t` in row-major order as one slice (borrowed when `t`
/// is contiguous), for a kernel that reads dense data.
pub(crate) fn dense<'a, T: StorageElement>(
    op: &'static str,
    t: &'a Tensor,
) -> Result<std::borrow::Cow<'a, [T]>> {
    t.contiguous_slice::<T>(op)
}

/// The optional tensor's elements as a dense slice.
pub(crate) fn dense_opt<'a, T: StorageElement>(
    op: &'static str,
    t: Option<&'a Tensor>,
) -> Result<Option<std::borrow::Cow<'a, [T]>>> {
    t.map(|t| dense::<T>(op, t)).transpose()
}

/// Makes `t` the sole owner of a compact host buffer (copying it when it
/// is a view or shared) and returns its elements, so that an in-place
/// update is seen by no other tensor.
pub(crate) fn unique_mut<'a, T: Element>(
    op: &'static str,
    t: &'a mut Tensor,
) -> Result<&'a mut [T]> {
    if !t.is_dense() || Arc::get_mut(t.storage_mut()).is_none() {
        *t = t.copy()?;
    }
    let dtype = t.dtype();
    let Some(Storage::Cpu(cpu)) = Arc::get_mut(t.storage_mut()) else {
        return Err(TensorError::invalid(op, "expects a host tensor"));
    };
    T::slice_mut(cpu)
        .map(|v| v.as_mut_slice())
        .ok_or(TensorError::UnsupportedDType {
            op,
            dtype,
            expected: T::DTYPE.name(),
        })
}

/// `f` over the typed host storage of `x` for any dtype (floats and i64):
/// copies, casts and assembly work on every dtype.
pub(crate) fn any_dtype<R>(
    x: &Tensor,
    op: &'static str,
    f32: impl FnOnce(&[f32]) -> R,
    f64: impl FnOnce(&[f64]) -> R,
    i64: impl FnOnce(&[i64]) -> R,
) -> Result<R> {
    Ok(match x.cpu_storage(op)? {
        CpuStorage::F32(v) => f32(v),
        CpuStorage::F64(v) => f64(v),
        CpuStorage::I64(v) => i64(v),
    })
}

/// A host tensor of `shape` and `dtype` from f64 values.
pub(crate) fn from_f64(values: Vec<f64>, shape: Shape, dtype: DType) -> Tensor {
    Tensor::from_f64_values(values, shape, dtype)
}

/// Zeros of `shape` with each part copied into the region its layout names.
pub(crate) fn assemble<T: StorageElement + gradlab_cpu::alloc::Zeroable>(
    op: &'static str,
    shape: &Shape,
    parts: &[(&Tensor, Layout)],
) -> Result<Tensor> {
    let mut out = zeros::<T>(op, shape.numel())?;
    for (part, region) in parts {
        let src = part.storage_slice::<T>(op)?;
        part.layout()
            .for_each_offset_pair(region, |s, d| out[d] = src[s]);
    }
    Tensor::from_vec(out, shape.clone())
}

/// A training-mode batch-norm forward kernel, plain or followed by ReLU:
/// `(shape, x, weight, bias, eps, y, mean, var)`.
pub(crate) type NormTrainKernel<T> = fn(
    gradlab_cpu::BatchNormShape,
    &[T],
    Option<&[T]>,
    Option<&[T]>,
    f64,
    &mut [T],
    &mut [T],
    &mut [T],
);

/// A batch-norm backward kernel, plain (ignoring `bias`) or through ReLU:
/// `(shape, dy, x, mean, var, weight, bias, eps, dx, dweight, dbias)`.
pub(crate) type NormBackwardKernel<T> = fn(
    gradlab_cpu::BatchNormShape,
    &[T],
    &[T],
    &[T],
    &[T],
    Option<&[T]>,
    Option<&[T]>,
    f64,
    &mut [T],
    &mut [T],
    &mut [T],
);

/// Training-mode batch norm of `x` by `kernel` into `y` (a buffer of
/// `s.len()` the caller chose): the output and the batch's mean and
/// variance. What both host backends do around their kernels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_train<T: Element>(
    op: &'static str,
    s: gradlab_cpu::BatchNormShape,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    mut y: Vec<T>,
    kernel: NormTrainKernel<T>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xs = dense::<T>(op, x)?;
    let (w, b) = (dense_opt::<T>(op, weight)?, dense_opt::<T>(op, bias)?);
    let (mut mean, mut var) = (zeros::<T>(op, s.channels)?, zeros::<T>(op, s.channels)?);
    kernel(
        s,
        &xs,
        w.as_deref(),
        b.as_deref(),
        eps,
        &mut y,
        &mut mean,
        &mut var,
    );
    Ok((
        tensor(y, x.shape().clone())?,
        tensor(mean, [s.channels])?,
        tensor(var, [s.channels])?,
    ))
}

/// Batch norm's gradients by `kernel`, the input gradient into `dx` (a
/// buffer of `s.len()` the caller chose): what both host backends do
/// around their kernels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward<T: Element>(
    op: &'static str,
    s: gradlab_cpu::BatchNormShape,
    grad: &Tensor,
    x: &Tensor,
    (mean, var): (&Tensor, &Tensor),
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    mut dx: Vec<T>,
    kernel: NormBackwardKernel<T>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (dy, xs) = (dense::<T>(op, grad)?, dense::<T>(op, x)?);
    let (m, v) = (dense::<T>(op, mean)?, dense::<T>(op, var)?);
    let (w, b) = (dense_opt::<T>(op, weight)?, dense_opt::<T>(op, bias)?);
    let (mut dw, mut db) = (zeros::<T>(op, s.channels)?, zeros::<T>(op, s.channels)?);
    kernel(
        s,
        &dy,
        &xs,
        &m,
        &v,
        w.as_deref(),
        b.as_deref(),
        eps,
        &mut dx,
        &mut dw,
        &mut db,
    );
    Ok((
        tensor(dx, x.shape().clone())?,
        tensor(dw, [s.channels])?,
        tensor(db, [s.channels])?,
    ))
}

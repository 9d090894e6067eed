//! The `cuda` backend: the kernels of `kernels/*.cu`, launched through
//! [`gradlab_cuda`], on f32 tensors and i64 indices in GPU memory.
//!
//! The shape and dtype checks stay with the tensor ops (shared with the
//! host backends); this module only moves views into the launch wrappers
//! and wraps the results. Kernels read dense buffers except the strided
//! elementwise ones, so a view with gaps or an offset is first copied on
//! the device. Nothing here copies to the host: a primitive
//! without a CUDA path is listed in [`GAPS`] and returns
//! [`TensorError::Unsupported`], never a silent CPU fallback. Batch norm
//! has no kernel of its own: it is composed of tensor ops that run here.

mod contract;
mod conv;
mod elementwise;
mod matmul;
mod norm;
mod optim;
mod pool;
mod reduce;
mod softmax;
mod transfer;

pub use contract::{Cuda, GAPS};
pub(crate) use transfer::{full, to_cpu, to_cuda};

use crate::storage::{CudaStorage, Storage};
use crate::{Device, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cuda::{CudaError, DeviceBuffer, Gpu, View};
use std::ops::Deref;
use std::sync::Arc;

/// Wraps a CUDA error as the tensor error of `op`.
pub(crate) fn backend(op: &'static str) -> impl Fn(CudaError) -> TensorError {
    move |e| TensorError::Backend {
        op,
        msg: e.to_string(),
    }
}

/// The device for `device`: only ordinal 0 (`Gpu::global()`) exists.
pub(crate) fn gpu_for(op: &'static str, device: Device) -> Result<Arc<Gpu>> {
    match device {
        // Opening the device is not the op's failure: the error names the
        // device, whatever op asked first.
        Device::Cuda(0) => Gpu::global().map_err(|e| TensorError::Device {
            device,
            msg: e.to_string(),
        }),
        Device::Cuda(n) => Err(TensorError::Device {
            device,
            msg: format!("cuda:{n} is not available: gradlab drives one GPU, cuda:0"),
        }),
        Device::Cpu => Err(TensorError::invalid(op, "cpu is not a CUDA device")),
    }
}

/// The f32 buffer behind a CUDA tensor.
pub(crate) fn f32_buffer<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a DeviceBuffer<f32>> {
    match &**t.storage() {
        Storage::Cuda(CudaStorage::F32(b)) => Ok(b),
        Storage::Cuda(CudaStorage::Index(_)) => Err(TensorError::UnsupportedDType {
            op,
            dtype: t.dtype(),
            expected: "an f32 tensor on CUDA",
        }),
        Storage::Cpu(_) => Err(TensorError::DeviceMismatch {
            op,
            lhs: Device::Cuda(0),
            rhs: Device::Cpu,
        }),
    }
}

/// The buffer behind a CUDA index (i64) tensor.
pub(crate) fn index_buffer<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a DeviceBuffer<i64>> {
    match &**t.storage() {
        Storage::Cuda(CudaStorage::Index(b)) => Ok(b),
        Storage::Cuda(CudaStorage::F32(_)) => Err(TensorError::UnsupportedDType {
            op,
            dtype: t.dtype(),
            expected: "i64 indices",
        }),
        Storage::Cpu(_) => Err(TensorError::DeviceMismatch {
            op,
            lhs: Device::Cuda(0),
            rhs: Device::Cpu,
        }),
    }
}

/// A buffer holding exactly a tensor's elements in row-major order:
/// the tensor's own buffer when it already is one, a device copy otherwise.
pub(crate) enum Dense<'a, T: gradlab_cuda::DeviceElem> {
    Borrowed(&'a DeviceBuffer<T>),
    Owned(DeviceBuffer<T>),
}

impl<T: gradlab_cuda::DeviceElem> Deref for Dense<'_, T> {
    type Target = DeviceBuffer<T>;
    fn deref(&self) -> &DeviceBuffer<T> {
        match self {
            Dense::Borrowed(b) => b,
            Dense::Owned(b) => b,
        }
    }
}

/// The f32 elements of `t` as one dense buffer (copied on the device when strided).
pub(crate) fn dense<'a>(op: &'static str, t: &'a Tensor) -> Result<Dense<'a, f32>> {
    let buf = f32_buffer(op, t)?;
    if t.is_dense() {
        return Ok(Dense::Borrowed(buf));
    }
    Ok(Dense::Owned(strided_copy(op, t, buf)?))
}

/// The index elements of `t` as one dense buffer.
pub(crate) fn dense_index<'a>(op: &'static str, t: &'a Tensor) -> Result<Dense<'a, i64>> {
    let buf = index_buffer(op, t)?;
    if t.is_dense() {
        return Ok(Dense::Borrowed(buf));
    }
    // Index tensors come out of the kernels dense and their reshapes stay
    // dense; a strided one would need an i64 copy kernel, which gradlab-cuda
    // does not have.
    Err(TensorError::Backend {
        op,
        msg: format!(
            "needs a contiguous index tensor on CUDA, got shape {} with strides {:?}",
            t.shape(),
            t.strides()
        ),
    })
}

/// A dense copy of the strided f32 view `t` of `buf`.
pub(crate) fn strided_copy(
    op: &'static str,
    t: &Tensor,
    buf: &DeviceBuffer<f32>,
) -> Result<DeviceBuffer<f32>> {
    let mut out = DeviceBuffer::uninit(buf.gpu(), t.numel()).map_err(backend(op))?;
    let dst_strides = t.shape().contiguous_strides();
    gradlab_cuda::copy_strided(
        t.dims(),
        buf,
        view_of(t.layout()),
        &mut out,
        View::new(0, &dst_strides),
    )
    .map_err(backend(op))?;
    Ok(out)
}

/// The kernel view of a layout.
pub(crate) fn view_of(layout: &Layout) -> View<'_> {
    View::new(layout.offset(), layout.strides())
}

/// A contiguous f32 tensor owning `buf`.
pub(crate) fn from_f32(buf: DeviceBuffer<f32>, shape: Shape) -> Tensor {
    Tensor::from_cuda(CudaStorage::F32(buf), Layout::contiguous(shape, 0))
}

/// A contiguous i64 tensor owning the indices `buf`.
pub(crate) fn from_index(buf: DeviceBuffer<i64>, shape: Shape) -> Tensor {
    Tensor::from_cuda(CudaStorage::Index(buf), Layout::contiguous(shape, 0))
}

/// A new f32 buffer of `len` elements on the device of `like`.
pub(crate) fn alloc(op: &'static str, like: &Tensor, len: usize) -> Result<DeviceBuffer<f32>> {
    let gpu = gpu_of(op, like)?;
    DeviceBuffer::uninit(&gpu, len).map_err(backend(op))
}

/// The device a CUDA tensor lives on.
pub(crate) fn gpu_of(op: &'static str, t: &Tensor) -> Result<Arc<Gpu>> {
    match &**t.storage() {
        Storage::Cuda(CudaStorage::F32(b)) => Ok(b.gpu().clone()),
        Storage::Cuda(CudaStorage::Index(b)) => Ok(b.gpu().clone()),
        Storage::Cpu(_) => Err(TensorError::DeviceMismatch {
            op,
            lhs: Device::Cuda(0),
            rhs: Device::Cpu,
        }),
    }
}

/// `dims` with `dim` moved last, and the inverse permutation.
pub(crate) fn move_dim_last(rank: usize, dim: usize) -> (Vec<usize>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..rank).filter(|&d| d != dim).collect();
    perm.push(dim);
    let mut inverse = vec![0; rank];
    for (i, &d) in perm.iter().enumerate() {
        inverse[d] = i;
    }
    (perm, inverse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_a_dim_last_has_an_inverse() {
        let (perm, inverse) = move_dim_last(4, 1);
        assert_eq!(perm, vec![0, 2, 3, 1]);
        let back: Vec<usize> = inverse.iter().map(|&i| perm[i]).collect();
        assert_eq!(back, vec![0, 1, 2, 3]);
    }
}

//! Moving tensors between host and device, constants on the device.

use super::{backend, f32_buffer, gpu_for, strided_copy};
use crate::storage::{CpuStorage, CudaStorage, Storage};
use crate::{DType, Device, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cuda::{DeviceBuffer, Gpu};
use std::sync::{Arc, Mutex};

/// Host data ready for upload: the checks happen before the GPU is opened,
/// so a wrong dtype or index is reported even without a driver.
enum HostData<'a> {
    F32(std::borrow::Cow<'a, [f32]>),
    Index(std::borrow::Cow<'a, [i64]>),
}

/// Host → device. The result is contiguous.
pub(crate) fn to_cuda(t: &Tensor, device: Device) -> Result<Tensor> {
    const OP: &str = "to_device";
    if t.is_cuda() {
        // Already on the one CUDA device; another ordinal gets gpu_for's error.
        gpu_for(OP, device)?;
        return Ok(t.clone());
    }
    let data = match t.dtype() {
        DType::F32 => HostData::F32(t.contiguous_slice::<f32>(OP)?),
        DType::I64 => HostData::Index(t.contiguous_slice::<i64>(OP)?),
        dtype => {
            return Err(TensorError::UnsupportedDType {
                op: OP,
                dtype,
                expected: "f32 or i64 on CUDA (convert with .to_dtype(DType::F32))",
            })
        }
    };
    let gpu = gpu_for(OP, device)?;
    prepare_constants(&gpu)?;
    let storage = match data {
        HostData::F32(v) => {
            CudaStorage::F32(DeviceBuffer::from_host(&gpu, &v).map_err(backend(OP))?)
        }
        HostData::Index(v) => {
            CudaStorage::Index(DeviceBuffer::from_host(&gpu, &v).map_err(backend(OP))?)
        }
    };
    Ok(Tensor::from_cuda(
        storage,
        Layout::contiguous(t.shape().clone(), 0),
    ))
}

/// Device → host, keeping the layout (the whole buffer is copied, so views
/// stay views of the same elements).
pub(crate) fn to_cpu(t: &Tensor) -> Result<Tensor> {
    const OP: &str = "to_device";
    let storage = match &**t.storage() {
        Storage::Cpu(_) => return Ok(t.clone()),
        Storage::Cuda(CudaStorage::F32(b)) => CpuStorage::F32(b.to_host().map_err(backend(OP))?),
        Storage::Cuda(CudaStorage::Index(b)) => CpuStorage::I64(b.to_host().map_err(backend(OP))?),
    };
    Ok(Tensor::from_cpu(storage, t.layout().clone()))
}

/// A dense copy on the device.
pub(super) fn copy(t: &Tensor) -> Result<Tensor> {
    const OP: &str = "contiguous";
    let shape = t.shape().clone();
    if t.dtype() == DType::I64 {
        let buf = super::dense_index(OP, t)?;
        let owned = buf.try_clone().map_err(backend(OP))?;
        return Ok(super::from_index(owned, shape));
    }
    let buf = f32_buffer(OP, t)?;
    Ok(super::from_f32(strided_copy(OP, t, buf)?, shape))
}

/// A tensor of `shape` filled with `value` on `device`: a broadcast view
/// of a cached constant for 0 and 1 (nothing allocated; tensors are
/// values, so in-place updates copy it first), a new buffer otherwise.
pub(crate) fn full(shape: Shape, value: f64, dtype: DType, device: Device) -> Result<Tensor> {
    const OP: &str = "full";
    let gpu = gpu_for(OP, device)?;
    prepare_constants(&gpu)?;
    if let Some(t) = cached_constant(&shape, value, dtype) {
        return Ok(t);
    }
    let n = shape.numel();
    match dtype {
        DType::F32 => {
            let mut buf = DeviceBuffer::uninit(&gpu, n).map_err(backend(OP))?;
            gradlab_cuda::fill(&mut buf, value as f32).map_err(backend(OP))?;
            Ok(super::from_f32(buf, shape))
        }
        DType::I64 => {
            let v = value as i64;
            let buf = DeviceBuffer::from_host(&gpu, &vec![v; n]).map_err(backend(OP))?;
            Ok(super::from_index(buf, shape))
        }
        DType::F64 => Err(TensorError::UnsupportedDType {
            op: OP,
            dtype,
            expected: "f32 or i64 on CUDA",
        }),
    }
}

/// One-element buffers of 0 and 1 per dtype, shared by every
/// `zeros_like`/`ones_like` of a CUDA tensor (as stride-0 views).
struct Constants {
    f32_zero: Arc<Storage>,
    f32_one: Arc<Storage>,
    index_zero: Arc<Storage>,
    index_one: Arc<Storage>,
}

static CONSTANTS: Mutex<Option<Constants>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Constants>> {
    CONSTANTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Allocates the cached constants. Every CUDA tensor descends from
/// `to_device` or `full_on`, which call this first, so `zeros_like` on a
/// CUDA tensor always finds them.
fn prepare_constants(gpu: &Arc<Gpu>) -> Result<()> {
    const OP: &str = "to_device";
    let mut slot = lock();
    if slot.is_some() {
        return Ok(());
    }
    let f = |v: f32| -> Result<Arc<Storage>> {
        let b = DeviceBuffer::from_host(gpu, &[v]).map_err(backend(OP))?;
        Ok(Arc::new(Storage::Cuda(CudaStorage::F32(b))))
    };
    let i = |v: i64| -> Result<Arc<Storage>> {
        let b = DeviceBuffer::from_host(gpu, &[v]).map_err(backend(OP))?;
        Ok(Arc::new(Storage::Cuda(CudaStorage::Index(b))))
    };
    *slot = Some(Constants {
        f32_zero: f(0.0)?,
        f32_one: f(1.0)?,
        index_zero: i(0)?,
        index_one: i(1)?,
    });
    Ok(())
}

/// A broadcast view of `value` (0 or 1) with `shape`, or None when the value
/// is not cached.
fn cached_constant(shape: &Shape, value: f64, dtype: DType) -> Option<Tensor> {
    let slot = lock();
    let c = slot.as_ref()?;
    let storage = match (dtype, value) {
        (DType::F32, 0.0) => &c.f32_zero,
        (DType::F32, 1.0) => &c.f32_one,
        (DType::I64, 0.0) => &c.index_zero,
        (DType::I64, 1.0) => &c.index_one,
        _ => return None,
    };
    let layout = Layout::new(shape.clone(), vec![0; shape.rank()], 0);
    Some(Tensor::from_storage(storage.clone(), layout, dtype))
}

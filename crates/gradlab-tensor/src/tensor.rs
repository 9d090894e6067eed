//! The `Tensor` value: shared storage plus a layout.

use crate::storage::{CpuStorage, CudaStorage, Storage, StorageElement};
use crate::{DType, Device, Dim, Element, Layout, Result, Shape, TensorError};
use gradlab_cpu::Rng;
use std::fmt;
use std::sync::Arc;

/// An n-dimensional array of f32, f64 or i64 on a device.
///
/// Cloning is cheap: clones and views share storage. Forward ops return new
/// tensors; the only in-place mutation is [`Tensor::update_`], used by
/// optimizers outside the autograd graph.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
    dtype: DType,
}

/// Runs `$body` with `$T` bound to the Rust type of a float dtype; i64 is an error.
#[macro_export]
macro_rules! with_float {
    ($dtype:expr, $op:expr, |$T:ident| $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            d => Err($crate::TensorError::UnsupportedDType {
                op: $op,
                dtype: d,
                expected: "a float tensor (f32 or f64)",
            }),
        }
    };
}

impl Tensor {
    // ---- construction -------------------------------------------------

    pub(crate) fn from_storage(storage: Arc<Storage>, layout: Layout, dtype: DType) -> Tensor {
        Tensor {
            storage,
            layout,
            dtype,
        }
    }

    pub(crate) fn from_cuda(storage: CudaStorage, layout: Layout) -> Tensor {
        let dtype = storage.dtype();
        Tensor::from_storage(Arc::new(Storage::Cuda(storage)), layout, dtype)
    }

    pub(crate) fn from_cpu(storage: CpuStorage, layout: Layout) -> Tensor {
        let dtype = storage.dtype();
        Tensor {
            storage: Arc::new(Storage::Cpu(storage)),
            layout,
            dtype,
        }
    }

    /// A contiguous tensor owning `data`, whose length must match `shape`.
    pub fn from_vec<T: StorageElement>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        let numel = shape.checked_numel("from_vec")?;
        if data.len() != numel {
            return Err(TensorError::shape(
                "from_vec",
                format!(
                    "{} elements cannot fill shape {shape} ({numel} elements)",
                    data.len(),
                ),
            ));
        }
        Ok(Tensor::from_cpu(
            T::wrap(data),
            Layout::contiguous(shape, 0),
        ))
    }

    pub fn from_slice<T: StorageElement>(data: &[T], shape: impl Into<Shape>) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor.
    pub fn scalar<T: StorageElement>(value: T) -> Tensor {
        Tensor::from_cpu(T::wrap(vec![value]), Layout::contiguous(Shape::scalar(), 0))
    }

    /// A tensor of `shape` filled with `value` (converted to `dtype`).
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(vec![value as f32; n]),
            DType::F64 => CpuStorage::F64(vec![value; n]),
            DType::I64 => CpuStorage::I64(vec![value as i64; n]),
        };
        Tensor::from_cpu(storage, Layout::contiguous(shape, 0))
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// A tensor of `shape` filled with `value` on `device`. On CUDA only
    /// f32 and i64 (stored as u32) exist; a missing driver is an error.
    pub fn full_on(
        shape: impl Into<Shape>,
        value: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        match device {
            Device::Cpu => Ok(Tensor::full(shape, value, dtype)),
            Device::Cuda(_) => crate::backend::cuda::full(shape.into(), value, dtype, device),
        }
    }

    pub fn zeros_on(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full_on(shape, 0.0, dtype, device)
    }

    pub fn ones_on(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full_on(shape, 1.0, dtype, device)
    }

    /// Zeros of `self`'s shape, dtype and device. On CUDA this is a
    /// broadcast view of one cached zero (nothing is allocated); tensors are
    /// values, so writes through the in-place ops copy it first.
    pub fn zeros_like(&self) -> Result<Tensor> {
        self.backend().full(self.shape(), 0.0, self.dtype)
    }

    /// Ones of `self`'s shape, dtype and device (a broadcast view on CUDA, as
    /// [`Tensor::zeros_like`]).
    pub fn ones_like(&self) -> Result<Tensor> {
        self.backend().full(self.shape(), 1.0, self.dtype)
    }

    /// `[start, start + step, ...)` up to (excluding) `end`, as in `torch.arange`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || (end - start) / step < 0.0 {
            return Err(TensorError::invalid(
                "arange",
                format!("cannot go from {start} to {end} in steps of {step}"),
            ));
        }
        let n = ((end - start) / step).ceil() as usize;
        let values: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Ok(Tensor::from_f64_values(values, Shape::new([n]), dtype))
    }

    /// Uniform samples in `[low, high)` from a seeded generator.
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        low: f64,
        high: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Tensor {
        let shape = shape.into();
        let values = (0..shape.numel()).map(|_| rng.uniform(low, high)).collect();
        Tensor::from_f64_values(values, shape, dtype)
    }

    /// Normal samples with the given mean and standard deviation from a seeded generator.
    pub fn randn(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Tensor {
        let shape = shape.into();
        let values = (0..shape.numel())
            .map(|_| mean + std * rng.normal())
            .collect();
        Tensor::from_f64_values(values, shape, dtype)
    }

    /// A contiguous tensor of `dtype` from f64 values (rounded for f32 and i64).
    pub fn from_f64_values(values: Vec<f64>, shape: Shape, dtype: DType) -> Tensor {
        debug_assert_eq!(values.len(), shape.numel());
        let storage = match dtype {
            DType::F64 => CpuStorage::F64(values),
            DType::F32 => CpuStorage::F32(values.into_iter().map(|v| v as f32).collect()),
            DType::I64 => CpuStorage::I64(values.into_iter().map(|v| v as i64).collect()),
        };
        Tensor::from_cpu(storage, Layout::contiguous(shape, 0))
    }

    // ---- inspection ---------------------------------------------------

    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }
    pub fn rank(&self) -> usize {
        self.layout.shape().rank()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
            // One device is supported: `Gpu::global()`, ordinal 0.
            Storage::Cuda(_) => Device::Cuda(0),
        }
    }
    /// True when the tensor lives in GPU memory.
    pub fn is_cuda(&self) -> bool {
        matches!(&*self.storage, Storage::Cuda(_))
    }
    /// The backend that runs ops on this tensor: `cuda` for GPU memory;
    /// for host memory the one [`crate::backend::kernels`] selects
    /// (`cpu`, or `reference` when asked for).
    /// While this thread meters its kernels for a profiler, the backend's
    /// metered twin ([`crate::backend::meter`]).
    pub fn backend(&self) -> &'static dyn crate::backend::Backend {
        crate::backend::meter::route(match &*self.storage {
            Storage::Cpu(_) => crate::backend::host(),
            Storage::Cuda(_) => &crate::backend::cuda::Cuda,
        })
    }
    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }
    pub(crate) fn storage_mut(&mut self) -> &mut Arc<Storage> {
        &mut self.storage
    }
    /// True when the storage holds exactly this tensor's elements, in
    /// row-major order (no view, no offset, nothing more).
    pub(crate) fn is_dense(&self) -> bool {
        self.layout.is_compact() && self.storage_len() == self.numel()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// Size of dimension `dim` (`-1`: the last), as `torch.Tensor.size(dim)`.
    pub fn dim(&self, dim: impl Into<Dim>) -> Result<usize> {
        let dim = dim.into().index_among("dim", self.shape(), self.rank())?;
        Ok(self.dims()[dim])
    }
    /// True when both tensors view the same storage buffer.
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
    /// Bytes of the whole storage buffer this tensor views: the memory that
    /// keeping the tensor alive keeps allocated.
    pub fn storage_bytes(&self) -> usize {
        self.storage.len() * self.dtype.size_in_bytes()
    }
    /// An identity of the storage buffer, equal for tensors that share it
    /// (valid while one of them is alive).
    pub fn storage_id(&self) -> usize {
        Arc::as_ptr(&self.storage) as usize
    }

    pub(crate) fn cpu_storage(&self, op: &'static str) -> Result<&CpuStorage> {
        match &*self.storage {
            Storage::Cpu(s) => Ok(s),
            Storage::Cuda(_) => Err(TensorError::DeviceMismatch {
                op,
                lhs: Device::Cpu,
                rhs: self.device(),
            }),
        }
    }

    /// The whole storage buffer as a typed slice (index it with the layout's offsets).
    pub fn storage_slice<T: StorageElement>(&self, op: &'static str) -> Result<&[T]> {
        let storage = self.cpu_storage(op)?;
        T::slice(storage).ok_or_else(|| TensorError::UnsupportedDType {
            op,
            dtype: self.dtype,
            expected: T::DTYPE.name(),
        })
    }

    /// The elements as a contiguous slice: borrowed when contiguous.
    pub fn contiguous_slice<T: StorageElement>(
        &self,
        op: &'static str,
    ) -> Result<std::borrow::Cow<'_, [T]>> {
        let data = self.storage_slice::<T>(op)?;
        Ok(match self.layout.contiguous_range() {
            Some(r) => std::borrow::Cow::Borrowed(&data[r]),
            None => std::borrow::Cow::Owned(crate::backend::cpu::gather(data, &self.layout)?),
        })
    }

    /// The elements in row-major order (the dtype must be `T`'s).
    /// A CUDA tensor is copied to the host first.
    pub fn to_vec<T: StorageElement>(&self) -> Result<Vec<T>> {
        if let Storage::Cuda(_) = &*self.storage {
            return self.to_cpu()?.to_vec();
        }
        Ok(self.contiguous_slice::<T>("to_vec")?.into_owned())
    }

    /// The elements in row-major order, converted to f64 whatever the dtype.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        if let Storage::Cuda(_) = &*self.storage {
            return self.to_cpu()?.to_vec_f64();
        }
        use crate::backend::cpu::gather;
        Ok(match self.cpu_storage("to_vec_f64")? {
            CpuStorage::F32(v) => gather(v, &self.layout)?
                .into_iter()
                .map(f64::from)
                .collect(),
            CpuStorage::F64(v) => gather(v, &self.layout)?,
            CpuStorage::I64(v) => gather(v, &self.layout)?
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        })
    }

    /// The value of a one-element tensor.
    pub fn item<T: StorageElement>(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(TensorError::shape(
                "item",
                format!(
                    "needs a tensor with one element, got shape {}",
                    self.shape()
                ),
            ));
        }
        if let Storage::Cuda(_) = &*self.storage {
            return self.to_cpu()?.item();
        }
        Ok(self.storage_slice::<T>("item")?[self.layout.offset()])
    }

    /// The value of a one-element tensor as f64, whatever its dtype.
    pub fn item_f64(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(TensorError::shape(
                "item",
                format!(
                    "needs a tensor with one element, got shape {}",
                    self.shape()
                ),
            ));
        }
        Ok(self.to_vec_f64()?[0])
    }

    // ---- views (no copies) ---------------------------------------------

    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
        }
    }

    /// The dims reordered: dim `i` of the result is dim `dims[i]` of `self`
    /// (negative dims count from the end, as in `torch.permute`).
    pub fn permute<D: Into<Dim> + Copy>(&self, dims: &[D]) -> Result<Tensor> {
        let dims = crate::dim::permutation("permute", self.shape(), dims)?;
        Ok(self.with_layout(self.layout.permute(&dims)?))
    }

    /// `dim0` and `dim1` swapped (a view). A 0-d tensor accepts `0` and
    /// `-1` and stays as it is.
    pub fn transpose(&self, dim0: impl Into<Dim>, dim1: impl Into<Dim>) -> Result<Tensor> {
        let d0 = dim0.into().index("transpose", self.shape())?;
        let d1 = dim1.into().index("transpose", self.shape())?;
        if self.rank() == 0 {
            return Ok(self.clone());
        }
        Ok(self.with_layout(self.layout.transpose(d0, d1)?))
    }
    /// The transpose of a 2-D tensor.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(TensorError::shape(
                "t",
                format!("needs a 2-D tensor, got shape {}", self.shape()),
            ));
        }
        self.transpose(0, 1)
    }
    /// Elements `start..start + length` along `dim` (a view). A 0-d tensor
    /// has nothing to narrow: an error, as in PyTorch.
    pub fn narrow(&self, dim: impl Into<Dim>, start: usize, length: usize) -> Result<Tensor> {
        let dim = self.dim_of_non_scalar("narrow", dim.into())?;
        Ok(self.with_layout(self.layout.narrow(dim, start, length)?))
    }
    /// A view repeating size-1 dims (stride 0), like `torch.expand`.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.broadcast_to(&shape.into())?))
    }
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        self.broadcast_to(shape)
    }
    /// A size-1 dim inserted at `dim`, one of `rank + 1` places (`-1`
    /// appends one), as `torch.unsqueeze`.
    pub fn unsqueeze(&self, dim: impl Into<Dim>) -> Result<Tensor> {
        let dim = dim
            .into()
            .index_among("unsqueeze", self.shape(), self.rank() + 1)?;
        Ok(self.with_layout(self.layout.unsqueeze(dim)?))
    }
    /// `dim` removed when its size is 1 (the tensor unchanged otherwise,
    /// and for a 0-d tensor), as `torch.squeeze(x, dim)`.
    pub fn squeeze(&self, dim: impl Into<Dim>) -> Result<Tensor> {
        let dim = dim.into().index("squeeze", self.shape())?;
        if self.rank() == 0 {
            return Ok(self.clone());
        }
        Ok(self.with_layout(self.layout.squeeze(dim)?))
    }

    /// `dim` resolved for an op that needs a real dim (`cat`, `narrow`):
    /// a 0-d tensor is an error naming the op, as in PyTorch.
    pub(crate) fn dim_of_non_scalar(&self, op: &'static str, dim: Dim) -> Result<usize> {
        if self.rank() == 0 {
            return Err(TensorError::shape(
                op,
                format!("cannot be applied to a 0-d tensor (dim {dim} of shape [])"),
            ));
        }
        dim.index(op, self.shape())
    }

    /// Same elements in a new shape: a view of contiguous data, a copy otherwise.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_numel("reshape")? != self.numel() {
            return Err(TensorError::shape(
                "reshape",
                format!(
                    "cannot reshape a tensor of shape {} ({} elements) to {shape} ({} elements)",
                    self.shape(),
                    self.numel(),
                    shape.numel()
                ),
            ));
        }
        match self.layout.reshape(&shape) {
            Some(layout) => Ok(self.with_layout(layout)),
            None => self.contiguous()?.reshape(shape),
        }
    }

    /// Merges dims `start_dim..` into one, like `torch.flatten(x, start_dim)`
    /// (`-1` leaves the shape as it is; a 0-d tensor becomes `[1]`).
    pub fn flatten(&self, start_dim: impl Into<Dim>) -> Result<Tensor> {
        self.flatten_range(start_dim, -1)
    }

    /// Merges dims `start_dim..=end_dim` into one, like
    /// `torch.flatten(x, start_dim, end_dim)`.
    pub fn flatten_range(
        &self,
        start_dim: impl Into<Dim>,
        end_dim: impl Into<Dim>,
    ) -> Result<Tensor> {
        let start = start_dim.into().index("flatten", self.shape())?;
        let end = end_dim.into().index("flatten", self.shape())?;
        if self.rank() == 0 {
            return self.reshape([1]);
        }
        if start > end {
            return Err(TensorError::invalid(
                "flatten",
                format!(
                    "start_dim {start} comes after end_dim {end} (shape {})",
                    self.shape()
                ),
            ));
        }
        let d = self.dims();
        let mut dims = d[..start].to_vec();
        dims.push(d[start..=end].iter().product());
        dims.extend_from_slice(&d[end + 1..]);
        self.reshape(dims)
    }

    /// A contiguous copy when the layout is strided; `self` otherwise.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.copy()
    }

    /// A fresh contiguous copy that shares nothing with `self`.
    pub fn copy(&self) -> Result<Tensor> {
        self.backend().copy(self)
    }

    /// The same values in another dtype (a copy unless the dtype is already right).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype {
            return Ok(self.clone());
        }
        self.backend().cast(self, dtype)
    }

    /// Moves the tensor to `device` (a no-op when it is already there).
    /// CUDA holds f32 and i64 (as u32); moving f64 there is an error, and so
    /// is a missing driver.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        match device {
            Device::Cpu => crate::backend::cuda::to_cpu(self),
            Device::Cuda(_) => crate::backend::cuda::to_cuda(self, device),
        }
    }

    /// The tensor on the CPU (a no-op when it is already there).
    pub fn to_cpu(&self) -> Result<Tensor> {
        self.to_device(Device::Cpu)
    }

    // ---- explicit mutation ---------------------------------------------

    /// Replaces the elements of a host tensor in place through `f`, which
    /// sees them as one contiguous slice. Storage shared with other tensors
    /// is copied first (copy-on-write), so no other tensor observes the
    /// change. A tensor in GPU memory cannot be reached by a host closure:
    /// update it through ops, or [`Tensor::sgd_step_`] and [`Tensor::adam_step_`].
    pub fn update_<T: Element>(&mut self, f: impl FnOnce(&mut [T])) -> Result<()> {
        if let Storage::Cuda(_) = &*self.storage {
            return Err(TensorError::invalid(
                "update_",
                format!(
                    "a tensor on {} cannot be updated through a host closure: use tensor ops or the optimizer steps",
                    self.device()
                ),
            ));
        }
        f(crate::backend::host::unique_mut::<T>("update_", self)?);
        Ok(())
    }

    pub(crate) fn storage_len(&self) -> usize {
        self.storage.len()
    }

    /// Checks that `self` and `other` have the same dtype and device, for op `op`.
    pub fn check_same_kind(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.dtype != other.dtype {
            return Err(TensorError::DTypeMismatch {
                op,
                lhs: self.dtype,
                rhs: other.dtype,
            });
        }
        if self.device() != other.device() {
            return Err(TensorError::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: other.device(),
            });
        }
        Ok(())
    }

    /// Checks that `self` and `other` live on the same device, for op `op`
    /// (for pairs whose dtypes differ by design, such as values and indices).
    pub fn check_same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.device() != other.device() {
            return Err(TensorError::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: other.device(),
            });
        }
        Ok(())
    }

    /// Checks that the tensor holds floats, for op `op`.
    pub fn check_float(&self, op: &'static str) -> Result<()> {
        if self.dtype.is_float() {
            Ok(())
        } else {
            Err(TensorError::UnsupportedDType {
                op,
                dtype: self.dtype,
                expected: "a float tensor (f32 or f64)",
            })
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor(shape={}, dtype={}, device={}",
            self.shape(),
            self.dtype,
            self.device()
        )?;
        if let Ok(values) = self.to_vec_f64() {
            const SHOWN: usize = 8;
            let head: Vec<String> = values
                .iter()
                .take(SHOWN)
                .map(|v| format!("{v:.4}"))
                .collect();
            let more = if values.len() > SHOWN { ", ..." } else { "" };
            write!(f, ", values=[{}{more}]", head.join(", "))?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

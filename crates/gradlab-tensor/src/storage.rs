//! The buffers behind tensors. Views share one `Storage` through an `Arc`.

use crate::DType;
use gradlab_cuda::DeviceBuffer;

/// Host memory of one dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// A dropped host buffer goes back to the backend's bins, for the next
/// output of its length (see `backend::recycle`).
impl Drop for CpuStorage {
    fn drop(&mut self) {
        use crate::backend::recycle::give;
        match self {
            CpuStorage::F32(v) => give(std::mem::take(v)),
            CpuStorage::F64(v) => give(std::mem::take(v)),
            CpuStorage::I64(v) => give(std::mem::take(v)),
        }
    }
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I64(_) => DType::I64,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Device memory of one dtype. CUDA holds f32 values and i64 index
/// tensors (class indices, max-pool argmax positions), stored as they are
/// on the CPU, -1 and PyTorch's ignore index -100 included.
#[derive(Debug)]
pub enum CudaStorage {
    F32(DeviceBuffer<f32>),
    /// An `I64` tensor's values.
    Index(DeviceBuffer<i64>),
}

impl CudaStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CudaStorage::F32(_) => DType::F32,
            CudaStorage::Index(_) => DType::I64,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CudaStorage::F32(b) => b.len(),
            CudaStorage::Index(b) => b.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a tensor's elements live.
#[derive(Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

impl Storage {
    /// Number of elements in the buffer (views may use fewer).
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Element types that a `CpuStorage` can hold, with typed access to it.
pub trait StorageElement: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    fn slice_mut(storage: &mut CpuStorage) -> Option<&mut Vec<Self>>;
    fn wrap(data: Vec<Self>) -> CpuStorage;
    fn cast_to_f64(self) -> f64;
    fn cast_from_f64(v: f64) -> Self;
}

macro_rules! storage_element {
    ($t:ty, $variant:ident) => {
        impl StorageElement for $t {
            const DTYPE: DType = DType::$variant;
            fn slice(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(storage: &mut CpuStorage) -> Option<&mut Vec<Self>> {
                match storage {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(data: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(data)
            }
            fn cast_to_f64(self) -> f64 {
                self as f64
            }
            fn cast_from_f64(v: f64) -> Self {
                v as $t
            }
        }
    };
}

storage_element!(f32, F32);
storage_element!(f64, F64);
storage_element!(i64, I64);

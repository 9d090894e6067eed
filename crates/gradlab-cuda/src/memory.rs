//! Device memory: a caching allocator and typed buffers.
//!
//! All work runs on the device's single stream, in order, so a block freed by
//! the host can be handed to the next allocation at once: anything the next
//! owner enqueues runs after everything the previous owner enqueued. Freed
//! blocks are kept in per-size-class free lists, so a training step that
//! allocates the same sizes every iteration stops calling the driver after the
//! first one.

use crate::device::Gpu;
use crate::error::{CudaError, Result};
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

/// Element types a [`DeviceBuffer`] can hold.
pub trait DeviceElem:
    DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static
{
    /// Name used in messages.
    const NAME: &'static str;
}
impl DeviceElem for f32 {
    const NAME: &'static str = "f32";
}
impl DeviceElem for u32 {
    const NAME: &'static str = "u32";
}
impl DeviceElem for i32 {
    const NAME: &'static str = "i32";
}
impl DeviceElem for u64 {
    const NAME: &'static str = "u64";
}
impl DeviceElem for i64 {
    const NAME: &'static str = "i64";
}

/// Smallest block handed out, in bytes (also the alignment granularity).
const MIN_BLOCK: usize = 512;

/// Rounds a request up to its size class: multiples of 512 bytes up to 64 KiB,
/// then four classes per power of two (at most 25% slack).
pub fn size_class(bytes: usize) -> usize {
    if bytes <= 64 * 1024 {
        return bytes.max(1).div_ceil(MIN_BLOCK) * MIN_BLOCK;
    }
    let top = usize::BITS - 1 - bytes.leading_zeros(); // 2^top <= bytes
    let quarter = 1usize << (top - 2);
    bytes.div_ceil(quarter) * quarter
}

/// Allocator counters, for tests and the `bench` report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Blocks obtained from the driver (cuMemAlloc calls that succeeded).
    pub driver_allocs: u64,
    /// Allocations served from the cache.
    pub cache_hits: u64,
    /// Blocks returned to the driver (by `empty_cache` or after an out-of-memory retry).
    pub driver_frees: u64,
    /// Bytes (by size class) owned by live buffers.
    pub bytes_in_use: usize,
    /// Bytes held in the free lists.
    pub bytes_cached: usize,
    /// Highest `bytes_in_use` seen.
    pub peak_bytes_in_use: usize,
}

#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<usize, Vec<u64>>,
    pub(crate) stats: MemoryStats,
}

impl Pool {
    pub(crate) fn take(&mut self, class: usize) -> Option<u64> {
        let ptr = self.free.get_mut(&class)?.pop()?;
        self.stats.cache_hits += 1;
        self.stats.bytes_cached -= class;
        self.note_in_use(class);
        Some(ptr)
    }

    pub(crate) fn note_in_use(&mut self, class: usize) {
        self.stats.bytes_in_use += class;
        self.stats.peak_bytes_in_use = self.stats.peak_bytes_in_use.max(self.stats.bytes_in_use);
    }

    pub(crate) fn give_back(&mut self, ptr: u64, class: usize) {
        self.stats.bytes_in_use -= class;
        self.stats.bytes_cached += class;
        self.free.entry(class).or_default().push(ptr);
    }

    /// Removes every cached block, returning them (with their size class)
    /// for the caller to free.
    pub(crate) fn drain(&mut self) -> Vec<(u64, usize)> {
        let blocks: Vec<_> = self
            .free
            .drain()
            .flat_map(|(class, v)| v.into_iter().map(move |p| (p, class)))
            .collect();
        self.stats.driver_frees += blocks.len() as u64;
        self.stats.bytes_cached = 0;
        blocks
    }
}

/// A typed array in device memory, owned, returned to the allocator's cache on drop.
///
/// Reads and writes happen on the device's stream in submission order;
/// [`DeviceBuffer::to_host`] waits for everything queued before it.
pub struct DeviceBuffer<T: DeviceElem> {
    ptr: u64,
    len: usize,
    class: usize,
    gpu: Arc<Gpu>,
    _elem: PhantomData<T>,
}

impl<T: DeviceElem> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceBuffer<{}>[{}] @ {:#x}",
            T::NAME,
            self.len,
            self.ptr
        )
    }
}

impl<T: DeviceElem> DeviceBuffer<T> {
    /// Allocates `len` elements with unspecified contents (a reused block
    /// keeps whatever its previous owner wrote).
    pub fn uninit(gpu: &Arc<Gpu>, len: usize) -> Result<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            CudaError::invalid("alloc", format!("{len} elements of {} overflow", T::NAME))
        })?;
        let (ptr, class) = if bytes == 0 {
            (0, 0)
        } else {
            let class = size_class(bytes);
            (gpu.alloc_block(class)?, class)
        };
        Ok(DeviceBuffer {
            ptr,
            len,
            class,
            gpu: gpu.clone(),
            _elem: PhantomData,
        })
    }

    /// Allocates `len` zeroed elements.
    pub fn zeros(gpu: &Arc<Gpu>, len: usize) -> Result<Self> {
        let buf = Self::uninit(gpu, len)?;
        if len > 0 {
            gpu.memset_zero(buf.ptr, buf.num_bytes())?;
        }
        Ok(buf)
    }

    /// Copies a host slice into a new buffer.
    pub fn from_host(gpu: &Arc<Gpu>, data: &[T]) -> Result<Self> {
        let mut buf = Self::uninit(gpu, data.len())?;
        buf.copy_from_host(data)?;
        Ok(buf)
    }

    /// Overwrites the whole buffer with `data` (same length).
    pub fn copy_from_host(&mut self, data: &[T]) -> Result<()> {
        if data.len() != self.len {
            return Err(CudaError::invalid(
                "copy_from_host",
                format!(
                    "host slice has {} elements, buffer {}",
                    data.len(),
                    self.len
                ),
            ));
        }
        if self.len == 0 {
            return Ok(());
        }
        self.gpu.copy_htod(self.ptr, as_bytes(data))
    }

    /// Copies the buffer to a new host vector, waiting for queued work.
    pub fn to_host(&self) -> Result<Vec<T>> {
        let mut out = vec![T::default(); self.len];
        if self.len > 0 {
            self.gpu.copy_dtoh(as_bytes_mut(&mut out), self.ptr)?;
        }
        self.gpu.synchronize()?;
        Ok(out)
    }

    /// A new buffer holding a copy of this one.
    pub fn try_clone(&self) -> Result<Self> {
        let out = Self::uninit(&self.gpu, self.len)?;
        if self.len > 0 {
            self.gpu.copy_dtod(out.ptr, self.ptr, self.num_bytes())?;
        }
        Ok(out)
    }

    /// Copies all of `src` (same length) into this buffer, on the device.
    pub fn copy_from(&mut self, src: &DeviceBuffer<T>) -> Result<()> {
        if src.len != self.len {
            return Err(CudaError::invalid(
                "copy_from",
                format!("source has {} elements, destination {}", src.len, self.len),
            ));
        }
        if self.len > 0 {
            self.gpu.copy_dtod(self.ptr, src.ptr, self.num_bytes())?;
        }
        Ok(())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size in bytes of the elements (not of the size class).
    pub fn num_bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    /// The device this buffer lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Raw device address of element 0, for kernel arguments.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// Raw device address of element `offset` (which may be `len` for an empty view).
    pub(crate) fn ptr_at(&self, offset: usize) -> u64 {
        self.ptr + (offset * std::mem::size_of::<T>()) as u64
    }
}

/// The bytes of a slice of device elements (plain numbers without padding).
fn as_bytes<T: DeviceElem>(data: &[T]) -> &[u8] {
    // SAFETY: DeviceElem types are plain numbers: every byte is initialised.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), size_of_val(data)) }
}

fn as_bytes_mut<T: DeviceElem>(data: &mut [T]) -> &mut [u8] {
    // SAFETY: as above, and any bit pattern is a valid DeviceElem (ValidAsZeroBits
    // plus plain numbers).
    unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), size_of_val(data)) }
}

impl<T: DeviceElem> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if self.class > 0 {
            self.gpu.release_block(self.ptr, self.class);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_cover_requests_with_bounded_slack() {
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(64 * 1024), 64 * 1024);
        assert_eq!(size_class(64 * 1024 + 1), 80 * 1024);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), (1 << 20) + (1 << 18));
        for bytes in [1usize, 700, 4096, 65_537, 100_000, 3_000_000, 123_456_789] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(
                c - bytes < 512 || c as f64 <= bytes as f64 * 1.25,
                "{bytes} -> {c}"
            );
            assert_eq!(c, size_class(c), "a class is its own class");
        }
    }

    #[test]
    fn pool_reuses_freed_blocks_of_the_same_class() {
        let mut pool = Pool::default();
        pool.note_in_use(1024);
        pool.give_back(0x1000, 1024);
        assert_eq!(pool.stats.bytes_cached, 1024);
        assert_eq!(pool.take(512), None);
        assert_eq!(pool.take(1024), Some(0x1000));
        assert_eq!(pool.stats.cache_hits, 1);
        assert_eq!(pool.stats.bytes_in_use, 1024);
        pool.give_back(0x1000, 1024);
        assert_eq!(pool.drain(), vec![(0x1000, 1024)]);
        assert_eq!(pool.stats.bytes_cached, 0);
    }
}

//! The device: where kernels run, one stream, the allocator and the kernel cache.
//!
//! A [`Gpu`] normally drives a CUDA device through the driver API. It can
//! also be built on a [`HostKernels`] engine that runs the same CUDA C
//! sources on the CPU (the test harness compiles `kernels/*.cu` as C++), so
//! that every launch wrapper, with its host-side choices and its kernels, can
//! be checked on a machine without a GPU. Buffers of such a device live in
//! host memory; everything else is the same code path.

use crate::compile::{compile_kernel_file, nvrtc_available, KernelFile};
use crate::error::{CudaError, Result};
use crate::memory::{MemoryStats, Pool};
use cudarc::driver::{
    result as cu, sys, CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig,
    PushKernelArg,
};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Runs kernels of `kernels/*.cu` on the CPU, one launch at a time, to
/// completion. Implemented by the `gradlab-cuda-harness` crate.
pub trait HostKernels: Send + Sync {
    /// A short description, used as the device name.
    fn describe(&self) -> String;

    /// Runs kernel `name` of `file` over `grid` blocks of `block` threads.
    /// `params` holds, for each kernel parameter in order, a pointer to its
    /// value and the value's size in bytes; an implementation checks the
    /// count and the sizes against the kernel's signature.
    ///
    /// # Safety
    /// Every pointer in `params` points to a live value of the given size,
    /// and device pointers among the values point to host memory large
    /// enough for what the kernel touches.
    unsafe fn launch(
        &self,
        file: KernelFile,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &[(*const c_void, usize)],
    ) -> std::result::Result<(), String>;
}

/// The CUDA driver objects of a real device.
struct Driver {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<KernelFile, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(KernelFile, &'static str), CudaFunction>>,
}

enum Engine {
    Driver(Driver),
    Host(Arc<dyn HostKernels>),
}

/// Slots of the device status block that kernels write when they meet bad
/// input they cannot report otherwise (see `status_error`).
pub(crate) const STATUS_SLOTS: usize = 8;

/// The error a kernel reported through the status block, if any. Codes
/// match `STATUS_*` in the kernel files:
/// `[1, row, target, classes, ignore_index]`: a class index out of range.
fn status_error(words: &[i64; STATUS_SLOTS]) -> Option<CudaError> {
    {
        match words[0] {
            0 => None,
            1 => Some(CudaError::invalid(
                "cross_entropy",
                format!(
                    "target {} at row {} is out of range for {} classes (ignore_index is {})",
                    words[2], words[1], words[3], words[4]
                ),
            )),
            code => Some(CudaError::invalid(
                "kernel status",
                format!("unknown status code {code} ({words:?})"),
            )),
        }
    }
}

/// One GPU as gradlab uses it: a context, a single stream on which every copy
/// and kernel runs in order, a caching allocator and the compiled kernels.
///
/// Cheap to share (`Arc<Gpu>`); every buffer keeps its device alive.
pub struct Gpu {
    engine: Engine,
    name: String,
    compute_capability: (i32, i32),
    sm_count: usize,
    pool: Mutex<Pool>,
    /// Device address of `STATUS_SLOTS` zeroed i64 words.
    status: u64,
    /// Set when a kernel that may write the status block was queued.
    status_pending: AtomicBool,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("name", &self.name)
            .field("compute_capability", &self.compute_capability)
            .field("on_host", &self.runs_on_host())
            .finish()
    }
}

static GLOBAL: Mutex<Option<Arc<Gpu>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether libcuda can be opened (checked without risking cudarc's panic).
pub fn driver_available() -> bool {
    // SAFETY: only tries to dlopen the library and drops the handle.
    unsafe { sys::is_culib_present() }
}

/// Alignment of host-engine allocations (what cuMemAlloc guarantees, and more).
const HOST_ALIGN: usize = 256;

fn host_layout(bytes: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(bytes.max(1), HOST_ALIGN).expect("size class overflow")
}

impl Gpu {
    /// Opens device `ordinal`. Fails with a clear error, never a panic, when
    /// the driver, NVRTC or the device is missing.
    pub fn new(ordinal: usize) -> Result<Arc<Gpu>> {
        if !driver_available() {
            return Err(CudaError::NoDriver);
        }
        if !nvrtc_available() {
            return Err(CudaError::NoNvrtc);
        }
        let ctx =
            CudaContext::new(ordinal).map_err(|source| CudaError::NoDevice { ordinal, source })?;
        let stream = ctx
            .new_stream()
            .map_err(CudaError::driver("create stream"))?;
        let name = ctx.name().map_err(CudaError::driver("device name"))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(CudaError::driver("compute capability"))?;
        let sm_count = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(CudaError::driver("multiprocessor count"))?
            .max(1) as usize;
        let engine = Engine::Driver(Driver {
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        });
        Gpu::assemble(engine, name, compute_capability, sm_count)
    }

    /// A device whose kernels run on the CPU through `kernels` and whose
    /// buffers live in host memory, reporting `sm_count` multiprocessors
    /// (which sizes grids: a small count makes grid-stride loops wrap).
    /// For tests of the launch wrappers and kernels without a GPU.
    pub fn with_host_kernels(kernels: Arc<dyn HostKernels>, sm_count: usize) -> Result<Arc<Gpu>> {
        let name = kernels.describe();
        Gpu::assemble(Engine::Host(kernels), name, (9, 0), sm_count.max(1))
    }

    fn assemble(
        engine: Engine,
        name: String,
        compute_capability: (i32, i32),
        sm_count: usize,
    ) -> Result<Arc<Gpu>> {
        let mut gpu = Gpu {
            engine,
            name,
            compute_capability,
            sm_count,
            pool: Mutex::new(Pool::default()),
            status: 0,
            status_pending: AtomicBool::new(false),
        };
        let bytes = STATUS_SLOTS * std::mem::size_of::<i64>();
        gpu.status = gpu.raw_alloc(bytes)?;
        gpu.memset_zero(gpu.status, bytes)?;
        Ok(Arc::new(gpu))
    }

    /// The process-wide device 0, opened on first use. A failure is not
    /// cached: the next call tries again and reports the same clear error.
    pub fn global() -> Result<Arc<Gpu>> {
        let mut slot = lock(&GLOBAL);
        if let Some(gpu) = slot.as_ref() {
            return Ok(gpu.clone());
        }
        let gpu = Gpu::new(0)?;
        *slot = Some(gpu.clone());
        Ok(gpu)
    }

    /// Device name as the driver reports it, e.g. `NVIDIA H200`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a device built by [`Gpu::with_host_kernels`].
    pub fn runs_on_host(&self) -> bool {
        matches!(self.engine, Engine::Host(_))
    }

    /// Compute capability (major, minor), e.g. (9, 0).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// The NVRTC virtual architecture kernels are compiled for, e.g. `compute_90`.
    pub fn arch(&self) -> String {
        let (major, minor) = self.compute_capability;
        format!("compute_{major}{minor}")
    }

    /// Number of streaming multiprocessors (sizes grids and split-K).
    pub fn sm_count(&self) -> usize {
        self.sm_count
    }

    /// Blocks until every queued copy and kernel has finished; reports
    /// asynchronous kernel errors (e.g. an illegal address) and bad input
    /// that a kernel found since the last check (e.g. a class index out of
    /// range in a cross-entropy), which is then cleared.
    pub fn synchronize(&self) -> Result<()> {
        if let Engine::Driver(d) = &self.engine {
            d.stream
                .synchronize()
                .map_err(CudaError::driver("synchronize"))?;
        }
        if !self.status_pending.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let mut words = [0i64; STATUS_SLOTS];
        // SAFETY: i64 has no padding; the status block holds STATUS_SLOTS words.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size_of_val(&words))
        };
        self.copy_dtoh(bytes, self.status)?;
        match status_error(&words) {
            None => Ok(()),
            Some(e) => {
                self.memset_zero(self.status, size_of_val(&words))?;
                self.sync_stream()?;
                Err(e)
            }
        }
    }

    /// Allocator counters.
    pub fn memory_stats(&self) -> MemoryStats {
        lock(&self.pool).stats
    }

    /// Returns every cached (free) block to the driver.
    pub fn empty_cache(&self) -> Result<()> {
        self.sync_stream()?;
        let blocks = lock(&self.pool).drain();
        for (ptr, class) in blocks {
            self.raw_free(ptr, class)?;
        }
        Ok(())
    }

    /// Compiles and loads every kernel file now, so that later timings do not
    /// include NVRTC (nothing to do for a host engine).
    pub fn load_all_kernels(&self) -> Result<()> {
        if let Engine::Driver(d) = &self.engine {
            for file in KernelFile::ALL {
                self.module(d, file)?;
            }
        }
        Ok(())
    }

    /// The driver objects, or an error naming `op` on a host engine.
    fn driver(&self, op: &'static str) -> Result<&Driver> {
        match &self.engine {
            Engine::Driver(d) => Ok(d),
            Engine::Host(_) => Err(CudaError::invalid(
                op,
                "needs a CUDA device; this one runs its kernels on the CPU",
            )),
        }
    }

    pub(crate) fn context(&self) -> Result<&Arc<CudaContext>> {
        Ok(&self.driver("events")?.ctx)
    }

    pub(crate) fn stream(&self) -> Result<&Arc<CudaStream>> {
        Ok(&self.driver("events")?.stream)
    }

    /// Waits for the stream only (no status check).
    fn sync_stream(&self) -> Result<()> {
        match &self.engine {
            Engine::Driver(d) => d
                .stream
                .synchronize()
                .map_err(CudaError::driver("synchronize")),
            Engine::Host(_) => Ok(()),
        }
    }

    fn bind(&self, d: &Driver) -> Result<()> {
        d.ctx
            .bind_to_thread()
            .map_err(CudaError::driver("bind context"))
    }

    /// Device address of the status block, for kernels that report bad
    /// input. Call [`Gpu::check_status_later`] once such a kernel is queued.
    pub(crate) fn status_block(&self) -> u64 {
        self.status
    }

    /// Marks the status block for checking at the next synchronisation (after
    /// the kernel that may write it is queued, so that a synchronisation on
    /// another thread cannot clear the mark before the kernel runs).
    pub(crate) fn check_status_later(&self) {
        self.status_pending.store(true, Ordering::Release);
    }

    // ----------------------------------------------------------- memory --

    /// A fresh block of `bytes` from the driver (or the host heap).
    fn raw_alloc(&self, bytes: usize) -> Result<u64> {
        match &self.engine {
            Engine::Driver(d) => {
                self.bind(d)?;
                // SAFETY: plain allocation; the caller owns the pointer.
                unsafe { cu::malloc_sync(bytes) }.map_err(|source| {
                    if source.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY {
                        CudaError::OutOfMemory {
                            bytes,
                            in_use: self.memory_stats().bytes_in_use,
                            source,
                        }
                    } else {
                        CudaError::Driver {
                            op: format!("allocate {bytes} bytes"),
                            source,
                        }
                    }
                })
            }
            Engine::Host(_) => {
                // SAFETY: non-zero size; freed in raw_free with the same layout.
                let p = unsafe { std::alloc::alloc_zeroed(host_layout(bytes)) };
                if p.is_null() {
                    return Err(CudaError::invalid(
                        "alloc",
                        format!("host allocation of {bytes} bytes failed"),
                    ));
                }
                Ok(p as u64)
            }
        }
    }

    fn raw_free(&self, ptr: u64, bytes: usize) -> Result<()> {
        match &self.engine {
            Engine::Driver(d) => {
                self.bind(d)?;
                // SAFETY: the block came from cuMemAlloc, no buffer owns it,
                // and the stream is idle.
                unsafe { cu::free_sync(ptr) }.map_err(CudaError::driver("free"))
            }
            Engine::Host(_) => {
                // SAFETY: allocated by raw_alloc with this size.
                unsafe { std::alloc::dealloc(ptr as *mut u8, host_layout(bytes)) };
                Ok(())
            }
        }
    }

    /// A block of exactly `class` bytes, from the cache when possible.
    pub(crate) fn alloc_block(&self, class: usize) -> Result<u64> {
        if let Some(ptr) = lock(&self.pool).take(class) {
            return Ok(ptr);
        }
        let ptr = match self.raw_alloc(class) {
            Ok(ptr) => ptr,
            Err(CudaError::OutOfMemory { .. }) => {
                self.empty_cache()?;
                self.raw_alloc(class)?
            }
            Err(e) => return Err(e),
        };
        let mut pool = lock(&self.pool);
        pool.stats.driver_allocs += 1;
        pool.note_in_use(class);
        Ok(ptr)
    }

    pub(crate) fn release_block(&self, ptr: u64, class: usize) {
        lock(&self.pool).give_back(ptr, class);
    }

    /// Zeroes `bytes` bytes at `ptr`, in stream order.
    pub(crate) fn memset_zero(&self, ptr: u64, bytes: usize) -> Result<()> {
        match &self.engine {
            Engine::Driver(d) => {
                self.bind(d)?;
                // SAFETY: the caller guarantees the block holds `bytes` bytes.
                unsafe { cu::memset_d8_async(ptr, 0, bytes, d.stream.cu_stream()) }
                    .map_err(CudaError::driver("memset"))
            }
            Engine::Host(_) => {
                // SAFETY: as above; host engines run everything in order at once.
                unsafe { std::ptr::write_bytes(ptr as *mut u8, 0, bytes) };
                Ok(())
            }
        }
    }

    /// Copies `src` to device address `dst`, in stream order.
    pub(crate) fn copy_htod(&self, dst: u64, src: &[u8]) -> Result<()> {
        match &self.engine {
            Engine::Driver(d) => {
                self.bind(d)?;
                // SAFETY: the caller guarantees the block holds src.len()
                // bytes; pageable sources are staged before the call returns.
                unsafe { cu::memcpy_htod_async(dst, src, d.stream.cu_stream()) }
                    .map_err(CudaError::driver("copy host to device"))
            }
            Engine::Host(_) => {
                // SAFETY: as above; the regions cannot overlap (a host slice
                // never lies inside a device block handed out by the pool).
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
                Ok(())
            }
        }
    }

    /// Copies from device address `src` into `dst` and waits for it.
    pub(crate) fn copy_dtoh(&self, dst: &mut [u8], src: u64) -> Result<()> {
        match &self.engine {
            Engine::Driver(d) => {
                self.bind(d)?;
                // SAFETY: sizes checked by the caller; synchronised before return.
                unsafe { cu::memcpy_dtoh_async(dst, src, d.stream.cu_stream()) }
                    .map_err(CudaError::driver("copy device to host"))?;
                self.sync_stream()
            }
            Engine::Host(_) => {
                // SAFETY: as above.
                unsafe {
                    std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len())
                };
                Ok(())
            }
        }
    }

    /// Copies `bytes` bytes between device blocks, in stream order.
    pub(crate) fn copy_dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        match &self.engine {
            Engine::Driver(d) => {
                self.bind(d)?;
                // SAFETY: both blocks hold `bytes` bytes; stream-ordered copy.
                unsafe { cu::memcpy_dtod_async(dst, src, bytes, d.stream.cu_stream()) }
                    .map_err(CudaError::driver("copy device to device"))
            }
            Engine::Host(_) => {
                // SAFETY: distinct buffers never overlap.
                unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
                Ok(())
            }
        }
    }

    // ---------------------------------------------------------- kernels --

    fn module(&self, d: &Driver, file: KernelFile) -> Result<Arc<CudaModule>> {
        if let Some(m) = lock(&d.modules).get(&file) {
            return Ok(m.clone());
        }
        // Compiled outside the lock; a racing thread may compile the same file
        // once more, which is harmless.
        let compiled = compile_kernel_file(file, &self.arch())?;
        let module = d
            .ctx
            .load_module(compiled.image)
            .map_err(CudaError::driver(format!(
                "load module {}",
                file.file_name()
            )))?;
        Ok(lock(&d.modules).entry(file).or_insert(module).clone())
    }

    fn function(&self, d: &Driver, file: KernelFile, name: &'static str) -> Result<CudaFunction> {
        if let Some(f) = lock(&d.functions).get(&(file, name)) {
            return Ok(f.clone());
        }
        let f = self
            .module(d, file)?
            .load_function(name)
            .map_err(CudaError::driver(format!(
                "load kernel {name} from {}",
                file.file_name()
            )))?;
        lock(&d.functions).insert((file, name), f.clone());
        Ok(f)
    }

    /// Enqueues kernel `name` of `file` on the stream (a host engine runs it
    /// to completion before returning).
    pub(crate) fn launch(
        &self,
        file: KernelFile,
        name: &'static str,
        cfg: LaunchConfig,
        args: &[Arg],
    ) -> Result<()> {
        let d = match &self.engine {
            Engine::Driver(d) => d,
            Engine::Host(kernels) => {
                let params: Vec<_> = args.iter().map(Arg::raw).collect();
                // SAFETY: as for the driver below; device pointers of a host
                // engine are host addresses of live blocks.
                return unsafe { kernels.launch(file, name, cfg.grid_dim, cfg.block_dim, &params) }
                    .map_err(|message| CudaError::invalid(name, message));
            }
        };
        let func = self.function(d, file, name)?;
        let mut builder = d.stream.launch_builder(&func);
        for arg in args {
            match arg {
                Arg::I32(v) => builder.arg(v),
                Arg::I64(v) => builder.arg(v),
                Arg::F32(v) => builder.arg(v),
                Arg::Ptr(v) => builder.arg(v),
                Arg::Conv(v) => builder.arg(v),
                Arg::Pool(v) => builder.arg(v),
                Arg::Strided(v) => builder.arg(v),
            };
        }
        // SAFETY: each wrapper passes the arguments in the order and types of
        // the kernel's signature, with pointers to live buffers whose extents
        // it has checked against the problem.
        unsafe { builder.launch(cfg) }
            .map(|_| ())
            .map_err(CudaError::driver(format!("launch {name}")))
    }

    /// Grid size for a grid-stride loop over `n` items, 256 threads a block.
    pub(crate) fn elementwise_config(&self, n: usize) -> LaunchConfig {
        let blocks = n.div_ceil(256).clamp(1, self.sm_count * 32);
        LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // Every buffer holds an Arc<Gpu>, so none is alive here: free the cache.
        let _ = self.sync_stream();
        let blocks = lock(&self.pool).drain();
        for (ptr, class) in blocks {
            let _ = self.raw_free(ptr, class);
        }
        let _ = self.raw_free(self.status, STATUS_SLOTS * std::mem::size_of::<i64>());
    }
}

/// A kernel argument, kept alive in a slice until the launch call returns.
pub(crate) enum Arg {
    I32(i32),
    I64(i64),
    F32(f32),
    Ptr(u64),
    Conv(crate::ops::conv::ConvParams),
    Pool(crate::ops::pool::PoolParams),
    Strided(crate::ops::elementwise::StridedArgs),
}

impl Arg {
    /// Pointer to the value and its size, as a host engine receives it.
    fn raw(&self) -> (*const c_void, usize) {
        fn raw_of<T>(v: &T) -> (*const c_void, usize) {
            (v as *const T as *const c_void, size_of::<T>())
        }
        match self {
            Arg::I32(v) => raw_of(v),
            Arg::I64(v) => raw_of(v),
            Arg::F32(v) => raw_of(v),
            Arg::Ptr(v) => raw_of(v),
            Arg::Conv(v) => raw_of(v),
            Arg::Pool(v) => raw_of(v),
            Arg::Strided(v) => raw_of(v),
        }
    }
}

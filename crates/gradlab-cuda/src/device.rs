//! The device: a CUDA context, one stream, the allocator and the kernel cache.

use crate::compile::{compile_kernel_file, nvrtc_available, KernelFile};
use crate::error::{CudaError, Result};
use crate::memory::{MemoryStats, Pool};
use cudarc::driver::{
    result as cu, sys, CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig,
    PushKernelArg,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One GPU as gradlab uses it: a context, a single stream on which every copy
/// and kernel runs in order, a caching allocator and the compiled kernels.
///
/// Cheap to share (`Arc<Gpu>`); every buffer keeps its device alive.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    compute_capability: (i32, i32),
    sm_count: usize,
    pool: Mutex<Pool>,
    modules: Mutex<HashMap<KernelFile, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(KernelFile, &'static str), CudaFunction>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ctx.ordinal())
            .field("name", &self.name)
            .field("compute_capability", &self.compute_capability)
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
        Ok(Arc::new(Gpu {
            ctx,
            stream,
            name,
            compute_capability,
            sm_count,
            pool: Mutex::new(Pool::default()),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        }))
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
    /// asynchronous kernel errors (e.g. an illegal address).
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(CudaError::driver("synchronize"))
    }

    /// Allocator counters.
    pub fn memory_stats(&self) -> MemoryStats {
        lock(&self.pool).stats
    }

    /// Returns every cached (free) block to the driver.
    pub fn empty_cache(&self) -> Result<()> {
        self.synchronize()?;
        let blocks = lock(&self.pool).drain();
        self.bind()?;
        for ptr in blocks {
            // SAFETY: the block came from cuMemAlloc, no buffer owns it, and
            // the stream is idle.
            unsafe { cu::free_sync(ptr) }.map_err(CudaError::driver("free"))?;
        }
        Ok(())
    }

    /// Compiles and loads every kernel file now, so that later timings do not
    /// include NVRTC.
    pub fn load_all_kernels(&self) -> Result<()> {
        for file in KernelFile::ALL {
            self.module(file)?;
        }
        Ok(())
    }

    pub(crate) fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(CudaError::driver("bind context"))
    }

    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub(crate) fn cu_stream(&self) -> sys::CUstream {
        self.stream.cu_stream()
    }

    /// A block of exactly `class` bytes, from the cache when possible.
    pub(crate) fn alloc_block(&self, class: usize) -> Result<sys::CUdeviceptr> {
        if let Some(ptr) = lock(&self.pool).take(class) {
            return Ok(ptr);
        }
        self.bind()?;
        // SAFETY: plain allocation; the pointer is owned by the returned buffer.
        let first = unsafe { cu::malloc_sync(class) };
        let ptr = match first {
            Ok(ptr) => ptr,
            Err(e) if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY => {
                self.empty_cache()?;
                // SAFETY: as above.
                unsafe { cu::malloc_sync(class) }.map_err(|source| CudaError::OutOfMemory {
                    bytes: class,
                    in_use: self.memory_stats().bytes_in_use,
                    source,
                })?
            }
            Err(source) => {
                return Err(CudaError::Driver {
                    op: format!("allocate {class} bytes"),
                    source,
                })
            }
        };
        let mut pool = lock(&self.pool);
        pool.stats.driver_allocs += 1;
        pool.note_in_use(class);
        Ok(ptr)
    }

    pub(crate) fn release_block(&self, ptr: sys::CUdeviceptr, class: usize) {
        lock(&self.pool).give_back(ptr, class);
    }

    fn module(&self, file: KernelFile) -> Result<Arc<CudaModule>> {
        if let Some(m) = lock(&self.modules).get(&file) {
            return Ok(m.clone());
        }
        // Compiled outside the lock; a racing thread may compile the same file
        // once more, which is harmless.
        let compiled = compile_kernel_file(file, &self.arch())?;
        let module = self
            .ctx
            .load_module(compiled.image)
            .map_err(CudaError::driver(format!(
                "load module {}",
                file.file_name()
            )))?;
        Ok(lock(&self.modules).entry(file).or_insert(module).clone())
    }

    pub(crate) fn function(&self, file: KernelFile, name: &'static str) -> Result<CudaFunction> {
        if let Some(f) = lock(&self.functions).get(&(file, name)) {
            return Ok(f.clone());
        }
        let f = self
            .module(file)?
            .load_function(name)
            .map_err(CudaError::driver(format!(
                "load kernel {name} from {}",
                file.file_name()
            )))?;
        lock(&self.functions).insert((file, name), f.clone());
        Ok(f)
    }

    /// Enqueues kernel `name` of `file` on the stream.
    pub(crate) fn launch(
        &self,
        file: KernelFile,
        name: &'static str,
        cfg: LaunchConfig,
        args: &[Arg],
    ) -> Result<()> {
        let func = self.function(file, name)?;
        let mut builder = self.stream.launch_builder(&func);
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
        let _ = self.stream.synchronize();
        let blocks = lock(&self.pool).drain();
        if self.ctx.bind_to_thread().is_ok() {
            for ptr in blocks {
                // SAFETY: unowned blocks from cuMemAlloc; the stream is idle.
                let _ = unsafe { cu::free_sync(ptr) };
            }
        }
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

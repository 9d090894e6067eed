//! gradlab-cuda-harness: gradlab's CUDA kernels on the CPU, and the checks
//! that hold every launch wrapper to the CPU reference.
//!
//! `build.rs` compiles `kernels/*.cu` as C++ against a small CUDA shim
//! (`cpp/cuda_shim.h`): the blocks of a grid run one after another, each
//! thread of the running block is an OS thread, `__syncthreads` is a real
//! barrier, `__shared__` arrays are shared by the threads of that block, warp
//! shuffles go through a per-warp exchange, atomics are host atomics.
//! [`cpu_device`] wraps that as a [`Gpu`] whose buffers live in host memory,
//! so the launch wrappers of `gradlab_cuda` run unchanged (their choice of
//! kernel, grid, split and workspace included) and only the kernel execution
//! differs. Kernels with inline PTX (the TF32 tensor-core matmul) are left to
//! the GPU.
//!
//! [`checks`] holds the kernel checks: small shapes with partial tiles, odd
//! sizes and offsets, compared with `gradlab_cpu::reference` or plain loops.
//! The `cpu_harness` tests run them on [`cpu_device`]; the `gpu_checks` tests
//! run the same checks on a real GPU.

pub mod checks;

use gradlab_cuda::{Gpu, HostKernels, KernelFile};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::{Arc, OnceLock};

extern "C" {
    fn gradlab_harness_launch(
        file: *const c_char,
        kernel: *const c_char,
        grid: *const u32,
        block: *const u32,
        params: *const *const c_void,
        sizes: *const usize,
        count: i32,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn gradlab_harness_kernel_count(file: *const c_char) -> usize;
    fn gradlab_harness_kernel_name(file: *const c_char, i: usize) -> *const c_char;
}

/// The kernels of `kernels/*.cu`, compiled as C++ into this crate.
#[derive(Debug, Default)]
pub struct CpuKernels;

impl HostKernels for CpuKernels {
    fn describe(&self) -> String {
        "CPU harness (kernels/*.cu compiled as C++, one OS thread per CUDA thread)".to_string()
    }

    unsafe fn launch(
        &self,
        file: KernelFile,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &[(*const c_void, usize)],
    ) -> Result<(), String> {
        let file_c = CString::new(file.file_name()).map_err(|e| e.to_string())?;
        let name_c = CString::new(name).map_err(|e| e.to_string())?;
        let pointers: Vec<*const c_void> = params.iter().map(|p| p.0).collect();
        let sizes: Vec<usize> = params.iter().map(|p| p.1).collect();
        let grid = [grid.0, grid.1, grid.2];
        let block = [block.0, block.1, block.2];
        let mut err = vec![0 as c_char; 512];
        // SAFETY: every pointer is valid for the call (the caller's contract);
        // the C++ side checks the parameter count and sizes against the
        // kernel's signature before reading them.
        let rc = unsafe {
            gradlab_harness_launch(
                file_c.as_ptr(),
                name_c.as_ptr(),
                grid.as_ptr(),
                block.as_ptr(),
                pointers.as_ptr(),
                sizes.as_ptr(),
                params.len() as i32,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: the C++ side wrote a NUL-terminated message into `err`.
        let msg = unsafe { CStr::from_ptr(err.as_ptr()) };
        Err(format!(
            "{} (CPU harness, kernels/{})",
            msg.to_string_lossy(),
            file.file_name()
        ))
    }
}

/// Names of the kernels of `file` that the CPU harness can run.
pub fn harness_kernels(file: KernelFile) -> Vec<String> {
    let file_c = CString::new(file.file_name()).expect("file names have no NUL");
    // SAFETY: plain lookups in static tables; names are static C strings.
    unsafe {
        (0..gradlab_harness_kernel_count(file_c.as_ptr()))
            .filter_map(|i| {
                let p = gradlab_harness_kernel_name(file_c.as_ptr(), i);
                (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
            })
            .collect()
    }
}

/// Kernels that only a GPU runs (inline PTX), by file.
pub const GPU_ONLY_KERNELS: &[(KernelFile, &str)] = &[
    (KernelFile::Matmul, "matmul_tf32_nn"),
    (KernelFile::Matmul, "matmul_tf32_nt"),
    (KernelFile::Matmul, "matmul_tf32_tn"),
    (KernelFile::Matmul, "matmul_tf32_tt"),
];

/// The process-wide CPU device: kernels on the CPU, buffers in host memory.
/// It reports 2 multiprocessors, so grids stay small and grid-stride loops
/// wrap around.
pub fn cpu_device() -> Arc<Gpu> {
    static DEVICE: OnceLock<Arc<Gpu>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            Gpu::with_host_kernels(Arc::new(CpuKernels), 2)
                .expect("a host-memory device cannot fail to start")
        })
        .clone()
}

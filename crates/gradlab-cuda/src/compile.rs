//! Run-time compilation of `kernels/*.cu` with NVRTC.
//!
//! The sources are embedded in the binary, so a GPU machine needs nothing but
//! the driver and libnvrtc. The same [`compile_kernel_file`] serves the GPU
//! path (arch from the device) and the GPU-less CI check (arch `compute_90`).

use crate::error::{CudaError, Result};
use cudarc::nvrtc::{self, CompileOptions, Ptx};

/// One kernel source file of the `kernels/` directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFile {
    Matmul,
    Conv,
    Pool,
    Elementwise,
    Reduce,
    Optim,
}

impl KernelFile {
    /// Every kernel file, in a fixed order.
    pub const ALL: [KernelFile; 6] = [
        KernelFile::Matmul,
        KernelFile::Conv,
        KernelFile::Pool,
        KernelFile::Elementwise,
        KernelFile::Reduce,
        KernelFile::Optim,
    ];

    /// File name under `kernels/`.
    pub fn file_name(self) -> &'static str {
        match self {
            KernelFile::Matmul => "matmul.cu",
            KernelFile::Conv => "conv.cu",
            KernelFile::Pool => "pool.cu",
            KernelFile::Elementwise => "elementwise.cu",
            KernelFile::Reduce => "reduce.cu",
            KernelFile::Optim => "optim.cu",
        }
    }

    /// The CUDA C source, embedded at build time.
    pub fn source(self) -> &'static str {
        match self {
            KernelFile::Matmul => include_str!("../../../kernels/matmul.cu"),
            KernelFile::Conv => include_str!("../../../kernels/conv.cu"),
            KernelFile::Pool => include_str!("../../../kernels/pool.cu"),
            KernelFile::Elementwise => include_str!("../../../kernels/elementwise.cu"),
            KernelFile::Reduce => include_str!("../../../kernels/reduce.cu"),
            KernelFile::Optim => include_str!("../../../kernels/optim.cu"),
        }
    }
}

/// The PTX NVRTC produced for one kernel file.
#[derive(Clone, Debug)]
pub struct CompiledModule {
    pub file: KernelFile,
    /// Virtual architecture the PTX targets, e.g. `compute_90`.
    pub arch: String,
    /// PTX text (what the driver JIT-compiles when the module is loaded).
    pub ptx: String,
    pub(crate) image: Ptx,
}

impl CompiledModule {
    /// The `.version` directive of the PTX as (major, minor), if present.
    pub fn ptx_isa_version(&self) -> Option<(u32, u32)> {
        ptx_isa_version(&self.ptx)
    }
}

/// Parses the `.version X.Y` directive of a PTX text.
pub fn ptx_isa_version(ptx: &str) -> Option<(u32, u32)> {
    let line = ptx
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(".version"))?;
    let (major, minor) = line.trim_start_matches(".version").trim().split_once('.')?;
    Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
}

/// What ptxas reports for one kernel (`ptxas -v`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelResources {
    pub name: String,
    pub registers: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
}

/// The per-kernel lines of a `ptxas -v` log: "Compiling entry function
/// 'NAME'", then "N bytes spill stores, N bytes spill loads" and "Used N
/// registers".
pub fn parse_ptxas_report(log: &str) -> Vec<KernelResources> {
    fn number_before(line: &str, word: &str) -> Option<u32> {
        let head = &line[..line.find(word)?];
        head.split_whitespace().last()?.parse().ok()
    }
    let mut out: Vec<KernelResources> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default().to_string();
            out.push(KernelResources {
                name,
                ..Default::default()
            });
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if line.contains("bytes spill stores") {
            current.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
            current.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
        }
        if line.contains("Used") && line.contains("registers") {
            current.registers = number_before(line, "registers").unwrap_or(0);
        }
    }
    out
}

/// Whether libnvrtc can be opened (checked without risking cudarc's panic).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library and drops the handle.
    unsafe { nvrtc::sys::is_culib_present() }
}

/// NVRTC's version as (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_available() {
        return Err(CudaError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present and both pointers are valid for writes.
    let status = unsafe { nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| CudaError::Compile {
        file: "<none>",
        arch: String::new(),
        message: format!("nvrtcVersion failed: {e:?}"),
    })?;
    Ok((major, minor))
}

/// Compiles one kernel file for a virtual architecture such as `compute_90`.
pub fn compile_kernel_file(file: KernelFile, arch: &str) -> Result<CompiledModule> {
    if !nvrtc_available() {
        return Err(CudaError::NoNvrtc);
    }
    let opts = CompileOptions {
        name: Some(file.file_name().to_string()),
        options: vec![
            format!("--gpu-architecture={arch}"),
            "--std=c++17".to_string(),
            // Precise division and sqrt: results are compared with the CPU.
            "--prec-div=true".to_string(),
            "--prec-sqrt=true".to_string(),
            "--ftz=false".to_string(),
            "--generate-line-info".to_string(),
        ],
        ..Default::default()
    };
    let image = nvrtc::compile_ptx_with_opts(file.source(), opts).map_err(|e| {
        let message = match &e {
            nvrtc::CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        };
        CudaError::Compile {
            file: file.file_name(),
            arch: arch.to_string(),
            message,
        }
    })?;
    let ptx = image.to_src();
    Ok(CompiledModule {
        file,
        arch: arch.to_string(),
        ptx,
        image,
    })
}

/// Compiles every `kernels/*.cu` file, through the same path the GPU run
/// uses. Needs NVRTC but no GPU; `arch` is e.g. `compute_90`.
pub fn compile_all_kernels(arch: &str) -> Result<Vec<CompiledModule>> {
    KernelFile::ALL
        .iter()
        .map(|&f| compile_kernel_file(f, arch))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ptxas_reports() {
        let log = "ptxas info    : Compiling entry function 'matmul_warp_tiled_nn' for 'sm_90'\n\
                   ptxas info    : Function properties for matmul_warp_tiled_nn\n\
                   \x20   8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
                   ptxas info    : Used 128 registers, used 1 barriers, 34816 bytes smem\n\
                   ptxas info    : Compiling entry function 'fill_f32' for 'sm_90'\n\
                   ptxas info    : Used 10 registers\n";
        let r = parse_ptxas_report(log);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            KernelResources {
                name: "matmul_warp_tiled_nn".into(),
                registers: 128,
                spill_store_bytes: 4,
                spill_load_bytes: 12,
            }
        );
        assert_eq!((r[1].name.as_str(), r[1].registers), ("fill_f32", 10));
    }

    #[test]
    fn parses_ptx_version() {
        let ptx = "//\n// Generated by NVIDIA NVVM Compiler\n\n.version 9.0\n.target sm_90\n";
        assert_eq!(ptx_isa_version(ptx), Some((9, 0)));
        assert_eq!(ptx_isa_version(".target sm_90\n"), None);
    }
}

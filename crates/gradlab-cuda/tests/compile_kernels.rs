//! Compiles every `kernels/*.cu` with NVRTC for sm_90 and assembles the PTX
//! with ptxas: catches syntax and type errors, register spills, register
//! counts that would halve occupancy, and PTX ISA drift without a GPU. Skips
//! (with the reason) when NVRTC or ptxas is absent, unless `CI` is set, where
//! absence is a failure.

use gradlab_cuda::compile::{
    compile_all_kernels, nvrtc_available, nvrtc_version, parse_ptxas_report, KernelResources,
};
use std::path::PathBuf;
use std::process::Command;

/// Highest PTX ISA that ptxas 13.0 and driver 580 accept.
const MAX_PTX_ISA: (u32, u32) = (9, 0);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Returns false (test skipped) when the tool is missing outside CI; panics in CI.
fn require(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    let msg = format!("{what} not found; `source scripts/cuda-env.sh` sets it up");
    if in_ci() {
        panic!("{msg} (CI is set, so this is a failure)");
    }
    eprintln!("skipping: {msg}");
    false
}

fn ptxas_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GRADLAB_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let venv_lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/cuda-venv/lib");
    std::fs::read_dir(venv_lib)
        .ok()?
        .flatten()
        .find_map(|python| {
            let p = python.path().join("site-packages/nvidia/cu13/bin/ptxas");
            p.is_file().then_some(p)
        })
}

#[test]
fn every_kernel_file_compiles_to_ptx_isa_9_0_or_lower() {
    if !require(nvrtc_available(), "libnvrtc.so.13") {
        return;
    }
    let (major, minor) = nvrtc_version().unwrap();
    assert_eq!(major, 13, "NVRTC {major}.{minor}: the project pins 13.0");
    let modules = compile_all_kernels("compute_90").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(modules.len(), gradlab_cuda::KernelFile::ALL.len());
    for m in &modules {
        let version = m
            .ptx_isa_version()
            .unwrap_or_else(|| panic!("{}: no .version in PTX", m.file.file_name()));
        assert!(
            version <= MAX_PTX_ISA,
            "{}: PTX ISA {}.{} is newer than {}.{} (pin NVRTC 13.0.x)",
            m.file.file_name(),
            version.0,
            version.1,
            MAX_PTX_ISA.0,
            MAX_PTX_ISA.1
        );
        assert!(m.ptx.contains(".target sm_90"), "{}", m.file.file_name());
        assert!(
            m.ptx.contains(".entry"),
            "{}: no kernels",
            m.file.file_name()
        );
    }
}

/// The tiled GEMM and convolution kernels: 256 threads a block, and at most
/// 128 registers a thread so that two blocks fit an SM (65536 registers).
fn is_main_kernel(name: &str) -> bool {
    [
        "matmul_vectorized_",
        "matmul_warp_tiled_",
        "matmul_tf32_",
        "conv2d_forward_m",
        "conv2d_backward_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || name == "matmul_register_blocked"
}

const MAIN_KERNEL_MAX_REGISTERS: u32 = 128;

#[test]
fn ptxas_reports_no_spills_and_at_most_128_registers_for_the_main_kernels() {
    if !require(nvrtc_available(), "libnvrtc.so.13") {
        return;
    }
    let ptxas = ptxas_path();
    if !require(ptxas.is_some(), "ptxas (GRADLAB_PTXAS)") {
        return;
    }
    let ptxas = ptxas.unwrap();
    let dir = std::env::temp_dir().join(format!("gradlab-ptxas-regs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut report: Vec<KernelResources> = Vec::new();
    for m in compile_all_kernels("compute_90").unwrap_or_else(|e| panic!("{e}")) {
        let ptx_file = dir.join(m.file.file_name()).with_extension("ptx");
        std::fs::write(&ptx_file, &m.ptx).unwrap();
        let out = Command::new(&ptxas)
            .args([
                "-arch=sm_90",
                "-v",
                "--warn-on-spills",
                "--warning-as-error",
            ])
            .arg(&ptx_file)
            .arg("-o")
            .arg(ptx_file.with_extension("cubin"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", ptxas.display()));
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "ptxas failed on {}:\n{log}",
            m.file.file_name()
        );
        report.extend(parse_ptxas_report(&log));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let main: Vec<&KernelResources> = report.iter().filter(|k| is_main_kernel(&k.name)).collect();
    // 3 + 3 + 3 convolution tiles, 4 layouts of 3 tiled GEMMs, register-blocked.
    assert_eq!(main.len(), 9 + 12 + 1, "main kernels found: {main:?}");
    let mut bad = Vec::new();
    for k in &report {
        eprintln!(
            "{:<34} {:>4} registers, spills {} / {} bytes",
            k.name, k.registers, k.spill_store_bytes, k.spill_load_bytes
        );
        if k.spill_store_bytes + k.spill_load_bytes > 0 {
            bad.push(format!("{} spills", k.name));
        }
        if is_main_kernel(&k.name) && k.registers > MAIN_KERNEL_MAX_REGISTERS {
            bad.push(format!("{} uses {} registers", k.name, k.registers));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

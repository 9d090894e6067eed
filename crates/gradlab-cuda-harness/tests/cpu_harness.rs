//! The CUDA kernels run on the CPU harness (kernels/*.cu compiled as C++,
//! one OS thread per CUDA thread), through the real launch wrappers, against
//! the CPU reference. Every test name contains `cpu_harness`:
//! `cargo test --release -p gradlab-cuda-harness cpu_harness` runs them alone.

use gradlab_cuda::{KernelFile, MatmulVariant};
use gradlab_cuda_harness::{checks, cpu_device, harness_kernels, CpuKernels, GPU_ONLY_KERNELS};
use std::collections::BTreeSet;

/// Every variant but the TF32 tensor-core one (inline PTX: GPU only).
fn harness_variants() -> Vec<MatmulVariant> {
    MatmulVariant::ALL
        .into_iter()
        .filter(|v| v.is_f32_exact())
        .collect()
}

#[test]
fn cpu_harness_matmul_every_variant_and_layout() {
    checks::matmul::check_gemm_variants(&cpu_device(), &harness_variants());
}

#[test]
fn cpu_harness_matmul_beta_zero_ignores_c() {
    checks::matmul::check_beta_zero_ignores_c(&cpu_device(), &harness_variants());
}

#[test]
fn cpu_harness_conv2d_forward_and_both_gradients() {
    checks::conv::check_conv(&cpu_device(), &checks::conv::conv_shapes());
}

#[test]
fn cpu_harness_max_pool2d_forward_and_backward() {
    checks::pool::check_max_pool(&cpu_device(), &checks::pool::pool_shapes());
}

#[test]
fn cpu_harness_binary_ops() {
    checks::elementwise::check_binary(&cpu_device());
}

#[test]
fn cpu_harness_unary_fill_and_copies() {
    checks::elementwise::check_unary_fill_copy(&cpu_device());
}

#[test]
fn cpu_harness_reductions() {
    checks::reduce::check_reductions(&cpu_device(), &checks::reduce::REDUCE_SHAPES);
}

#[test]
fn cpu_harness_softmax() {
    checks::reduce::check_softmax(&cpu_device());
}

#[test]
fn cpu_harness_cross_entropy() {
    checks::reduce::check_cross_entropy(&cpu_device());
}

#[test]
fn cpu_harness_cross_entropy_target_out_of_range_is_an_error() {
    let private = gradlab_cuda::Gpu::with_host_kernels(std::sync::Arc::new(CpuKernels), 2).unwrap();
    checks::reduce::check_cross_entropy_errors(&private);
}

#[test]
fn cpu_harness_sgd_and_adam() {
    checks::optim::check_sgd(&cpu_device());
    checks::optim::check_adam(&cpu_device());
}

/// Kernel names defined in a kernel file's source: `extern "C"` kernels and
/// the ones the file's macros stamp out.
fn kernels_in_source(src: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = src;
    while let Some(at) = rest.find("extern \"C\" __global__ void") {
        rest = &rest[at + 27..];
        let head = rest.trim_start();
        let head = match head.strip_prefix("__launch_bounds__(") {
            Some(h) => h[h.find(')').unwrap() + 1..].trim_start(),
            None => head,
        };
        let name: String = head
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && name != "NAME" {
            names.insert(name);
        }
    }
    for line in src.lines() {
        let line = line.trim();
        if let Some(args) = line.strip_prefix("GEMM_LAYOUTS(") {
            let stem = args.split(',').nth(1).unwrap().trim().trim_end_matches(')');
            for l in ["nn", "nt", "tn", "tt"] {
                names.insert(format!("{stem}_{l}"));
            }
        }
        for mac in [
            "CONV_FORWARD(",
            "CONV_BACKWARD_DATA(",
            "CONV_BACKWARD_WEIGHT(",
        ] {
            if let Some(args) = line.strip_prefix(mac) {
                names.insert(args.split(',').next().unwrap().trim().to_string());
            }
        }
    }
    names
}

#[test]
fn cpu_harness_runs_every_kernel_without_inline_ptx() {
    for file in KernelFile::ALL {
        let defined = kernels_in_source(file.source());
        assert!(
            !defined.is_empty(),
            "{}: no kernels found",
            file.file_name()
        );
        let gpu_only: BTreeSet<String> = GPU_ONLY_KERNELS
            .iter()
            .filter(|(f, _)| *f == file)
            .map(|(_, k)| k.to_string())
            .collect();
        let registered: BTreeSet<String> = harness_kernels(file).into_iter().collect();
        let expected: BTreeSet<String> = defined.difference(&gpu_only).cloned().collect();
        assert_eq!(
            registered,
            expected,
            "{}: the harness table (cpp/kernels_*.cpp) must list every kernel without inline PTX",
            file.file_name()
        );
    }
}

#[test]
fn cpu_harness_checks_parameters_against_the_kernel_signature() {
    use gradlab_cuda::HostKernels;
    let value = 0i32;
    let p = (&value as *const i32).cast::<std::ffi::c_void>();
    // fill_f32(float*, i64, float): 3 parameters.
    // SAFETY: the harness rejects the launch before reading any parameter.
    let e = unsafe {
        CpuKernels.launch(
            KernelFile::Elementwise,
            "fill_f32",
            (1, 1, 1),
            (32, 1, 1),
            &[(p, 4)],
        )
    }
    .unwrap_err();
    assert!(e.contains("passed 1 parameters, the kernel takes 3"), "{e}");
    // SAFETY: as above: the sizes do not match, so nothing is read.
    let e = unsafe {
        CpuKernels.launch(
            KernelFile::Elementwise,
            "fill_f32",
            (1, 1, 1),
            (32, 1, 1),
            &[(p, 8), (p, 4), (p, 4)],
        )
    }
    .unwrap_err();
    assert!(
        e.contains("parameter 1 has 4 bytes, the kernel expects 8"),
        "{e}"
    );
    // SAFETY: kernels with inline PTX are refused before any parameter is read.
    let e = unsafe {
        CpuKernels.launch(
            KernelFile::Matmul,
            "matmul_tf32_nn",
            (1, 1, 1),
            (1, 1, 1),
            &[],
        )
    }
    .unwrap_err();
    assert!(e.contains("inline PTX"), "{e}");
}

//! The checks of the CPU harness tests, on a real GPU (and with the TF32
//! tensor-core matmul, which only a GPU runs). Ignored without one:
//! `GRADLAB_REQUIRE_GPU=1 cargo test -p gradlab-cuda-harness --test gpu_checks -- --ignored`,
//! as scripts/gpu-check.sh runs them; with GRADLAB_REQUIRE_GPU set a missing
//! driver fails the test instead of skipping it.

use gradlab_cuda::{Gpu, MatmulVariant};
use gradlab_cuda_harness::checks;
use std::sync::Arc;

fn gpu() -> Option<Arc<Gpu>> {
    match Gpu::global() {
        Ok(g) => Some(g),
        Err(e) if std::env::var_os("GRADLAB_REQUIRE_GPU").is_some() => {
            panic!("GRADLAB_REQUIRE_GPU is set but: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_matmul_every_variant_and_layout() {
    let Some(gpu) = gpu() else { return };
    checks::matmul::check_gemm_variants(&gpu, &MatmulVariant::ALL);
    checks::matmul::check_beta_zero_ignores_c(&gpu, &MatmulVariant::ALL);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_conv2d_forward_and_both_gradients() {
    let Some(gpu) = gpu() else { return };
    checks::conv::check_conv(&gpu, &checks::conv::conv_shapes());
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_max_pool2d_forward_and_backward() {
    let Some(gpu) = gpu() else { return };
    checks::pool::check_max_pool(&gpu, &checks::pool::pool_shapes());
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_elementwise() {
    let Some(gpu) = gpu() else { return };
    checks::elementwise::check_binary(&gpu);
    checks::elementwise::check_unary_fill_copy(&gpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_reductions_softmax_cross_entropy() {
    let Some(gpu) = gpu() else { return };
    checks::reduce::check_reductions(&gpu, &checks::reduce::REDUCE_SHAPES);
    checks::reduce::check_softmax(&gpu);
    checks::reduce::check_cross_entropy(&gpu);
    // A device of its own, so that no other test's synchronisation takes the report.
    let private = Gpu::new(0).unwrap_or(gpu);
    checks::reduce::check_cross_entropy_errors(&private);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_sgd_and_adam() {
    let Some(gpu) = gpu() else { return };
    checks::optim::check_sgd(&gpu);
    checks::optim::check_adam(&gpu);
}

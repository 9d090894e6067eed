//! The engine against PyTorch at the edges of its semantics: negative
//! dims, 0-d tensors, unbatched conv2d and max_pool2d, per-pixel
//! cross-entropy with class weights and ignored targets, zero-size dims.
//! The cases live in `fixtures/edges` (written by
//! `scripts/edge-fixtures.py`); each runs in f64 and f32, forward and every
//! gradient, on the plain reference loops and on the fast kernels.

use gradlab::fixtures::{read_manifest, run_dir, Outcome};
use gradlab_tensor::backend::{with_kernels, Kernels};
use std::path::PathBuf;

fn edges_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/edges")
}

fn every_case_passes_on(kernels: Kernels) {
    let dir = edges_dir();
    let summary = with_kernels(kernels, || run_dir(&dir, None)).unwrap();
    let failures: Vec<String> = summary
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Pass => None,
            Outcome::Fail(why) | Outcome::Skip(why) => Some(format!("{}: {why}", r.name)),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{kernels:?} kernels, cases that did not pass:\n{}",
        failures.join("\n")
    );
    let listed = read_manifest(&dir).unwrap().cases.len();
    assert_eq!(summary.passed(), listed);
    assert!(listed >= 140, "only {listed} cases");
}

#[test]
fn every_edge_case_passes_on_the_reference_loops() {
    every_case_passes_on(Kernels::Reference);
}

#[test]
fn every_edge_case_passes_on_the_fast_kernels() {
    every_case_passes_on(Kernels::Fast);
}

/// Both precisions and every group of the generator are present: the
/// fixtures were not cut short.
#[test]
fn the_edge_cases_cover_both_dtypes_and_every_group() {
    let cases = read_manifest(&edges_dir()).unwrap().cases;
    for dtype in ["f64", "f32"] {
        for name in [
            "sum_dim_-1",
            "sum_scalar_dim_0",
            "conv2d_unbatched",
            "max_pool2d_unbatched",
            "ce_spatial_weight_smooth_mean",
            "ce_unbatched",
            "linear_empty_inner",
        ] {
            let full = format!("{name}/{dtype}");
            assert!(cases.iter().any(|c| c.name == full), "{full} is missing");
        }
    }
}

//! The engine against PyTorch: every case in the shared fixtures directory.

use gradlab::fixtures::{run_dir, Outcome};
use std::path::PathBuf;

fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/torch");
    dir.join("manifest.json").exists().then_some(dir)
}

#[test]
fn every_pytorch_fixture_passes() {
    let Some(dir) = fixtures_dir() else {
        eprintln!("skipping: ../shared/fixtures/torch/manifest.json not found");
        return;
    };
    let summary = run_dir(&dir, None).unwrap();
    let failures: Vec<String> = summary
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some(format!("{}: {why}", r.name)),
            _ => None,
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert!(
        summary.passed() >= 120,
        "only {} cases passed",
        summary.passed()
    );
    // The extended ops are built too: nothing is skipped.
    assert_eq!(summary.skipped(), 0);
}

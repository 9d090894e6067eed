//! PyTorch's LeNet weights in gradlab: `../shared/interop/torch-lenet.safetensors`
//! is the tutorial network trained in PyTorch and saved as a bare
//! state_dict; PyTorch classifies 5271 of the 10,000 shared test images
//! correctly with it, and no image's top two logits are within 1e-4 of
//! each other, so gradlab must count exactly the same.

use clap::Parser;
use gradlab::train::{evaluate_checkpoint, EvalArgs};
use std::path::{Path, PathBuf};

const WEIGHTS: &str = "torch-lenet.safetensors";

/// Where the weights are: `$GRADLAB_INTEROP` (the file or its directory),
/// else an `interop` directory beside the data set's parent (the shared
/// directory layout), else `../shared/interop` from here or the workspace.
fn weights_file(data: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(env) = std::env::var_os("GRADLAB_INTEROP").filter(|v| !v.is_empty()) {
        let env = PathBuf::from(env);
        candidates.push(env.join(WEIGHTS));
        candidates.push(env);
    }
    if let Some(shared) = data.parent().and_then(Path::parent) {
        candidates.push(shared.join("interop").join(WEIGHTS));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    candidates.push(PathBuf::from("../shared/interop").join(WEIGHTS));
    candidates.push(workspace.join("../shared/interop").join(WEIGHTS));
    candidates.into_iter().find(|p| p.is_file())
}

#[test]
fn pytorch_lenet_weights_score_exactly_what_pytorch_scores() {
    let Some(data) = gradlab::data::cifar10_dir(None) else {
        eprintln!(
            "skipping pytorch_lenet_weights_score_exactly_what_pytorch_scores: no CIFAR-10 directory \
             (set GRADLAB_DATA or run data/get-cifar10.sh)"
        );
        return;
    };
    let weights = weights_file(&data).unwrap_or_else(|| {
        panic!(
            "the CIFAR-10 test set is at {} but {WEIGHTS} is not beside it (../interop), in \
             ../shared/interop, or at $GRADLAB_INTEROP",
            data.display()
        )
    });
    let args = EvalArgs::try_parse_from([
        "eval",
        "--checkpoint",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--normalization",
        "half",
    ])
    .unwrap();
    let evaluation = evaluate_checkpoint(&args).unwrap();
    assert_eq!(evaluation.total(), 10_000);
    assert_eq!(
        evaluation.correct(),
        5271,
        "PyTorch gets 5271 of 10,000 right"
    );
}

//! End-to-end trainer runs on a few CIFAR-10 images: determinism, exact
//! resumption, checkpoint layout, metrics and `eval`. Skipped (with a
//! printed reason) when CIFAR-10 is absent.

use clap::Parser;
use gradlab::data::cifar10_dir;
use gradlab::nn::Checkpoint;
use gradlab::train::{evaluate_checkpoint, train, EvalArgs, TrainArgs, TrainReport};
use std::path::{Path, PathBuf};

fn cifar() -> Option<PathBuf> {
    let dir = cifar10_dir(None).filter(|d| d.join("data_batch_1.bin").is_file());
    if dir.is_none() {
        eprintln!("skipping: CIFAR-10 not found (run data/get-cifar10.sh or set GRADLAB_DATA)");
    }
    dir
}

fn scratch(name: &str) -> PathBuf {
    crate::support::scratch("train", name)
}

use crate::support::with_output_flag;

fn run(data: &Path, extra: &[&str]) -> TrainReport {
    let mut argv = vec![
        "train",
        "--quiet",
        "--threads",
        "2",
        "--limit-test",
        "100",
        "--data",
        data.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    train(&TrainArgs::try_parse_from(with_output_flag(argv)).unwrap()).unwrap()
}

fn assert_same_state(
    a: &[(String, gradlab::tensor::Tensor)],
    b: &[(String, gradlab::tensor::Tensor)],
) {
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        let (va, vb) = (ta.to_vec_f64().unwrap(), tb.to_vec_f64().unwrap());
        assert!(
            va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{na} differs"
        );
    }
}

#[test]
fn same_seed_and_threads_give_the_same_loss_at_every_step() {
    let Some(data) = cifar() else { return };
    let args = [
        "--limit-train",
        "96",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--seed",
        "5",
    ];
    let a = run(&data, &args);
    let b = run(&data, &args);
    assert_eq!(a.step_losses.len(), 24);
    let bits = |r: &TrainReport| {
        r.step_losses
            .iter()
            .map(|l| l.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b));
    assert_same_state(&a.state, &b.state);
    // The seed matters: another one starts from other weights.
    let c = run(
        &data,
        &[
            "--limit-train",
            "96",
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--seed",
            "6",
        ],
    );
    assert_ne!(c.step_losses[0], a.step_losses[0]);
    // Training works at all: the loss falls on these few images.
    let first: f64 = a.step_losses[..12].iter().sum();
    let second: f64 = a.step_losses[12..].iter().sum();
    assert!(second < first, "loss went from {first} to {second}");
}

/// Trains 2 epochs straight, and 1 epoch then a resumed 2nd; both must end
/// with bitwise equal weights, buffers and optimizer state.
fn check_resume(data: &Path, name: &str, args: &[&str]) {
    let (full_dir, half_dir) = (
        scratch(&format!("{name}-full")),
        scratch(&format!("{name}-half")),
    );
    let call = |dir: &Path, extra: &[&str]| {
        let dir = dir.display().to_string();
        let mut argv = args.to_vec();
        argv.extend(["--epochs", "2", "--checkpoint-dir", &dir]);
        argv.extend_from_slice(extra);
        run(data, &argv)
    };
    let last = half_dir.join("last.safetensors");
    let full = call(&full_dir, &[]);
    let half = call(&half_dir, &["--stop-after", "1"]);
    assert_eq!(half.epochs.len(), 1);
    let resumed = call(&half_dir, &["--resume", last.to_str().unwrap()]);
    assert_eq!(resumed.epochs.len(), 1);
    assert_eq!(resumed.epochs[0].epoch, 2);
    assert_same_state(&full.state, &resumed.state);
    assert_eq!(
        full.step_losses[full.step_losses.len() / 2..],
        resumed.step_losses[..]
    );
    let a = Checkpoint::load(&full_dir.join("last.safetensors")).unwrap();
    let b = Checkpoint::load(&half_dir.join("last.safetensors")).unwrap();
    let a_state: Vec<_> = a.tensors.into_iter().collect();
    let b_state: Vec<_> = b.tensors.into_iter().collect();
    assert_same_state(&a_state, &b_state);
    assert!(a_state.iter().any(|(n, _)| n.starts_with("optim.")));
    assert_eq!(a.metadata.get("epoch").map(String::as_str), Some("2"));
    for dir in [full_dir, half_dir] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn resuming_after_epoch_one_ends_bitwise_like_an_uninterrupted_run() {
    let Some(data) = cifar() else { return };
    check_resume(
        &data,
        "lenet",
        &[
            "--limit-train",
            "64",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--momentum",
            "0.9",
            "--augment",
        ],
    );
    check_resume(
        &data,
        "convnet",
        &[
            "--model",
            "convnet",
            "--limit-train",
            "32",
            "--batch-size",
            "8",
            "--optimizer",
            "adamw",
            "--lr",
            "0.003",
            "--schedule",
            "onecycle",
        ],
    );
}

#[test]
fn checkpoints_use_pytorch_names_and_eval_reproduces_the_test_accuracy() {
    let Some(data) = cifar() else { return };
    let dir = scratch("names");
    let metrics = dir.join("metrics.jsonl");
    let report = run(
        &data,
        &[
            "--limit-train",
            "40",
            "--batch-size",
            "10",
            "--epochs",
            "2",
            "--lr",
            "0.01",
            "--checkpoint-dir",
            dir.to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
    );
    assert!(dir.join("lenet-epoch1.safetensors").is_file());
    assert!(dir.join("lenet-epoch2.safetensors").is_file());
    let ck = Checkpoint::load(&dir.join("lenet-epoch2.safetensors")).unwrap();
    let model: Vec<(&str, Vec<usize>)> = ck
        .tensors
        .iter()
        .filter(|(n, _)| !n.starts_with("optim."))
        .map(|(n, t)| (n.as_str(), t.dims().to_vec()))
        .collect();
    assert_eq!(
        model,
        [
            ("conv1.bias", vec![6]),
            ("conv1.weight", vec![6, 3, 5, 5]),
            ("conv2.bias", vec![16]),
            ("conv2.weight", vec![16, 6, 5, 5]),
            ("fc1.bias", vec![120]),
            ("fc1.weight", vec![120, 400]),
            ("fc2.bias", vec![84]),
            ("fc2.weight", vec![84, 120]),
            ("fc3.bias", vec![10]),
            ("fc3.weight", vec![10, 84]),
        ]
    );
    assert!(ck.tensors.contains_key("optim.fc1.weight.momentum_buffer"));
    for (key, value) in [
        ("model", "lenet"),
        ("dataset", "cifar10"),
        ("epoch", "2"),
        ("step", "8"),
        ("optimizer", "sgd"),
        ("seed", "0"),
        ("optim.lr", "0.01"),
    ] {
        assert_eq!(ck.meta(key), Some(value), "metadata {key}");
    }

    // One JSON object per epoch with the documented fields.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        for key in [
            "train_loss",
            "test_loss",
            "test_accuracy",
            "images_per_sec",
            "seconds",
            "lr",
        ] {
            assert!(line[key].as_f64().is_some(), "{key} in {line}");
        }
    }
    assert_eq!(
        lines[1]["test_accuracy"].as_f64().unwrap(),
        report.epochs[1].test_accuracy
    );

    // `eval` on the last checkpoint sees what the trainer saw.
    let eval = EvalArgs::try_parse_from([
        "eval",
        "--checkpoint",
        dir.join("last.safetensors").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--limit-test",
        "100",
    ])
    .unwrap();
    let evaluation = evaluate_checkpoint(&eval).unwrap();
    assert_eq!(Some(&evaluation), report.evaluation.as_ref());
    std::fs::remove_dir_all(dir).unwrap();
}

//! Every bad input to `gradlab train` / `gradlab eval` gets a clear message,
//! not a panic. Runs on a small synthetic CIFAR-10 directory, so it needs no
//! download.

use crate::support::{records, scratch as scratch_in, with_output_flag, write_synthetic_cifar};
use clap::Parser;
use gradlab::train::{evaluate_checkpoint, train, EvalArgs, TrainArgs};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    scratch_in("train-errors", name)
}

/// A CIFAR-10 directory holding 40 training records and 20 test records.
fn synthetic_cifar(name: &str) -> PathBuf {
    write_synthetic_cifar(&scratch(name))
}

fn train_err(argv: &[&str]) -> String {
    let mut all = vec!["train", "--quiet"];
    all.extend_from_slice(argv);
    let args = TrainArgs::try_parse_from(with_output_flag(all)).unwrap();
    train(&args).expect_err("training should have failed")
}

fn train_ok(argv: &[&str]) {
    let mut all = vec!["train", "--quiet"];
    all.extend_from_slice(argv);
    train(&TrainArgs::try_parse_from(with_output_flag(all)).unwrap()).unwrap();
}

fn eval_err(argv: &[&str]) -> String {
    let mut all = vec!["eval"];
    all.extend_from_slice(argv);
    evaluate_checkpoint(&EvalArgs::try_parse_from(all).unwrap())
        .expect_err("eval should have failed")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn numeric_options_out_of_range() {
    let data = synthetic_cifar("numbers");
    let d = s(&data);
    let cases: [(&[&str], &str); 9] = [
        (
            &["--batch-size", "0"],
            "--batch-size must be a positive integer, got 0",
        ),
        (
            &["--batch-size", "-3"],
            "--batch-size must be a positive integer, got -3",
        ),
        (&["--lr", "0"], "--lr must be a positive number, got 0"),
        (
            &["--lr", "-0.5"],
            "--lr must be a positive number, got -0.5",
        ),
        (&["--lr", "NaN"], "--lr must be a positive number, got NaN"),
        (&["--epochs", "0"], "--epochs must be at least 1"),
        (
            &["--momentum", "1.5"],
            "--momentum must be in [0, 1), got 1.5",
        ),
        (&["--threads", "0"], "--threads must be at least 1"),
        (
            &["--batch-size", "64"],
            "--batch-size 64 is larger than the 40 training images: no full batch to train on",
        ),
    ];
    for (argv, want) in cases {
        let mut all = vec!["--data", d];
        all.extend_from_slice(argv);
        assert_eq!(train_err(&all), want, "{argv:?}");
    }
    if !gradlab_cuda::driver_available() {
        let m = train_err(&["--data", d, "--device", "cuda"]);
        assert!(
            m.starts_with("--device cuda: no CUDA driver found (libcuda.so could not be loaded)"),
            "{m}"
        );
    }
    assert_eq!(
        train_err(&["--data", d, "--device", "cuda:x"]),
        "unknown device 'cuda:x' (expected cpu, cuda or cuda:N)"
    );
    assert_eq!(
        eval_err(&["--checkpoint", "x", "--batch-size", "0"]),
        "--batch-size must be a positive integer, got 0"
    );
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn missing_and_truncated_data_files() {
    let err = train_err(&["--data", "/nonexistent/cifar"]);
    assert!(
        err.starts_with("CIFAR-10 directory /nonexistent/cifar does not exist;"),
        "{err}"
    );
    let err = train_err(&[
        "--dataset",
        "fashion-mnist",
        "--data",
        "/nonexistent/fmnist",
    ]);
    assert!(
        err.starts_with("Fashion-MNIST directory /nonexistent/fmnist does not exist;"),
        "{err}"
    );

    let data = synthetic_cifar("truncated");
    let mut bytes = records(8, 1);
    bytes.truncate(bytes.len() - 1000);
    std::fs::write(data.join("data_batch_1.bin"), bytes).unwrap();
    let err = train_err(&["--data", s(&data)]);
    assert!(err.contains("data_batch_1.bin is truncated"), "{err}");
    assert!(
        err.contains("record 7 starting at byte offset 21511 is incomplete (2073 of 3073 bytes)"),
        "{err}"
    );
    std::fs::remove_file(data.join("test_batch.bin")).unwrap();
    std::fs::write(data.join("data_batch_1.bin"), records(8, 1)).unwrap();
    let err = train_err(&["--data", s(&data)]);
    assert!(err.contains("test_batch.bin is missing"), "{err}");
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn checkpoints_of_another_model_or_not_of_a_run_are_refused() {
    let data = synthetic_cifar("models");
    let ckdir = data.join("ck");
    train_ok(&[
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--checkpoint-dir",
        s(&ckdir),
    ]);
    let last = ckdir.join("last.safetensors");
    let want = format!(
        "checkpoint {} holds model 'lenet', not 'convnet' as requested",
        last.display()
    );
    let resume = [
        "--data",
        s(&data),
        "--model",
        "convnet",
        "--epochs",
        "2",
        "--batch-size",
        "10",
        "--resume",
        s(&last),
    ];
    assert_eq!(train_err(&resume), want);
    assert_eq!(
        eval_err(&[
            "--checkpoint",
            s(&last),
            "--data",
            s(&data),
            "--model",
            "convnet"
        ]),
        want
    );
    let err = train_err(&[
        "--data",
        s(&data),
        "--epochs",
        "2",
        "--batch-size",
        "10",
        "--optimizer",
        "adam",
        "--resume",
        s(&last),
    ]);
    assert_eq!(
        err,
        format!(
            "checkpoint {}: was written by optimizer 'sgd', not 'adam'",
            last.display()
        )
    );
    let err = train_err(&[
        "--dataset",
        "fashion-mnist",
        "--epochs",
        "2",
        "--resume",
        s(&last),
    ]);
    assert!(
        err.contains("was trained on cifar10, not fashion-mnist as requested")
            || err.contains("Fashion-MNIST"),
        "{err}"
    );

    // A safetensors file that no training run wrote.
    let foreign = data.join("foreign.safetensors");
    let mut ck = gradlab::nn::Checkpoint::new();
    ck.tensors.insert(
        "w".into(),
        gradlab::tensor::Tensor::zeros([2], gradlab::tensor::DType::F32),
    );
    ck.save(&foreign).unwrap();
    let err = eval_err(&["--checkpoint", s(&foreign), "--data", s(&data)]);
    assert_eq!(
        err,
        format!(
            "checkpoint {}: not written by gradlab train (no metadata format), and not a state_dict of lenet or convnet: its tensors are w",
            foreign.display()
        )
    );
    // A truncated checkpoint, and none at all.
    let bytes = std::fs::read(&last).unwrap();
    let cut = data.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = eval_err(&["--checkpoint", s(&cut), "--data", s(&data)]);
    assert!(
        err.starts_with(&format!(
            "checkpoint {}: not a valid safetensors file",
            cut.display()
        )),
        "{err}"
    );
    let err = eval_err(&["--checkpoint", s(&data.join("absent.safetensors"))]);
    assert!(
        err.starts_with("reading checkpoint ") && err.contains("absent.safetensors"),
        "{err}"
    );
    // Evaluating a LeNet trained on 3-channel images against 1-channel ones names the tensor.
    if gradlab::data::fashion_mnist_dir(None).is_some() {
        let err = eval_err(&[
            "--checkpoint",
            s(&last),
            "--dataset",
            "fashion-mnist",
            "--limit-test",
            "10",
        ]);
        assert!(
            err.contains(
                "tensor 'conv1.weight' is f32 [6, 3, 5, 5] but the model needs f32 [6, 1, 5, 5]"
            ),
            "{err}"
        );
    }
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let data = synthetic_cifar("nan");
    let ckdir = data.join("ck");
    let common = [
        "--data",
        s(&data),
        "--batch-size",
        "4",
        "--checkpoint-dir",
        s(&ckdir),
    ];
    let mut first = common.to_vec();
    first.extend(["--epochs", "1"]);
    train_ok(&first);
    let last = ckdir.join("last.safetensors");
    let good = std::fs::read(&last).unwrap();
    let mut diverge = common.to_vec();
    diverge.extend(["--epochs", "2", "--lr", "1e30", "--resume", s(&last)]);
    let err = train_err(&diverge);
    assert!(err.starts_with("training stopped: the loss is "), "{err}");
    assert!(err.contains("(epoch 2, batch "), "{err}");
    assert!(
        err.contains(&format!(
            "no checkpoint was written from this state; the last checkpoint, {}, holds finite weights",
            last.display()
        )),
        "{err}"
    );
    assert!(!ckdir.join("lenet-epoch2.safetensors").exists());
    assert_eq!(
        std::fs::read(&last).unwrap(),
        good,
        "last.safetensors was overwritten"
    );
    // Without a checkpoint directory the message says none was written.
    let err = train_err(&[
        "--data",
        s(&data),
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--lr",
        "1e30",
    ]);
    assert!(
        err.ends_with("no checkpoint had been written yet. Try a smaller --lr."),
        "{err}"
    );
    std::fs::remove_dir_all(data).unwrap();
}

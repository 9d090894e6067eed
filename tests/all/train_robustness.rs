//! `gradlab train` / `eval` on the inputs and accidents that used to lose
//! data or answer wrongly without a word: a diverged last update, metrics
//! files, another run's checkpoint directory, killed writers, inconsistent
//! checkpoints, a NaN test loss, absurd thread counts, misplaced data files,
//! and PyTorch state_dicts. Runs on small synthetic data sets.

use crate::support::{scratch as scratch_in, with_output_flag, write_synthetic_cifar};
use clap::Parser;
use gradlab::nn::Checkpoint;
use gradlab::tensor::Tensor;
use gradlab::train::{evaluate_checkpoint, run_eval, train, EvalArgs, TrainArgs, TrainReport};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    scratch_in("train-robust", name)
}

/// A CIFAR-10 directory holding 40 training records and 20 test records.
fn synthetic_cifar(name: &str) -> PathBuf {
    write_synthetic_cifar(&scratch(name))
}

fn parse_train(argv: &[&str]) -> TrainArgs {
    let mut all = vec!["train", "--quiet"];
    all.extend_from_slice(argv);
    TrainArgs::try_parse_from(with_output_flag(all)).unwrap()
}

fn train_ok(argv: &[&str]) -> TrainReport {
    train(&parse_train(argv)).unwrap()
}

fn train_err(argv: &[&str]) -> String {
    train(&parse_train(argv)).expect_err("training should have failed")
}

fn parse_eval(argv: &[&str]) -> EvalArgs {
    let mut all = vec!["eval"];
    all.extend_from_slice(argv);
    EvalArgs::try_parse_from(all).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The `epoch` of every line of a metrics file.
fn metric_epochs(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_diverged_last_update_writes_no_checkpoint_and_no_metrics_line() {
    let data = synthetic_cifar("diverge");
    let (ckdir, metrics) = (data.join("ck"), data.join("metrics.jsonl"));
    // One step per epoch: the epoch's last update is its only one, after
    // the last loss that the step-level check sees.
    let common = [
        "--data",
        s(&data),
        "--batch-size",
        "40",
        "--checkpoint-dir",
        s(&ckdir),
        "--metrics",
        s(&metrics),
    ];
    let mut first = common.to_vec();
    first.extend(["--epochs", "1"]);
    train_ok(&first);
    let last = ckdir.join("last.safetensors");
    let good = std::fs::read(&last).unwrap();
    let mut diverge = common.to_vec();
    diverge.extend(["--epochs", "2", "--lr", "1e30", "--resume", s(&last)]);
    let err = train_err(&diverge);
    assert!(
        err.starts_with("training stopped after epoch 2 (step 2): "),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "nothing was written for this epoch (no checkpoint, no metrics line); the last checkpoint, {}, holds finite weights",
            last.display()
        )),
        "{err}"
    );
    assert!(!err.contains("last good checkpoint"), "{err}");
    assert_eq!(
        std::fs::read(&last).unwrap(),
        good,
        "last.safetensors was overwritten"
    );
    assert!(!ckdir.join("lenet-epoch2.safetensors").exists());
    assert_eq!(metric_epochs(&metrics), [1]);
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn metrics_are_appended_and_a_resume_replaces_the_epochs_after_its_checkpoint() {
    let data = synthetic_cifar("metrics");
    let (ckdir, metrics) = (data.join("ck"), data.join("metrics.jsonl"));
    // A failing run must not have truncated what was there.
    std::fs::write(&metrics, "{\"epoch\":7}\n").unwrap();
    let err = train_err(&[
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--lr",
        "1e30",
        "--metrics",
        s(&metrics),
    ]);
    assert!(err.starts_with("training stopped"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&metrics).unwrap(),
        "{\"epoch\":7}\n"
    );
    std::fs::remove_file(&metrics).unwrap();

    let common = [
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--epochs",
        "2",
        "--metrics",
        s(&metrics),
        "--checkpoint-dir",
        s(&ckdir),
    ];
    train_ok(&common);
    assert_eq!(metric_epochs(&metrics), [1, 2]);
    // Resuming from epoch 1 (as after a kill between the metrics line of
    // epoch 2 and its checkpoint) replays epoch 2 once, not twice.
    let mut resumed = common.to_vec();
    let epoch1 = ckdir.join("lenet-epoch1.safetensors");
    resumed.extend(["--resume", s(&epoch1)]);
    train_ok(&resumed);
    assert_eq!(metric_epochs(&metrics), [1, 2]);
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn a_fresh_run_does_not_overwrite_another_runs_checkpoints() {
    let data = synthetic_cifar("fresh");
    let ckdir = data.join("ck");
    let run = [
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--epochs",
        "1",
        "--checkpoint-dir",
        s(&ckdir),
    ];
    train_ok(&run);
    let last = ckdir.join("last.safetensors");
    let before = std::fs::read(&last).unwrap();
    let mut other = run.to_vec();
    other.extend(["--seed", "5"]);
    let err = train_err(&other);
    assert_eq!(
        err,
        format!(
            "--checkpoint-dir {} already holds another run's checkpoints (last.safetensors, lenet-epoch1.safetensors, config.json and 1 more); \
             pass --resume {} to continue that run, --overwrite to replace them, or another directory",
            ckdir.display(),
            ckdir.display()
        )
    );
    assert_eq!(std::fs::read(&last).unwrap(), before);

    // A writer killed mid-write left its temporary file; the next write
    // into the directory removes it.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = ckdir.join(format!(".last.safetensors.tmp-{dead}"));
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    other.push("--overwrite");
    train_ok(&other);
    assert_ne!(
        std::fs::read(&last).unwrap(),
        before,
        "--overwrite replaces them"
    );
    assert!(
        !stale.exists(),
        "the dead writer's temporary file is removed"
    );
    std::fs::remove_dir_all(data).unwrap();
}

/// Rewrites a checkpoint with `edit` applied.
fn edited(from: &Path, to: &Path, edit: impl FnOnce(&mut Checkpoint)) {
    let mut ck = Checkpoint::load(from).unwrap();
    edit(&mut ck);
    ck.save(to).unwrap();
}

#[test]
fn inconsistent_checkpoints_are_refused_unless_the_optimizer_is_reset() {
    let data = synthetic_cifar("inconsistent");
    for optimizer in ["sgd", "adam"] {
        let ckdir = data.join(format!("ck-{optimizer}"));
        let common = [
            "--data",
            s(&data),
            "--batch-size",
            "10",
            "--optimizer",
            optimizer,
        ];
        let mut first = common.to_vec();
        first.extend(["--epochs", "1", "--checkpoint-dir", s(&ckdir)]);
        train_ok(&first);
        let last = ckdir.join("last.safetensors");

        // No optimizer state: momentum buffers or Adam moments would restart from zero.
        let stateless = data.join(format!("{optimizer}-stateless.safetensors"));
        edited(&last, &stateless, |ck| {
            ck.tensors.retain(|name, _| !name.starts_with("optim."))
        });
        let mut resume = common.to_vec();
        resume.extend(["--epochs", "2", "--resume", s(&stateless)]);
        let err = train_err(&resume);
        let what = if optimizer == "sgd" {
            "sgd state conv1.weight.momentum_buffer, conv1.bias.momentum_buffer, conv2.weight.momentum_buffer and 7 more"
        } else {
            "adam state conv1.weight.step, conv1.weight.exp_avg, conv1.weight.exp_avg_sq and 27 more"
        };
        assert_eq!(
            err,
            format!(
                "checkpoint {}: was saved after 4 steps but lacks the {what}; resuming would restart it from zero. \
                 Pass --reset-optimizer to do that deliberately",
                stateless.display()
            )
        );
        resume.push("--reset-optimizer");
        let report = train_ok(&resume);
        assert_eq!(report.epochs.len(), 1);
        assert_eq!(report.epochs[0].step, 8);

        // A step count that cannot belong to its epoch.
        let wrapped = data.join(format!("{optimizer}-wrapped.safetensors"));
        edited(&last, &wrapped, |ck| {
            ck.metadata.insert("step".into(), u64::MAX.to_string());
        });
        let mut resume = common.to_vec();
        resume.extend(["--epochs", "2", "--resume", s(&wrapped)]);
        assert_eq!(
            train_err(&resume),
            format!(
                "checkpoint {}: its step 18446744073709551615 does not match its epoch 1 (at 4 steps per epoch, epoch 1 ends at step 4); \
                 pass --reset-optimizer to restart the optimizer at this epoch deliberately",
                wrapped.display()
            )
        );
        resume.push("--reset-optimizer");
        assert_eq!(train_ok(&resume).epochs[0].step, 8);
    }
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn eval_fails_on_a_non_finite_test_loss_and_refuses_a_diverged_checkpoint() {
    let data = synthetic_cifar("eval-nan");
    let ckdir = data.join("ck");
    train_ok(&[
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--epochs",
        "1",
        "--checkpoint-dir",
        s(&ckdir),
    ]);
    let last = ckdir.join("last.safetensors");
    // Finite weights whose logits overflow to +inf: the loss is NaN.
    let huge = data.join("huge.safetensors");
    edited(&last, &huge, |ck| {
        ck.tensors.insert(
            "fc2.bias".into(),
            Tensor::full([84], 3e38, gradlab::tensor::DType::F32),
        );
        ck.tensors.insert(
            "fc3.weight".into(),
            Tensor::full([10, 84], 3e38, gradlab::tensor::DType::F32),
        );
    });
    let args = parse_eval(&["--checkpoint", s(&huge), "--data", s(&data)]);
    assert!(evaluate_checkpoint(&args).unwrap().loss.is_nan());
    let err = run_eval(&args).unwrap_err();
    assert_eq!(
        err,
        "the test loss is NaN: the model's outputs are not finite on some test images"
    );
    // A checkpoint holding NaN is named, not evaluated.
    let nan = data.join("nan.safetensors");
    edited(&last, &nan, |ck| {
        ck.tensors.insert(
            "fc3.bias".into(),
            Tensor::full([10], f64::NAN, gradlab::tensor::DType::F32),
        );
    });
    let err = run_eval(&parse_eval(&["--checkpoint", s(&nan), "--data", s(&data)])).unwrap_err();
    assert_eq!(
        err,
        format!(
            "checkpoint {}: tensor 'fc3.bias' holds NaN at flat index 0; a diverged state is not loaded",
            nan.display()
        )
    );
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn thread_counts_are_bounded_by_the_cores() {
    use gradlab::threads::check_threads_for;
    assert_eq!(check_threads_for(None, 2), Ok(()));
    assert_eq!(check_threads_for(Some(8), 2), Ok(()));
    assert_eq!(
        check_threads_for(Some(0), 2).unwrap_err(),
        "--threads must be at least 1"
    );
    assert_eq!(
        check_threads_for(Some(10_000), 2).unwrap_err(),
        "--threads 10000 is more than 4 per core: this machine has 2 cores, so at most 8"
    );
    assert_eq!(
        check_threads_for(Some(5), 1).unwrap_err(),
        "--threads 5 is more than 4 per core: this machine has 1 core, so at most 4"
    );
}

#[test]
fn thread_counts_far_beyond_the_cores_are_refused_everywhere() {
    let data = synthetic_cifar("threads");
    let cores = gradlab::threads::cores();
    let want = format!(
        "--threads 10000 is more than 4 per core: this machine has {cores} core{}, so at most {}",
        if cores == 1 { "" } else { "s" },
        4 * cores
    );
    assert_eq!(train_err(&["--data", s(&data), "--threads", "10000"]), want);
    let err =
        evaluate_checkpoint(&parse_eval(&["--checkpoint", "x", "--threads", "10000"])).unwrap_err();
    assert_eq!(err, want);
    #[derive(Parser)]
    struct Bench {
        #[command(flatten)]
        args: gradlab::bench::BenchArgs,
    }
    let bench = Bench::try_parse_from(["bench", "peak", "--threads", "10000"]).unwrap();
    let err = gradlab::bench::run(&bench.args).unwrap_err().to_string();
    assert_eq!(err, format!("bench: {want}"));
    std::fs::remove_dir_all(data).unwrap();
}

/// An uncompressed IDX file.
fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut raw = magic.to_be_bytes().to_vec();
    for d in dims {
        raw.extend(d.to_be_bytes());
    }
    raw.extend_from_slice(body);
    raw
}

#[test]
fn misplaced_data_is_named_and_mismatched_splits_are_found_at_load() {
    let data = synthetic_cifar("misplaced");
    let file = data.join("data_batch_1.bin");
    let err = train_err(&["--data", s(&file)]);
    assert!(
        err.starts_with(&format!(
            "CIFAR-10 path {} is not a directory;",
            file.display()
        )),
        "{err}"
    );
    std::fs::remove_file(data.join("test_batch.bin")).unwrap();
    std::fs::create_dir(data.join("test_batch.bin")).unwrap();
    assert_eq!(
        train_err(&["--data", s(&data)]),
        format!(
            "CIFAR-10 file {} is a directory, not a file",
            data.join("test_batch.bin").display()
        )
    );

    // Fashion-MNIST-style files: 28x28 training images, 32x32 test images.
    let fm = data.join("fashion");
    std::fs::create_dir(&fm).unwrap();
    let labels: Vec<u8> = (0..20).map(|i| i % 10).collect();
    let pixels = |n: usize, side: usize| vec![128u8; n * side * side];
    std::fs::write(
        fm.join("train-images-idx3-ubyte"),
        idx(2051, &[20, 28, 28], &pixels(20, 28)),
    )
    .unwrap();
    std::fs::write(
        fm.join("train-labels-idx1-ubyte"),
        idx(2049, &[20], &labels),
    )
    .unwrap();
    std::fs::write(
        fm.join("t10k-images-idx3-ubyte"),
        idx(2051, &[10, 32, 32], &pixels(10, 32)),
    )
    .unwrap();
    std::fs::write(
        fm.join("t10k-labels-idx1-ubyte"),
        idx(2049, &[10], &labels[..10]),
    )
    .unwrap();
    let err = train_err(&[
        "--dataset",
        "fashion-mnist",
        "--data",
        s(&fm),
        "--batch-size",
        "10",
    ]);
    assert_eq!(
        err,
        "the training images are 1x28x28 (channels x height x width) but the test images are 1x32x32: both splits must hold images of one size"
    );
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn bare_state_dicts_are_evaluated_and_used_as_starting_weights() {
    let data = synthetic_cifar("state-dict");
    let ckdir = data.join("ck");
    train_ok(&[
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--epochs",
        "1",
        "--checkpoint-dir",
        s(&ckdir),
    ]);
    let last = ckdir.join("last.safetensors");
    // What `safetensors.torch.save_file(model.state_dict(), F)` writes:
    // the model's tensors under their names, no metadata.
    let bare = data.join("bare.safetensors");
    edited(&last, &bare, |ck| {
        ck.metadata.clear();
        ck.tensors.retain(|name, _| !name.starts_with("optim."));
    });
    let ours =
        evaluate_checkpoint(&parse_eval(&["--checkpoint", s(&last), "--data", s(&data)])).unwrap();
    let theirs =
        evaluate_checkpoint(&parse_eval(&["--checkpoint", s(&bare), "--data", s(&data)])).unwrap();
    assert_eq!(
        theirs, ours,
        "the same weights, the same normalisation (half)"
    );
    let other = evaluate_checkpoint(&parse_eval(&[
        "--checkpoint",
        s(&bare),
        "--data",
        s(&data),
        "--normalization",
        "dataset",
    ]))
    .unwrap();
    assert_ne!(other.loss, ours.loss, "--normalization reaches the loader");

    // The starting weights of a run: with a negligible step they stay put.
    let report = train_ok(&[
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--epochs",
        "1",
        "--lr",
        "1e-30",
        "--momentum",
        "0",
        "--init-from",
        s(&bare),
    ]);
    let file = Checkpoint::load(&bare).unwrap();
    for (name, tensor) in &report.state {
        assert_eq!(
            tensor.to_vec_f64().unwrap(),
            file.tensors[name].to_vec_f64().unwrap(),
            "{name}"
        );
    }
    // A state_dict holds no run to resume.
    let err = train_err(&["--data", s(&data), "--epochs", "2", "--resume", s(&bare)]);
    assert_eq!(
        err,
        format!(
            "checkpoint {0} is a bare state_dict with no run to resume; use --init-from {0} to start a run from its weights",
            bare.display()
        )
    );
    // Names of neither model are refused with what was found.
    let odd = data.join("odd.safetensors");
    edited(&bare, &odd, |ck| {
        let w = ck.tensors.remove("fc3.weight").unwrap();
        ck.tensors.insert("head.weight".into(), w);
    });
    let err = evaluate_checkpoint(&parse_eval(&["--checkpoint", s(&odd), "--data", s(&data)]))
        .unwrap_err();
    assert!(
        err.ends_with("not written by gradlab train (no metadata format), and not a state_dict of lenet or convnet: its tensors are conv1.bias, conv1.weight, conv2.bias, conv2.weight, fc1.bias, fc1.weight, ..."),
        "{err}"
    );
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn a_convnet_state_dict_is_recognised_by_its_names() {
    let data = synthetic_cifar("convnet-dict");
    let model = gradlab::train::build_model(
        gradlab::train::ModelKind::Convnet,
        gradlab::data::CIFAR10_DIMS,
        10,
        &mut gradlab::tensor::Rng::new(1),
    )
    .unwrap();
    let mut ck = Checkpoint::new();
    ck.add_module(&model);
    let names: Vec<&str> = ck.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        &names[..6],
        [
            "bn1.bias",
            "bn1.num_batches_tracked",
            "bn1.running_mean",
            "bn1.running_var",
            "bn1.weight",
            "bn2.bias"
        ]
    );
    assert!(
        names.contains(&"conv1.weight")
            && names.contains(&"fc.weight")
            && !names.contains(&"conv1.bias")
    );
    let path = data.join("convnet.safetensors");
    ck.save(&path).unwrap();
    let e =
        evaluate_checkpoint(&parse_eval(&["--checkpoint", s(&path), "--data", s(&data)])).unwrap();
    assert_eq!(e.total(), 20);
    std::fs::remove_dir_all(data).unwrap();
}

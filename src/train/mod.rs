//! `gradlab train` and `gradlab eval`: a classifier trainer for CIFAR-10 and
//! Fashion-MNIST built on gradlab-nn, with per-epoch evaluation, JSON
//! metrics, atomic checkpoints and exact resumption.
//!
//! A run is a pure function of its options: initialisation comes from
//! `--seed`, each epoch's data order and augmentation from (seed, epoch), and
//! the learning rate from the optimizer step, so a run resumed from the
//! checkpoint of epoch k ends with bitwise the weights of an uninterrupted
//! run (for the same `--threads`, and the same convolution algorithms:
//! name one with `--conv-algo` to be sure across processes, as `auto`
//! times them afresh in each).

pub mod args;
mod checkpoints;
pub mod data;
pub mod evaluate;
pub mod models;
mod setup;
mod trainer;

pub use args::{
    DatasetKind, EvalArgs, ModelKind, NormalizationKind, OptimizerKind, ScheduleKind, TrainArgs,
};
pub use checkpoints::{checkpoint_paths, Progress, FORMAT as CHECKPOINT_FORMAT};
pub use evaluate::{evaluate, Evaluation};
pub use models::build_model;
pub use trainer::{train, EpochMetrics, TrainReport};

use gradlab_data::{LoaderConfig, Split};
use gradlab_tensor::Rng;
use std::process::ExitCode;

/// `gradlab train`: trains and prints progress, per-epoch results and, at
/// the end, per-class accuracy and the confusion matrix.
pub fn run_train(args: &TrainArgs) -> Result<ExitCode, String> {
    let report = train(args)?;
    if let Some(last) = report.epochs.last() {
        println!(
            "final test accuracy {:.2}% after {} epochs; training throughput {:.0} images/s",
            100.0 * last.test_accuracy,
            last.epoch,
            last.images_per_sec
        );
    } else {
        println!("nothing to do: the checkpoint already holds the epochs asked for");
    }
    Ok(ExitCode::SUCCESS)
}

/// Evaluates a checkpoint on the test split of its data set.
pub fn evaluate_checkpoint(args: &EvalArgs) -> Result<Evaluation, String> {
    let batch_size = setup::positive_batch_size(args.batch_size)?;
    let device = setup::check_device(&args.device)?;
    let (ck, model_kind, trained_on) = checkpoints::open(&args.checkpoint, args.model)?;
    let dataset = args.dataset.unwrap_or(trained_on);
    let test = data::load_split(dataset, args.data.as_deref(), Split::Test, args.limit_test)?;
    let normalization = ck
        .meta("normalization")
        .and_then(args::parse_value::<NormalizationKind>)
        .unwrap_or(NormalizationKind::Half);
    let norm = data::normalization(normalization, dataset, test.dims().channels);
    let model = build_model(
        model_kind,
        test.dims(),
        test.num_classes(),
        &mut Rng::new(0),
    )
    .map_err(|e| e.to_string())?;
    ck.restore_module(&model, &args.checkpoint)
        .map_err(|e| e.to_string())?;
    setup::move_to_device(&model, None, device)?;
    let loader = gradlab_data::DataLoader::new(
        test,
        LoaderConfig::eval(batch_size).with_normalization(norm),
    )
    .map_err(|e| e.to_string())?;
    setup::with_threads(args.threads, || {
        gradlab_cpu::with_conv_algo(args.conv_algo, || evaluate(&model, &loader))
    })?
}

/// `gradlab eval`: prints test loss, accuracy, per-class accuracy and the confusion matrix.
pub fn run_eval(args: &EvalArgs) -> Result<ExitCode, String> {
    let evaluation = evaluate_checkpoint(args)?;
    println!(
        "test accuracy {:.2}% ({} of {}), test loss {:.4}",
        100.0 * evaluation.accuracy(),
        evaluation.correct(),
        evaluation.total(),
        evaluation.loss
    );
    print!("{}", evaluation.render());
    Ok(ExitCode::SUCCESS)
}

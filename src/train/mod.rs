//! `gradlab train` and `gradlab eval`: a classifier trainer for CIFAR-10 and
//! Fashion-MNIST built on gradlab-nn, with per-epoch evaluation, JSON
//! metrics, atomic checkpoints and exact resumption.
//!
//! Every run keeps itself in a directory ([`run_dir`]: `runs/<model>-<date>-<time>`
//! unless `--run-dir` names one): its configuration, metrics, checkpoints
//! and pictures, so that `gradlab eval --run DIR` and `gradlab train
//! --resume DIR` need nothing else, and `gradlab runs` lists and compares
//! runs.
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
pub mod config;
pub mod data;
pub mod evaluate;
mod metrics;
pub mod models;
pub mod plots;
pub mod run_dir;
mod setup;
mod trainer;

pub use args::{
    DatasetKind, EvalArgs, ModelKind, NormalizationKind, OptimizerKind, ScheduleKind, TrainArgs,
};
pub use checkpoints::{checkpoint_paths, Progress, FORMAT as CHECKPOINT_FORMAT};
pub use config::RunConfig;
pub use evaluate::{evaluate, Evaluation};
pub use models::build_model;
pub use setup::open_device;
pub use trainer::{train, EpochMetrics, TrainReport, EVAL_BATCH, LOSS_CURVE_POINTS};

use gradlab_data::{LoaderConfig, Split};
use gradlab_tensor::backend::{chosen_kernels, with_kernels};
use gradlab_tensor::Rng;
use std::path::PathBuf;
use std::process::ExitCode;

/// `n epoch` or `n epochs`.
pub fn epochs_text(n: usize) -> String {
    format!("{n} epoch{}", if n == 1 { "" } else { "s" })
}

/// `gradlab train`: trains and prints progress, per-epoch results and, at
/// the end, per-class accuracy and the confusion matrix. The first line
/// of the output names the run directory, and so does the last.
pub fn run_train(args: &TrainArgs) -> Result<ExitCode, String> {
    let report = train(args)?;
    if let Some(last) = report.epochs.last() {
        println!(
            "final test accuracy {:.2}% after {}; training throughput {:.0} images/s",
            100.0 * last.test_accuracy,
            epochs_text(last.epoch),
            last.images_per_sec
        );
    } else {
        println!("nothing to do: the checkpoint already holds the epochs asked for");
    }
    match &report.run_dir {
        Some(dir) => {
            let mut files = vec![
                run_dir::CONFIG_FILE,
                run_dir::METRICS_FILE,
                run_dir::CURVES_FILE,
                run_dir::CONFUSION_FILE,
            ];
            if dir.join(run_dir::CONV_PICKS_FILE).is_file() {
                files.push(run_dir::CONV_PICKS_FILE);
            }
            println!(
                "run kept in {}: {} and checkpoints; `gradlab eval --run {}` evaluates it again, `gradlab runs` compares runs",
                dir.display(),
                files.join(", "),
                dir.display()
            )
        }
        None => println!("nothing was kept (--no-save)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What `gradlab eval` evaluated, and how it did.
#[derive(Clone, Debug)]
pub struct Evaluated {
    pub evaluation: Evaluation,
    pub model: ModelKind,
    /// The checkpoint's epoch and step (None for a bare state_dict).
    pub epoch: Option<usize>,
    pub step: Option<usize>,
    pub checkpoint: PathBuf,
    pub dataset: DatasetKind,
}

impl Evaluated {
    /// `lenet after epoch 2 (step 25000) from runs/x/last.safetensors`.
    pub fn describe(&self) -> String {
        let when = match (self.epoch, self.step) {
            (Some(e), Some(s)) => format!("after epoch {e} (step {s})"),
            (Some(e), None) => format!("after epoch {e}"),
            _ => "(a state_dict: no epoch recorded)".to_string(),
        };
        format!(
            "{} {when} from {}",
            args::value_name(self.model),
            self.checkpoint.display()
        )
    }
}

/// The checkpoint `eval` reads and the run configuration that goes with it.
fn eval_target(args: &EvalArgs) -> Result<(PathBuf, Option<RunConfig>), String> {
    if let Some(path) = &args.checkpoint {
        return Ok((path.clone(), None));
    }
    let Some(named) = &args.run else {
        return Err("pass --run DIR or --checkpoint FILE".into());
    };
    let dir = &run_dir::run_or_newest(named)?;
    if !dir.is_dir() {
        return Err(format!("--run {}: not a directory", dir.display()));
    }
    let config_path = dir.join(run_dir::CONFIG_FILE);
    let config = if config_path.is_file() {
        Some(RunConfig::read(&config_path)?)
    } else {
        eprintln!(
            "note: {} has no {}: evaluating with the options given here",
            dir.display(),
            run_dir::CONFIG_FILE
        );
        None
    };
    let checkpoint = match args.epoch {
        None => dir.join(run_dir::LAST_CHECKPOINT),
        Some(epoch) => match config.as_ref().map(|c| c.model).or(args.model) {
            Some(model) => checkpoint_paths(dir, model, epoch).0,
            None => {
                let suffix = format!("-epoch{epoch}.safetensors");
                let found = checkpoints::existing_checkpoints(dir);
                let name = found.iter().find(|n| n.ends_with(&suffix));
                dir.join(name.map_or(suffix.trim_start_matches('-'), |n| n.as_str()))
            }
        },
    };
    if !checkpoint.is_file() {
        let found = checkpoints::existing_checkpoints(dir);
        return Err(format!(
            "--run {}: no checkpoint {} (the run holds {})",
            dir.display(),
            checkpoint
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            if found.is_empty() {
                "none yet".to_string()
            } else {
                found.join(", ")
            }
        ));
    }
    Ok((checkpoint, config))
}

/// Evaluates a checkpoint on the test split of its data set: the last (or
/// `--epoch`) checkpoint of a run directory, as that run evaluated it; a
/// trainer checkpoint; or a bare state_dict (PyTorch's) of one of the
/// trainer's models, evaluated on `--dataset` (default CIFAR-10) with
/// `--normalization` (default half, the PyTorch tutorial's).
pub fn evaluate_run(args: &EvalArgs) -> Result<Evaluated, String> {
    let batch_size = setup::positive_batch_size(args.batch_size)?;
    let (path, config) = eval_target(args)?;
    let config = config.as_ref();
    let threads = args.threads.or(config.and_then(|c| c.threads));
    crate::threads::check_threads(threads)?;
    let device_name = args
        .device
        .clone()
        .or(config.map(|c| c.device.clone()))
        .unwrap_or_else(|| config::defaults::DEVICE.to_string());
    let device = setup::check_device(&device_name)?;
    let opened = checkpoints::open(&path, args.model)?;
    checkpoints::check_finite(&opened.checkpoint, &path)?;
    let ck = &opened.checkpoint;
    let trained_on = match opened.origin {
        checkpoints::Origin::Trainer { dataset } => dataset,
        checkpoints::Origin::StateDict => config.map_or(DatasetKind::Cifar10, |c| c.dataset),
    };
    let dataset = args.dataset.unwrap_or(trained_on);
    let recorded_data = config
        .and_then(|c| c.data.clone())
        .filter(|d| d.is_dir() && args.dataset.is_none_or(|d| d == trained_on));
    let data_dir = args.data.clone().or(recorded_data);
    let limit_test = args.limit_test.or(config.and_then(|c| c.limit_test));
    let test = data::load_split(dataset, data_dir.as_deref(), Split::Test, limit_test)?;
    let normalization = args
        .normalization
        .or_else(|| {
            ck.meta("normalization")
                .and_then(args::parse_value::<NormalizationKind>)
        })
        .or(config.map(|c| c.normalization))
        .unwrap_or(NormalizationKind::Half);
    let norm = data::normalization(normalization, dataset, test.dims().channels);
    let model = build_model(
        opened.model,
        test.dims(),
        test.num_classes(),
        &mut Rng::new(0),
    )
    .map_err(|e| e.to_string())?;
    ck.restore_module(&model, &path)
        .map_err(|e| e.to_string())?;
    setup::move_to_device(&model, None, device)?;
    let loader = gradlab_data::DataLoader::new(
        test,
        LoaderConfig::eval(batch_size).with_normalization(norm),
    )
    .map_err(|e| e.to_string())?;
    let kernels = chosen_kernels()
        .or(config.and_then(|c| c.kernels.parse().ok()))
        .unwrap_or_default();
    let conv_algo = args
        .conv_algo
        .or(config.map(|c| c.conv_algo()))
        .unwrap_or_default();
    let evaluation = setup::with_threads(threads, || {
        with_kernels(kernels, || {
            gradlab_cpu::with_conv_algo(conv_algo, || evaluate(&model, &loader))
        })
    })??;
    let number = |key: &str| ck.meta(key).and_then(|v| v.parse::<usize>().ok());
    Ok(Evaluated {
        evaluation,
        model: opened.model,
        epoch: number("epoch"),
        step: number("step"),
        checkpoint: path,
        dataset,
    })
}

/// [`evaluate_run`]'s evaluation alone.
pub fn evaluate_checkpoint(args: &EvalArgs) -> Result<Evaluation, String> {
    evaluate_run(args).map(|e| e.evaluation)
}

/// `gradlab eval`: says what it loaded, then prints test loss, accuracy,
/// per-class accuracy and the confusion matrix; fails when the loss is not
/// finite (the numbers of a diverged model are no result).
pub fn run_eval(args: &EvalArgs) -> Result<ExitCode, String> {
    let evaluated = evaluate_run(args)?;
    let evaluation = &evaluated.evaluation;
    println!(
        "evaluating {} on {} {} test images",
        evaluated.describe(),
        evaluation.total(),
        args::value_name(evaluated.dataset)
    );
    println!(
        "test accuracy {:.2}% ({} of {}), test loss {:.4}",
        100.0 * evaluation.accuracy(),
        evaluation.correct(),
        evaluation.total(),
        evaluation.loss
    );
    print!("{}", evaluation.render());
    if !evaluation.loss.is_finite() {
        return Err(format!(
            "the test loss is {}: the model's outputs are not finite on some test images",
            evaluation.loss
        ));
    }
    Ok(ExitCode::SUCCESS)
}

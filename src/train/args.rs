//! Command-line options of `gradlab train` and `gradlab eval`.

use clap::{Parser, ValueEnum};
use gradlab_cpu::ConvAlgo;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Network architectures the trainer builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The PyTorch tutorial's LeNet: two 5x5 convolutions, three linear layers.
    Lenet,
    /// Three conv-batchnorm-relu-maxpool blocks (64, 128, 256 channels) and a linear head.
    Convnet,
}

/// Data sets the trainer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10: 32x32 colour images of 10 classes (50,000 to train, 10,000 to test).
    Cifar10,
    /// Fashion-MNIST: 28x28 grey images of 10 kinds of clothing (60,000 and 10,000).
    FashionMnist,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with momentum (PyTorch's SGD).
    Sgd,
    /// Adam, with --momentum as beta1.
    Adam,
    /// Adam with decoupled weight decay (PyTorch's AdamW).
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The base learning rate throughout.
    None,
    /// Multiply the rate by --gamma every --step-epochs epochs.
    Step,
    /// Cosine decay to 0 over the whole run, updated every batch.
    Cosine,
    /// PyTorch's OneCycleLR with --lr as the peak (momentum cycled 0.95 -> 0.85 -> 0.95).
    Onecycle,
}

/// How pixels are normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormalizationKind {
    /// (x - 0.5) / 0.5 per channel, as the PyTorch CIFAR-10 tutorial does.
    Half,
    /// The data set's own per-channel mean and standard deviation.
    Dataset,
}

/// `gradlab train`: train a classifier, evaluating on the test split after every epoch.
///
/// Options of the recipe are `Option`s: a value left out comes from the
/// configuration of the run being resumed (`--resume`), else from the
/// default written in its help. [`RunConfig`](super::RunConfig) holds the
/// values a run actually used.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "train")]
pub struct TrainArgs {
    /// Network to train [default: lenet].
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Data set [default: cifar10].
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetKind>,
    /// Data directory (default: found as gradlab_data::cifar10_dir / fashion_mnist_dir describe).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Total epochs; a resumed run continues up to this many [default: 2].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per training step [default: 4].
    #[arg(long, allow_negative_numbers = true)]
    pub batch_size: Option<i64>,
    /// Learning rate (the peak rate for --schedule onecycle) [default: 0.001].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum, or Adam's beta1 [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Weight decay (default: 0, or 0.01 for adamw as in PyTorch).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Optimizer [default: sgd].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule [default: none].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Epochs between decays of --schedule step (default: a third of the run, at least 1).
    #[arg(long)]
    pub step_epochs: Option<usize>,
    /// Decay factor of --schedule step [default: 0.1].
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Random crops (padding 4) and horizontal flips of training images.
    #[arg(long)]
    pub augment: bool,
    /// How pixels are normalised [default: half].
    #[arg(long, value_enum)]
    pub normalization: Option<NormalizationKind>,
    /// Seed of initialisation, data order and augmentation [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads for the kernels (default: rayon's choice, one per
    /// core; at most 4 per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// CPU convolution algorithm: auto (timed per layer shape), direct,
    /// batch-lanes, im2col, winograd, winograd-2x2 or winograd-4x4
    /// [default: auto]. A
    /// resumed run keeps its own. A named one makes runs bitwise
    /// reproducible across processes; auto may pick differently from one
    /// process to the next.
    #[arg(long)]
    pub conv_algo: Option<ConvAlgo>,
    /// cpu, or cuda / cuda:N [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// The run's directory: checkpoints, metrics.jsonl, config.json and the
    /// pictures go here (default: `runs/<model>-<date>-<time>`, in UTC).
    #[arg(long, conflicts_with_all = ["no_save", "checkpoint_dir"])]
    pub run_dir: Option<PathBuf>,
    /// Keep nothing: no run directory (a --metrics file is still written).
    #[arg(long, conflicts_with = "checkpoint_dir")]
    pub no_save: bool,
    /// Also append one JSON object per epoch to this file, besides the
    /// run's own metrics.jsonl (never truncated; a resumed run first drops
    /// the lines of epochs after the checkpoint's).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// The run's directory, under its older name: the same as --run-dir.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue a run: its directory (the run's config.json supplies every
    /// option not given here, and last.safetensors the state), or one of its
    /// checkpoint files. The run goes on in the checkpoint's directory
    /// unless --run-dir or --no-save says otherwise.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// With --resume: start the optimizer afresh (no momentum buffers or
    /// Adam moments) and count steps from the checkpoint's epoch, instead of
    /// refusing a checkpoint whose optimizer state is missing or disagrees
    /// with its epoch.
    #[arg(long, requires = "resume")]
    pub reset_optimizer: bool,
    /// Start from the model weights of this file: a gradlab checkpoint, or a
    /// PyTorch state_dict saved with safetensors whose names and shapes match
    /// the model (LeNet's are PyTorch's). The optimizer and epoch count start
    /// fresh.
    #[arg(long, conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Let a fresh run replace another run's files in its --run-dir (without
    /// it, such a directory is refused).
    #[arg(long)]
    pub overwrite: bool,
    /// Stop once this many epochs are done, as if interrupted: the schedule
    /// still spans --epochs, and --resume continues the run exactly.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// No progress bar or per-epoch lines (where the run is and the summary
    /// are still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `gradlab eval`: test accuracy of a run's checkpoint, or of any
/// checkpoint file, overall and per class.
#[derive(Parser, Debug, Clone)]
#[command(name = "eval")]
#[command(group = clap::ArgGroup::new("what").required(true).args(["run", "checkpoint"]))]
pub struct EvalArgs {
    /// A run directory written by `gradlab train`, or a directory of runs
    /// (`runs`: the run started last): its last checkpoint (or that of
    /// --epoch) is evaluated as the run was (data set, data directory,
    /// normalisation, --limit-test, threads, device and kernels from its
    /// config.json), so the accuracy is the one training printed.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// With --run: the checkpoint of this epoch instead of the last.
    #[arg(long, requires = "run")]
    pub epoch: Option<usize>,
    /// A checkpoint file: one written by `gradlab train`, or a PyTorch
    /// state_dict saved with safetensors (`safetensors.torch.save_file(model.state_dict(), F)`)
    /// whose names and shapes match the model.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// How pixels are normalised (default: as the checkpoint was trained, or
    /// half for a PyTorch state_dict, which carries no such record).
    #[arg(long, value_enum)]
    pub normalization: Option<NormalizationKind>,
    /// Data directory (default: the run's, else as for train).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Data set (default: the one the checkpoint was trained on).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetKind>,
    /// Refuse the checkpoint unless it holds this model (a PyTorch
    /// state_dict's model is otherwise recognised by its tensor names).
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Images per evaluation batch (the trainer's evaluation uses 250).
    #[arg(long, default_value_t = 250, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// Evaluate on the first N test images only (default: the run's, else all).
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Worker threads for the kernels (default: the run's, else rayon's
    /// choice, one per core; at most 4 per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// CPU convolution algorithm, as for train (default: the run's, else
    /// auto).
    #[arg(long)]
    pub conv_algo: Option<ConvAlgo>,
    /// cpu, or cuda / cuda:N (default: the run's, else cpu).
    #[arg(long)]
    pub device: Option<String>,
}

/// The name clap shows for a value (`fashion-mnist`, `lenet`).
pub fn value_name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Parses a value by the name clap shows for it.
pub fn parse_value<T: ValueEnum>(name: &str) -> Option<T> {
    T::from_str(name, false).ok()
}

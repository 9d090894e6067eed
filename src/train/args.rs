//! Command-line options of `gradlab train` and `gradlab eval`.

use clap::{Parser, ValueEnum};
use gradlab_cpu::ConvAlgo;
use std::path::PathBuf;

/// Network architectures the trainer builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// The PyTorch tutorial's LeNet: two 5x5 convolutions, three linear layers.
    Lenet,
    /// Three conv-batchnorm-relu-maxpool blocks (64, 128, 256 channels) and a linear head.
    Convnet,
}

/// Data sets the trainer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetKind {
    Cifar10,
    FashionMnist,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NormalizationKind {
    /// (x - 0.5) / 0.5 per channel, as the PyTorch CIFAR-10 tutorial does.
    Half,
    /// The data set's own per-channel mean and standard deviation.
    Dataset,
}

/// `gradlab train`: train a classifier, evaluating on the test split after every epoch.
#[derive(Parser, Debug, Clone)]
#[command(name = "train")]
pub struct TrainArgs {
    #[arg(long, value_enum, default_value_t = ModelKind::Lenet)]
    pub model: ModelKind,
    #[arg(long, value_enum, default_value_t = DatasetKind::Cifar10)]
    pub dataset: DatasetKind,
    /// Data directory (default: found as gradlab_data::cifar10_dir / fashion_mnist_dir describe).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Total epochs (a resumed run continues up to this many).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// Learning rate (the peak rate for --schedule onecycle).
    #[arg(long, default_value_t = 0.001, allow_negative_numbers = true)]
    pub lr: f64,
    /// SGD momentum, or Adam's beta1.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f64,
    /// Weight decay (default: 0, or 0.01 for adamw as in PyTorch).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    #[arg(long, value_enum, default_value_t = ScheduleKind::None)]
    pub schedule: ScheduleKind,
    /// Epochs between decays of --schedule step (default: a third of the run, at least 1).
    #[arg(long)]
    pub step_epochs: Option<usize>,
    /// Decay factor of --schedule step.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// Random crops (padding 4) and horizontal flips of training images.
    #[arg(long)]
    pub augment: bool,
    #[arg(long, value_enum, default_value_t = NormalizationKind::Half)]
    pub normalization: NormalizationKind,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for the kernels (default: rayon's choice, one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// CPU convolution algorithm: auto (timed per layer shape), direct,
    /// im2col, winograd, winograd-2x2 or winograd-4x4. A named one makes
    /// runs bitwise reproducible across processes; auto may pick
    /// differently from one process to the next.
    #[arg(long, default_value_t = ConvAlgo::Auto)]
    pub conv_algo: ConvAlgo,
    /// cpu, or cuda / cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Append one JSON object per epoch to this file.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Write `<model>-epoch<N>.safetensors` and `last.safetensors` here after every epoch.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from a checkpoint written by --checkpoint-dir.
    #[arg(long)]
    pub resume: Option<PathBuf>,
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
    /// No progress bar or per-epoch lines (the summary is still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `gradlab eval`: test accuracy of a checkpoint, overall and per class.
#[derive(Parser, Debug, Clone)]
#[command(name = "eval")]
pub struct EvalArgs {
    /// A checkpoint written by `gradlab train --checkpoint-dir`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Data directory (default: as for train).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Data set (default: the one the checkpoint was trained on).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetKind>,
    /// Refuse the checkpoint unless it holds this model.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    #[arg(long, default_value_t = 250, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    #[arg(long)]
    pub threads: Option<usize>,
    /// CPU convolution algorithm, as for train.
    #[arg(long, default_value_t = ConvAlgo::Auto)]
    pub conv_algo: ConvAlgo,
    #[arg(long, default_value = "cpu")]
    pub device: String,
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

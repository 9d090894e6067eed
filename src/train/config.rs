//! A run's full configuration, as `config.json` records it: every option
//! the run used (given, taken from the run it resumes, or the default), the
//! data directory it read, the kernels and threads it ran on, and the
//! gradlab build that ran it. `gradlab eval --run DIR` and `gradlab train
//! --resume DIR` need nothing else.

use super::args::{
    value_name, DatasetKind, ModelKind, NormalizationKind, OptimizerKind, ScheduleKind, TrainArgs,
};
use super::setup::{check_device, positive_batch_size};
use gradlab_cpu::ConvAlgo;
use gradlab_tensor::backend::{chosen_kernels, Kernels};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `format` of a `config.json`.
pub const CONFIG_FORMAT: &str = "gradlab-run/1";

/// The defaults of `gradlab train`'s options (its help shows the same).
pub mod defaults {
    use super::*;
    pub const MODEL: ModelKind = ModelKind::Lenet;
    pub const DATASET: DatasetKind = DatasetKind::Cifar10;
    pub const EPOCHS: usize = 2;
    pub const BATCH_SIZE: i64 = 4;
    pub const LR: f64 = 0.001;
    pub const MOMENTUM: f64 = 0.9;
    pub const OPTIMIZER: OptimizerKind = OptimizerKind::Sgd;
    pub const SCHEDULE: ScheduleKind = ScheduleKind::None;
    pub const GAMMA: f64 = 0.1;
    pub const NORMALIZATION: NormalizationKind = NormalizationKind::Half;
    pub const SEED: u64 = 0;
    pub const DEVICE: &str = "cpu";

    /// PyTorch's default weight decay for `optimizer`.
    pub fn weight_decay(optimizer: OptimizerKind) -> f64 {
        match optimizer {
            OptimizerKind::Adamw => 0.01,
            OptimizerKind::Sgd | OptimizerKind::Adam => 0.0,
        }
    }
}

/// Everything a run was trained with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// [`CONFIG_FORMAT`].
    pub format: String,
    pub model: ModelKind,
    pub dataset: DatasetKind,
    /// The data directory read (absolute); `None` until the run has found it.
    pub data: Option<PathBuf>,
    /// Total epochs of the run (its schedule spans them).
    pub epochs: usize,
    pub batch_size: usize,
    /// Base learning rate (the peak of --schedule onecycle).
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub optimizer: OptimizerKind,
    pub schedule: ScheduleKind,
    /// As given (`None`: a third of the run).
    pub step_epochs: Option<usize>,
    pub gamma: f64,
    pub augment: bool,
    pub normalization: NormalizationKind,
    pub seed: u64,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    /// The weights the run started from (`--init-from`), if not its own initialisation.
    pub init_from: Option<PathBuf>,
    /// Threads asked for (`None`: rayon's choice, one per core).
    pub threads: Option<usize>,
    /// Threads the kernels ran on.
    pub threads_used: usize,
    pub device: String,
    /// `fast` or `reference`.
    pub kernels: String,
    /// The CPU convolution algorithm (`auto`, `direct`, `im2col`,
    /// `winograd`, ...); runs configured before it was kept used `auto`.
    #[serde(default = "auto_conv_algo")]
    pub conv_algo: String,
    /// `gradlab` version and the commit it was built from.
    pub gradlab_version: String,
    pub gradlab_commit: String,
    /// When the run first started (UTC, RFC 3339).
    pub started: String,
    /// A command line that repeats the run from scratch.
    pub command: String,
}

fn auto_conv_algo() -> String {
    ConvAlgo::Auto.name().to_string()
}

/// The commit the binary was built from (`unknown` outside a git checkout).
pub fn gradlab_commit() -> &'static str {
    env!("GRADLAB_COMMIT")
}

impl RunConfig {
    /// The configuration of a run started with `args`, or resumed with them
    /// from a run configured as `base`: each option comes from `args` when
    /// given, else from `base`, else from its default. Checks every number
    /// and the device.
    pub fn resolve(args: &TrainArgs, base: Option<&RunConfig>) -> Result<RunConfig, String> {
        let batch_size = positive_batch_size(
            args.batch_size
                .or(base.map(|b| b.batch_size as i64))
                .unwrap_or(defaults::BATCH_SIZE),
        )?;
        let optimizer = args
            .optimizer
            .or(base.map(|b| b.optimizer))
            .unwrap_or(defaults::OPTIMIZER);
        let kernels = match (chosen_kernels(), base) {
            (Some(k), _) => k,
            (None, Some(b)) => b.kernels.parse::<Kernels>()?,
            (None, None) => Kernels::default(),
        };
        let conv_algo = match (args.conv_algo, base) {
            (Some(a), _) => a,
            (None, Some(b)) => b.conv_algo.parse::<ConvAlgo>().map_err(|e| e.to_string())?,
            (None, None) => ConvAlgo::Auto,
        };
        let config = RunConfig {
            format: CONFIG_FORMAT.to_string(),
            model: args
                .model
                .or(base.map(|b| b.model))
                .unwrap_or(defaults::MODEL),
            dataset: args
                .dataset
                .or(base.map(|b| b.dataset))
                .unwrap_or(defaults::DATASET),
            data: args.data.clone().or(base.and_then(|b| b.data.clone())),
            epochs: args
                .epochs
                .or(base.map(|b| b.epochs))
                .unwrap_or(defaults::EPOCHS),
            batch_size,
            lr: args.lr.or(base.map(|b| b.lr)).unwrap_or(defaults::LR),
            momentum: args
                .momentum
                .or(base.map(|b| b.momentum))
                .unwrap_or(defaults::MOMENTUM),
            weight_decay: args
                .weight_decay
                .or(base.map(|b| b.weight_decay))
                .unwrap_or(defaults::weight_decay(optimizer)),
            optimizer,
            schedule: args
                .schedule
                .or(base.map(|b| b.schedule))
                .unwrap_or(defaults::SCHEDULE),
            step_epochs: args.step_epochs.or(base.and_then(|b| b.step_epochs)),
            gamma: args
                .gamma
                .or(base.map(|b| b.gamma))
                .unwrap_or(defaults::GAMMA),
            augment: args.augment || base.is_some_and(|b| b.augment),
            normalization: args
                .normalization
                .or(base.map(|b| b.normalization))
                .unwrap_or(defaults::NORMALIZATION),
            seed: args.seed.or(base.map(|b| b.seed)).unwrap_or(defaults::SEED),
            limit_train: args.limit_train.or(base.and_then(|b| b.limit_train)),
            limit_test: args.limit_test.or(base.and_then(|b| b.limit_test)),
            init_from: args
                .init_from
                .clone()
                .or(base.and_then(|b| b.init_from.clone())),
            threads: args.threads.or(base.and_then(|b| b.threads)),
            threads_used: 0,
            device: args
                .device
                .clone()
                .or(base.map(|b| b.device.clone()))
                .unwrap_or_else(|| defaults::DEVICE.to_string()),
            kernels: kernels.name().to_string(),
            conv_algo: conv_algo.name().to_string(),
            gradlab_version: env!("CARGO_PKG_VERSION").to_string(),
            gradlab_commit: gradlab_commit().to_string(),
            started: base.map_or_else(
                || super::run_dir::utc_now().rfc3339(),
                |b| b.started.clone(),
            ),
            command: String::new(),
        };
        config.check(args)?;
        Ok(config)
    }

    /// Refuses the numbers no later stage would reject clearly, and opens
    /// the device (so that a missing driver is reported before any data is
    /// loaded).
    fn check(&self, args: &TrainArgs) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("--lr must be a positive number, got {}", self.lr));
        }
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(format!(
                "--momentum must be in [0, 1), got {}",
                self.momentum
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "--weight-decay must be a non-negative number, got {}",
                self.weight_decay
            ));
        }
        if args.stop_after == Some(0) {
            return Err("--stop-after must be at least 1".into());
        }
        if self.step_epochs == Some(0) {
            return Err("--step-epochs must be at least 1".into());
        }
        if self.limit_train == Some(0) || self.limit_test == Some(0) {
            return Err("--limit-train and --limit-test must be at least 1".into());
        }
        check_device(&self.device)?;
        Ok(())
    }

    /// The kernels the run uses.
    pub fn kernels(&self) -> Kernels {
        self.kernels.parse().unwrap_or_default()
    }

    /// The convolution algorithm the run uses.
    pub fn conv_algo(&self) -> ConvAlgo {
        self.conv_algo.parse().unwrap_or_default()
    }

    /// A `gradlab train` command line that repeats this run from scratch
    /// (in its own new run directory).
    pub fn command_line(&self) -> String {
        let mut parts = vec![
            "gradlab".to_string(),
            format!("--kernels {}", self.kernels),
            "train".to_string(),
            format!("--model {}", value_name(self.model)),
            format!("--dataset {}", value_name(self.dataset)),
        ];
        if let Some(data) = &self.data {
            parts.push(format!("--data {}", quoted(data)));
        }
        parts.extend([
            format!("--epochs {}", self.epochs),
            format!("--batch-size {}", self.batch_size),
            format!("--lr {}", self.lr),
            format!("--momentum {}", self.momentum),
            format!("--weight-decay {}", self.weight_decay),
            format!("--optimizer {}", value_name(self.optimizer)),
            format!("--schedule {}", value_name(self.schedule)),
            format!("--conv-algo {}", self.conv_algo),
        ]);
        if let Some(n) = self.step_epochs {
            parts.push(format!("--step-epochs {n}"));
        }
        parts.push(format!("--gamma {}", self.gamma));
        if self.augment {
            parts.push("--augment".into());
        }
        parts.push(format!(
            "--normalization {}",
            value_name(self.normalization)
        ));
        parts.push(format!("--seed {}", self.seed));
        if let Some(n) = self.limit_train {
            parts.push(format!("--limit-train {n}"));
        }
        if let Some(n) = self.limit_test {
            parts.push(format!("--limit-test {n}"));
        }
        if let Some(path) = &self.init_from {
            parts.push(format!("--init-from {}", quoted(path)));
        }
        if let Some(n) = self.threads {
            parts.push(format!("--threads {n}"));
        }
        parts.push(format!("--device {}", self.device));
        parts.join(" ")
    }

    /// A short description of the recipe: `sgd lr 0.001 m 0.9 batch 4, 2 epochs`.
    pub fn recipe(&self) -> String {
        let mut text = format!(
            "{} lr {} m {} batch {}",
            value_name(self.optimizer),
            self.lr,
            self.momentum,
            self.batch_size
        );
        if self.weight_decay != 0.0 {
            text.push_str(&format!(" wd {}", self.weight_decay));
        }
        if self.schedule != ScheduleKind::None {
            text.push_str(&format!(" {}", value_name(self.schedule)));
        }
        if self.augment {
            text.push_str(" aug");
        }
        text
    }

    /// Reads a `config.json`.
    pub fn read(path: &Path) -> Result<RunConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read run configuration {}: {e}", path.display()))?;
        let config: RunConfig = serde_json::from_str(&text)
            .map_err(|e| format!("run configuration {}: {e}", path.display()))?;
        if config.format != CONFIG_FORMAT {
            return Err(format!(
                "run configuration {}: format {:?}, expected {CONFIG_FORMAT:?}",
                path.display(),
                config.format
            ));
        }
        Ok(config)
    }

    /// Writes `config.json` through a temporary file and a rename.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| format!("cannot encode the run configuration: {e}"))?;
        text.push('\n');
        gradlab_nn::checkpoint::write_atomically(path, text.as_bytes())
            .map_err(|e| format!("cannot write run configuration {}: {e}", path.display()))
    }
}

/// A path as a shell word (quoted when it holds anything but plain characters).
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if plain && !text.is_empty() {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, ValueEnum};

    fn parse(argv: &[&str]) -> TrainArgs {
        let mut all = vec!["train"];
        all.extend_from_slice(argv);
        TrainArgs::try_parse_from(all).unwrap()
    }

    #[test]
    fn options_come_from_the_command_line_then_the_resumed_run_then_the_defaults() {
        let fresh = RunConfig::resolve(&parse(&[]), None).unwrap();
        assert_eq!(
            (fresh.model, fresh.epochs, fresh.batch_size, fresh.lr),
            (ModelKind::Lenet, 2, 4, 0.001)
        );
        assert_eq!(
            (fresh.momentum, fresh.weight_decay, fresh.seed),
            (0.9, 0.0, 0)
        );
        let base = RunConfig::resolve(
            &parse(&[
                "--model",
                "convnet",
                "--optimizer",
                "adamw",
                "--lr",
                "0.05",
                "--augment",
                "--epochs",
                "3",
                "--conv-algo",
                "direct",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(base.weight_decay, 0.01, "AdamW's default weight decay");
        assert_eq!(fresh.conv_algo(), ConvAlgo::Auto);
        let resumed = RunConfig::resolve(&parse(&["--epochs", "5"]), Some(&base)).unwrap();
        assert_eq!(resumed.epochs, 5);
        assert_eq!(resumed.model, ModelKind::Convnet);
        assert_eq!(resumed.optimizer, OptimizerKind::Adamw);
        assert_eq!((resumed.lr, resumed.weight_decay), (0.05, 0.01));
        assert!(resumed.augment);
        assert_eq!(resumed.conv_algo(), ConvAlgo::Direct);
        assert_eq!(resumed.started, base.started);
        // A configuration written before the convolution algorithm was
        // kept reads back as auto.
        let mut json: serde_json::Value = serde_json::to_value(&base).unwrap();
        json.as_object_mut().unwrap().remove("conv_algo");
        let old: RunConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.conv_algo(), ConvAlgo::Auto);
        // A resumed run's numbers are checked like a fresh run's.
        let err = RunConfig::resolve(&parse(&["--lr", "-1"]), Some(&base)).unwrap_err();
        assert_eq!(err, "--lr must be a positive number, got -1");
    }

    /// The defaults written in the help are the ones used.
    #[test]
    fn the_help_shows_the_defaults_that_apply() {
        let fresh = RunConfig::resolve(&parse(&[]), None).unwrap();
        let command = TrainArgs::command();
        let help = |flag: &str| {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .unwrap_or_else(|| panic!("--{flag}"));
            let text = arg.get_long_help().or(arg.get_help()).unwrap().to_string();
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let name = |v: Option<clap::builder::PossibleValue>| v.unwrap().get_name().to_string();
        for (flag, default) in [
            ("model", name(fresh.model.to_possible_value())),
            ("dataset", name(fresh.dataset.to_possible_value())),
            ("epochs", fresh.epochs.to_string()),
            ("batch-size", fresh.batch_size.to_string()),
            ("lr", fresh.lr.to_string()),
            ("momentum", fresh.momentum.to_string()),
            ("optimizer", name(fresh.optimizer.to_possible_value())),
            ("schedule", name(fresh.schedule.to_possible_value())),
            ("gamma", fresh.gamma.to_string()),
            (
                "normalization",
                name(fresh.normalization.to_possible_value()),
            ),
            ("seed", fresh.seed.to_string()),
            ("device", fresh.device.clone()),
            ("conv-algo", fresh.conv_algo.clone()),
        ] {
            let text = help(flag);
            assert!(
                text.contains(&format!("[default: {default}]")),
                "--{flag}: {text}"
            );
        }
    }

    #[test]
    fn the_names_in_config_json_are_the_command_line_names() {
        fn check<T: ValueEnum + Serialize>() {
            for v in T::value_variants() {
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{}\"", value_name(v.clone())));
            }
        }
        check::<ModelKind>();
        check::<DatasetKind>();
        check::<OptimizerKind>();
        check::<ScheduleKind>();
        check::<NormalizationKind>();
    }

    #[test]
    fn the_command_line_repeats_the_run() {
        let config = RunConfig::resolve(
            &parse(&[
                "--epochs",
                "3",
                "--augment",
                "--limit-test",
                "100",
                "--lr",
                "0.01",
                "--conv-algo",
                "winograd",
            ]),
            None,
        )
        .unwrap();
        let line = config.command_line();
        assert!(
            line.starts_with("gradlab --kernels fast train --model lenet"),
            "{line}"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        let again = RunConfig::resolve(&parse(&words[4..]), None).unwrap();
        assert_eq!(again, config);
        assert_eq!(quoted(Path::new("/data/cifar-10")), "/data/cifar-10");
        assert_eq!(
            quoted(Path::new("/data/it's here")),
            r"'/data/it'\''s here'"
        );
    }
}

//! The training loop: one epoch of SGD steps over shuffled batches, then a
//! test-set evaluation, a metrics line and a checkpoint.

use super::args::TrainArgs;
use super::checkpoints::{checkpoint_paths, resume, snapshot, Progress};
use super::data::{load_split, normalization};
use super::evaluate::{batch_tensors, evaluate, Evaluation};
use super::models::build_model;
use super::setup::{build_optimizer, build_schedule, check_train_args, with_threads};
use gradlab_autograd::Var;
use gradlab_data::{Augmentation, DataLoader, LoaderConfig, Split};
use gradlab_nn::{cross_entropy, LrSchedule, Module, Optimizer};
use gradlab_tensor::{Rng, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// What one epoch measured (one line of the metrics file).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Training images per second (forward, backward and update; no evaluation).
    pub images_per_sec: f64,
    /// Seconds of training in the epoch (evaluation excluded).
    pub seconds: f64,
    /// Seconds spent evaluating on the test split.
    pub eval_seconds: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Optimizer steps taken since the start of the run.
    pub step: usize,
    /// Resident memory of the process at the end of the epoch, in MiB
    /// (Linux only), to see that memory stays flat across epochs.
    pub rss_mib: Option<f64>,
}

/// The process's resident set size in MiB, from `/proc/self/status`.
fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Everything a run produced.
#[derive(Debug)]
pub struct TrainReport {
    pub epochs: Vec<EpochMetrics>,
    /// The loss of every step this process ran, in order.
    pub step_losses: Vec<f64>,
    /// The last test-set evaluation (None when no epoch was left to run).
    pub evaluation: Option<Evaluation>,
    /// The model's parameters and buffers at the end.
    pub state: Vec<(String, Tensor)>,
    /// Checkpoints written, in order.
    pub checkpoints: Vec<PathBuf>,
}

/// Trains as `args` say, on `args.threads` threads.
pub fn train(args: &TrainArgs) -> Result<TrainReport, String> {
    let batch_size = check_train_args(args)?;
    with_threads(args.threads, || {
        gradlab_cpu::with_conv_algo(args.conv_algo, || Run::new(args, batch_size)?.run())
    })?
}

/// A run's pieces, set up.
struct Run<'a> {
    args: &'a TrainArgs,
    model: gradlab_nn::Sequential,
    optimizer: Box<dyn Optimizer>,
    schedule: LrSchedule,
    train: DataLoader,
    test: DataLoader,
    progress: Progress,
    last_checkpoint: Option<PathBuf>,
    metrics: Option<std::fs::File>,
    device: gradlab_tensor::Device,
}

impl<'a> Run<'a> {
    fn new(args: &'a TrainArgs, batch_size: usize) -> Result<Run<'a>, String> {
        let train_set = load_split(
            args.dataset,
            args.data.as_deref(),
            Split::Train,
            args.limit_train,
        )?;
        let test_set = load_split(
            args.dataset,
            args.data.as_deref(),
            Split::Test,
            args.limit_test,
        )?;
        let dims = train_set.dims();
        let norm = normalization(args.normalization, args.dataset, dims.channels);
        let augmentation = if args.augment {
            Augmentation::cifar10()
        } else {
            Augmentation::none()
        };
        let train_config = LoaderConfig::train(batch_size, args.seed)
            .with_normalization(norm.clone())
            .with_augmentation(augmentation);
        let train = DataLoader::new(train_set.clone(), train_config).map_err(|e| e.to_string())?;
        if train.num_batches() == 0 {
            return Err(format!(
                "--batch-size {batch_size} is larger than the {} training images: no full batch to train on",
                train_set.len()
            ));
        }
        let test = DataLoader::new(
            test_set,
            LoaderConfig::eval(EVAL_BATCH).with_normalization(norm),
        )
        .map_err(|e| e.to_string())?;

        let model = build_model(
            args.model,
            dims,
            train_set.num_classes(),
            &mut Rng::new(args.seed),
        )
        .map_err(|e| e.to_string())?;
        let mut optimizer = build_optimizer(args, model.parameters())?;
        let schedule = build_schedule(args, train.num_batches())?;
        let progress = match &args.resume {
            Some(path) => resume(path, args, &model, optimizer.as_mut())?,
            None => Progress::default(),
        };
        let device = super::setup::check_device(&args.device)?;
        super::setup::move_to_device(&model, Some(optimizer.as_mut()), device)?;
        let metrics = match &args.metrics {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(args.resume.is_some())
                    .write(true)
                    .truncate(args.resume.is_none())
                    .open(path)
                    .map_err(|e| format!("cannot open metrics file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        if let Some(dir) = &args.checkpoint_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("cannot create checkpoint directory {}: {e}", dir.display())
            })?;
        }
        Ok(Run {
            args,
            model,
            optimizer,
            schedule,
            train,
            test,
            progress,
            last_checkpoint: args.resume.clone(),
            metrics,
            device,
        })
    }

    fn run(mut self) -> Result<TrainReport, String> {
        let args = self.args;
        if !args.quiet {
            println!(
                "training {} ({} parameters) on {} {} images ({} steps of {} per epoch), testing on {}",
                super::args::value_name(args.model),
                self.model.num_parameters(),
                self.train.dataset().len(),
                super::args::value_name(args.dataset),
                self.train.num_batches(),
                self.train.config().batch_size,
                self.test.dataset().len(),
            );
            if self.progress.epoch > 0 {
                println!(
                    "resuming after epoch {} (step {})",
                    self.progress.epoch, self.progress.step
                );
            }
        }
        let mut report = TrainReport {
            epochs: Vec::new(),
            step_losses: Vec::new(),
            evaluation: None,
            state: Vec::new(),
            checkpoints: Vec::new(),
        };
        let end = args.stop_after.map_or(args.epochs, |n| n.min(args.epochs));
        for epoch in self.progress.epoch..end {
            let metrics = self.epoch(epoch, &mut report)?;
            report.epochs.push(metrics);
        }
        if let (Some(eval), false) = (&report.evaluation, args.quiet) {
            print!("{}", eval.render());
        }
        report.state = self
            .model
            .state()
            .into_iter()
            .map(|(n, v)| (n, v.data()))
            .collect();
        Ok(report)
    }

    /// Trains epoch `epoch` (0-based), evaluates, logs and checkpoints.
    fn epoch(&mut self, epoch: usize, report: &mut TrainReport) -> Result<EpochMetrics, String> {
        let args = self.args;
        let steps = self.train.num_batches();
        let bar = progress_bar(args.quiet, steps, epoch, args.epochs);
        let plain_every = if args.quiet || std::io::stderr().is_terminal() {
            usize::MAX
        } else {
            (steps / 10).max(1)
        };
        self.model.set_training(true);
        let started = Instant::now();
        let (mut loss_sum, mut images) = (0.0, 0usize);
        let mut lr = self.optimizer.lr();
        let mut batches = self.train.prefetch_epoch(epoch as u64, 4);
        let mut index = 0;
        while let Some(batch) = batches.next() {
            lr = self.schedule.lr(args.lr, self.progress.step);
            self.optimizer.set_lr(lr);
            if let Some(m) = self.schedule.momentum(self.progress.step) {
                self.optimizer.set_momentum(m);
            }
            let (x, target) = batch_tensors(&batch)?;
            let on_device = |t: Tensor| t.to_device(self.device).map_err(|e| e.to_string());
            let (x, target) = (on_device(x)?, on_device(target)?);
            images += batch.len();
            batches.recycle(batch);
            let loss = self.step(&x, &target, epoch, index, steps)?;
            loss_sum += loss;
            report.step_losses.push(loss);
            self.progress.step += 1;
            index += 1;
            if index % 25 == 0 || index == steps {
                let rate = images as f64 / started.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {:.4} | {rate:.0} img/s",
                    loss_sum / index as f64
                ));
            }
            if index % plain_every == 0 {
                let rate = images as f64 / started.elapsed().as_secs_f64();
                eprintln!(
                    "[epoch {}, step {index}/{steps}] loss {:.4}, {rate:.0} img/s",
                    epoch + 1,
                    loss_sum / index as f64
                );
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        self.progress.epoch = epoch + 1;

        let eval_started = Instant::now();
        let evaluation = evaluate(&self.model, &self.test)?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / steps as f64,
            test_loss: evaluation.loss,
            test_accuracy: evaluation.accuracy(),
            images_per_sec: images as f64 / seconds,
            seconds,
            eval_seconds: eval_started.elapsed().as_secs_f64(),
            lr,
            step: self.progress.step,
            rss_mib: resident_mib(),
        };
        report.evaluation = Some(evaluation);
        if !args.quiet {
            println!(
                "epoch {}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, {:.0} img/s, {:.1} s (+{:.1} s eval), lr {:.3e}",
                metrics.epoch,
                args.epochs,
                metrics.train_loss,
                metrics.test_loss,
                100.0 * metrics.test_accuracy,
                metrics.images_per_sec,
                metrics.seconds,
                metrics.eval_seconds,
                metrics.lr
            );
        }
        self.write_metrics(&metrics)?;
        self.checkpoint(report)?;
        Ok(metrics)
    }

    /// One optimizer step on a batch; refuses a non-finite loss before it
    /// can reach the weights.
    fn step(
        &mut self,
        x: &Tensor,
        target: &Tensor,
        epoch: usize,
        index: usize,
        steps: usize,
    ) -> Result<f64, String> {
        let logits = self
            .model
            .forward(&Var::constant(x.clone()))
            .map_err(|e| e.to_string())?;
        let loss = cross_entropy(&logits, target).map_err(|e| e.to_string())?;
        let value = loss.item().map_err(|e| e.to_string())?;
        if !value.is_finite() {
            let kept = match &self.last_checkpoint {
                Some(path) => format!("the last good checkpoint is {}", path.display()),
                None => "no checkpoint had been written yet".to_string(),
            };
            return Err(format!(
                "training stopped: the loss is {value} at step {} (epoch {}, batch {} of {steps}); \
                 no checkpoint was written from this state; {kept}. Try a smaller --lr.",
                self.progress.step + 1,
                epoch + 1,
                index + 1
            ));
        }
        self.optimizer.zero_grad();
        loss.backward().map_err(|e| e.to_string())?;
        self.optimizer.step().map_err(|e| e.to_string())?;
        Ok(value)
    }

    fn write_metrics(&mut self, metrics: &EpochMetrics) -> Result<(), String> {
        if let (Some(file), Some(path)) = (&mut self.metrics, &self.args.metrics) {
            let line = serde_json::to_string(metrics).map_err(|e| e.to_string())?;
            writeln!(file, "{line}")
                .map_err(|e| format!("writing metrics file {}: {e}", path.display()))?;
            file.flush()
                .map_err(|e| format!("writing metrics file {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, report: &mut TrainReport) -> Result<(), String> {
        let Some(dir) = &self.args.checkpoint_dir else {
            return Ok(());
        };
        let ck = snapshot(
            self.args,
            &self.model,
            self.optimizer.as_ref(),
            self.progress,
        );
        let (epoch_path, last_path) = checkpoint_paths(dir, self.args.model, self.progress.epoch);
        for path in [&epoch_path, &last_path] {
            ck.save(path).map_err(|e| e.to_string())?;
        }
        report.checkpoints.push(epoch_path);
        self.last_checkpoint = Some(last_path);
        Ok(())
    }
}

/// Images per evaluation batch: large enough to amortise per-batch work,
/// small enough to keep the convnet's activations in a few tens of MB.
const EVAL_BATCH: usize = 250;

fn progress_bar(quiet: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
    bar
}

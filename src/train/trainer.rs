//! The training loop: one epoch of SGD steps over shuffled batches, then a
//! test-set evaluation, a metrics line and a checkpoint.

use super::args::{value_name, TrainArgs};
use super::checkpoints::{checkpoint_paths, init_from, resume, snapshot, Progress};
use super::config::RunConfig;
use super::data::{absolute, check_same_images, find_data_dir, load_split, normalization};
use super::evaluate::{batch_tensors, evaluate, Evaluation};
use super::metrics::MetricsLog;
use super::models::build_model;
use super::run_dir::{self, Output, ResumeFrom};
use super::setup::{build_optimizer, build_schedule, with_threads};
use gradlab_autograd::Var;
use gradlab_data::{Augmentation, DataLoader, LoaderConfig, Split};
use gradlab_nn::{cross_entropy, Checkpoint, LrSchedule, Module, Optimizer};
use gradlab_tensor::backend::with_kernels;
use gradlab_tensor::{Rng, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How long the pool's workers keep looking for work after the last kernel
/// of a step before they park (see `gradlab_cpu::parallel::keep_workers_warm`):
/// longer than the pause between two steps.
const WORKERS_IDLE: std::time::Duration = std::time::Duration::from_millis(5);

/// What one epoch measured (one line of the metrics file).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// The training loss along the epoch: `[step, mean loss]` of each of
    /// about [`LOSS_CURVE_POINTS`] runs of consecutive steps, at the run's
    /// last step (for the loss-by-step picture).
    #[serde(default)]
    pub loss_curve: Vec<(usize, f64)>,
}

/// Points of an epoch's [`EpochMetrics::loss_curve`].
pub const LOSS_CURVE_POINTS: usize = 20;

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
    /// The run's directory (None with `--no-save`).
    pub run_dir: Option<PathBuf>,
    /// The configuration the run used (as its config.json records it).
    pub config: RunConfig,
}

/// Trains as `args` say: on `--threads` threads and the chosen kernels,
/// keeping the run in its directory.
pub fn train(args: &TrainArgs) -> Result<TrainReport, String> {
    let resumed = args
        .resume
        .as_deref()
        .map(run_dir::resume_from)
        .transpose()?;
    let config = RunConfig::resolve(args, resumed.as_ref().and_then(|r| r.config.as_ref()))?;
    let output = run_dir::output(args, resumed.as_ref());
    run_dir::check_fresh_directory(args, &output)?;
    let kernels = config.kernels();
    let conv_algo = config.conv_algo();
    with_threads(config.threads, || {
        with_kernels(kernels, || {
            gradlab_cpu::with_conv_algo(conv_algo, || {
                Run::new(args, config, output, resumed)?.run()
            })
        })
    })?
}

/// A run's pieces, set up.
struct Run<'a> {
    args: &'a TrainArgs,
    config: RunConfig,
    output: Output,
    model: gradlab_nn::Sequential,
    optimizer: Box<dyn Optimizer>,
    schedule: LrSchedule,
    train: DataLoader,
    test: DataLoader,
    progress: Progress,
    /// The last checkpoint written or resumed from (every one is checked
    /// finite first, so it holds a state worth going back to).
    last_checkpoint: Option<PathBuf>,
    /// The `--metrics` file, when it is not the run's own.
    metrics: Option<MetricsLog>,
    /// The run's `metrics.jsonl` (opened with the run directory).
    run_metrics: Option<MetricsLog>,
    run_dir: Option<PathBuf>,
    device: gradlab_tensor::Device,
}

impl<'a> Run<'a> {
    fn new(
        args: &'a TrainArgs,
        mut config: RunConfig,
        output: Output,
        resumed: Option<ResumeFrom>,
    ) -> Result<Run<'a>, String> {
        let data_dir = data_dir(args, &config)?;
        config.data = Some(absolute(&data_dir));
        let train_set = load_split(
            config.dataset,
            Some(&data_dir),
            Split::Train,
            config.limit_train,
        )?;
        let test_set = load_split(
            config.dataset,
            Some(&data_dir),
            Split::Test,
            config.limit_test,
        )?;
        check_same_images(&train_set, &test_set)?;
        let dims = train_set.dims();
        let norm = normalization(config.normalization, config.dataset, dims.channels);
        let augmentation = if config.augment {
            Augmentation::cifar10()
        } else {
            Augmentation::none()
        };
        let batch_size = config.batch_size;
        let train_config = LoaderConfig::train(batch_size, config.seed)
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
            config.model,
            dims,
            train_set.num_classes(),
            &mut Rng::new(config.seed),
        )
        .map_err(|e| e.to_string())?;
        // Only a fresh run starts from other weights; a resumed one loads its own.
        if let Some(path) = &args.init_from {
            init_from(path, config.model, &model)?;
            config.init_from = Some(absolute(path));
        }
        let mut optimizer = build_optimizer(&config, model.parameters())?;
        let schedule = build_schedule(&config, train.num_batches())?;
        let progress = match &resumed {
            Some(r) => resume(
                &r.checkpoint,
                &config,
                args.reset_optimizer,
                &model,
                optimizer.as_mut(),
                train.num_batches(),
            )?,
            None => Progress::default(),
        };
        let device = super::setup::check_device(&config.device)?;
        super::setup::move_to_device(&model, Some(optimizer.as_mut()), device)?;
        let own_metrics = match &output {
            Output::Dir(dir) => Some(dir.join(run_dir::METRICS_FILE)),
            Output::Nowhere | Output::NewUnder(_) => None,
        };
        let metrics = match &args.metrics {
            Some(path) if !same_file(path, own_metrics.as_deref()) => Some(MetricsLog::open(
                path,
                resumed.is_some().then_some(progress.epoch),
            )?),
            _ => None,
        };
        config.threads_used = rayon::current_num_threads();
        config.command = config.command_line();
        Ok(Run {
            args,
            config,
            output,
            model,
            optimizer,
            schedule,
            train,
            test,
            progress,
            last_checkpoint: resumed.map(|r| r.checkpoint),
            metrics,
            run_metrics: None,
            run_dir: None,
            device,
        })
    }

    /// Creates (or takes over) the run directory and writes the
    /// configuration into it, before the first epoch: a run killed at any
    /// point after this can be found, listed and resumed.
    fn open_run_dir(&mut self) -> Result<(), String> {
        let dir = match &self.output {
            Output::Nowhere => return Ok(()),
            Output::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create run directory {}: {e}", dir.display()))?;
                dir.clone()
            }
            Output::NewUnder(root) => {
                run_dir::create_named(root, self.config.model, run_dir::utc_now())?
            }
        };
        self.config.write(&dir.join(run_dir::CONFIG_FILE))?;
        // The run's own log holds this run's epochs only: epochs after the
        // resumed checkpoint (or, for a fresh run replacing another with
        // --overwrite, all of them) are dropped at the first line.
        self.run_metrics = Some(MetricsLog::open(
            &dir.join(run_dir::METRICS_FILE),
            Some(self.progress.epoch),
        )?);
        self.run_dir = Some(dir);
        Ok(())
    }

    fn run(mut self) -> Result<TrainReport, String> {
        let args = self.args;
        self.open_run_dir()?;
        match &self.run_dir {
            Some(dir) => println!("run directory: {}", dir.display()),
            None => println!(
                "run directory: none (--no-save: no checkpoint, metrics or pictures are kept)"
            ),
        }
        if !args.quiet {
            println!(
                "training {} ({} parameters) on {} {} images ({} steps of {} per epoch), testing on {}",
                value_name(self.config.model),
                self.model.num_parameters(),
                self.train.dataset().len(),
                value_name(self.config.dataset),
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
            run_dir: self.run_dir.clone(),
            config: self.config.clone(),
        };
        let epochs = self.config.epochs;
        let end = args.stop_after.map_or(epochs, |n| n.min(epochs));
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
        let epochs = self.config.epochs;
        let steps = self.train.num_batches();
        let bar = progress_bar(args.quiet, steps, epoch, epochs);
        let plain_every = if args.quiet || std::io::stderr().is_terminal() {
            usize::MAX
        } else {
            (steps / 10).max(1)
        };
        self.model.set_training(true);
        let started = Instant::now();
        let (mut loss_sum, mut images) = (0.0, 0usize);
        let window = steps.div_ceil(LOSS_CURVE_POINTS).max(1);
        let (mut window_sum, mut window_len) = (0.0, 0usize);
        let mut loss_curve = Vec::with_capacity(LOSS_CURVE_POINTS + 1);
        let mut lr = self.optimizer.lr();
        let mut batches = self.train.prefetch_epoch(epoch as u64, 4);
        let mut index = 0;
        while let Some(batch) = batches.next() {
            lr = self.schedule.lr(self.config.lr, self.progress.step);
            self.optimizer.set_lr(lr);
            if let Some(m) = self.schedule.momentum(self.progress.step) {
                self.optimizer.set_momentum(m);
            }
            let (x, target) = batch_tensors(&batch)?;
            let on_device = |t: Tensor| t.to_device(self.device).map_err(|e| e.to_string());
            let (x, target) = (on_device(x)?, on_device(target)?);
            images += batch.len();
            batches.recycle(batch);
            // The step's many short parallel kernels find the other
            // workers awake (they park again once the epoch ends).
            gradlab_cpu::parallel::keep_workers_warm(WORKERS_IDLE);
            let loss = self.step(&x, &target, epoch, index, steps)?;
            loss_sum += loss;
            report.step_losses.push(loss);
            self.progress.step += 1;
            index += 1;
            window_sum += loss;
            window_len += 1;
            if window_len == window || index == steps {
                loss_curve.push((self.progress.step, window_sum / window_len as f64));
                (window_sum, window_len) = (0.0, 0);
            }
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
            loss_curve,
        };
        self.check_not_diverged(&metrics)?;
        if !args.quiet {
            println!(
                "epoch {}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, {:.0} img/s, {:.1} s (+{:.1} s eval), lr {:.3e}",
                metrics.epoch,
                epochs,
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
        self.draw(&evaluation);
        self.write_conv_picks();
        report.evaluation = Some(evaluation);
        Ok(metrics)
    }

    /// Writes what `--conv-algo auto` chose (`conv-picks.json`); a run that
    /// chose nothing (a named algorithm) leaves no such file, not even one
    /// of an earlier run it `--overwrite`s. Like the pictures, a failure is
    /// reported and the run goes on.
    fn write_conv_picks(&self) {
        let Some(dir) = &self.run_dir else {
            return;
        };
        let path = dir.join(run_dir::CONV_PICKS_FILE);
        let picks = if self.config.conv_algo() == gradlab_cpu::ConvAlgo::Auto {
            run_dir::conv_picks_json()
        } else {
            serde_json::Value::Array(Vec::new())
        };
        if picks.as_array().is_none_or(Vec::is_empty) {
            if path.is_file() {
                if let Err(e) = std::fs::remove_file(&path) {
                    eprintln!(
                        "warning: an earlier {} was not removed: {e}",
                        path.display()
                    );
                }
            }
            return;
        }
        let mut text = serde_json::to_string_pretty(&picks).unwrap_or_default();
        text.push('\n');
        if let Err(e) = gradlab_nn::checkpoint::write_atomically(&path, text.as_bytes()) {
            eprintln!("warning: {} was not written: {e}", path.display());
        }
    }

    /// Redraws the run's pictures: the curves of every epoch so far and
    /// the latest confusion matrix. A picture that cannot be written is
    /// reported and the run goes on: the checkpoint and metrics, which the
    /// pictures are drawn from, are already safe.
    fn draw(&self, evaluation: &Evaluation) {
        let Some(dir) = &self.run_dir else {
            return;
        };
        let title = dir.file_name().map_or_else(
            || value_name(self.config.model),
            |n| n.to_string_lossy().into_owned(),
        );
        let drawn = run_dir::read_metrics(&dir.join(run_dir::METRICS_FILE))
            .and_then(|epochs| {
                super::plots::curves(&title, &epochs)
                    .write(&dir.join(run_dir::CURVES_FILE))
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| {
                super::plots::confusion(evaluation, self.progress.epoch)
                    .write(&dir.join(run_dir::CONFUSION_FILE))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = drawn {
            eprintln!("warning: the run's pictures were not updated: {e}");
        }
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
            return Err(format!(
                "training stopped: the loss is {value} at step {} (epoch {}, batch {} of {steps}); \
                 no checkpoint was written from this state; {}. Try a smaller --lr.",
                self.progress.step + 1,
                epoch + 1,
                index + 1,
                self.kept()
            ));
        }
        self.optimizer.zero_grad();
        loss.backward().map_err(|e| e.to_string())?;
        self.optimizer.step().map_err(|e| e.to_string())?;
        Ok(value)
    }

    /// What is kept on disk, for the error that stops a diverged run.
    fn kept(&self) -> String {
        match &self.last_checkpoint {
            Some(path) => format!(
                "the last checkpoint, {}, holds finite weights (checked when it was written or resumed from)",
                path.display()
            ),
            None => "no checkpoint had been written yet".to_string(),
        }
    }

    /// Refuses to record an epoch whose evaluation or state is not finite:
    /// the last update of an epoch can blow the weights up after the last
    /// loss was checked, and such a state must not replace a good
    /// `last.safetensors` (nor leave a metrics line for an epoch that has no
    /// checkpoint).
    fn check_not_diverged(&self, metrics: &EpochMetrics) -> Result<(), String> {
        let mut state = Checkpoint::new();
        state.add_module(&self.model);
        state.add_optimizer(self.optimizer.as_ref());
        let what = if let Some((name, index, value)) = state.first_non_finite() {
            format!("'{name}' holds {value} at flat index {index}")
        } else if !metrics.test_loss.is_finite() {
            format!("the test loss is {}", metrics.test_loss)
        } else if !metrics.train_loss.is_finite() {
            format!("the mean training loss is {}", metrics.train_loss)
        } else {
            return Ok(());
        };
        Err(format!(
            "training stopped after epoch {} (step {}): {what}; nothing was written for this epoch \
             (no checkpoint, no metrics line); {}. Try a smaller --lr.",
            metrics.epoch,
            metrics.step,
            self.kept()
        ))
    }

    fn write_metrics(&mut self, metrics: &EpochMetrics) -> Result<(), String> {
        for log in [&mut self.run_metrics, &mut self.metrics]
            .into_iter()
            .flatten()
        {
            log.append(metrics)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, report: &mut TrainReport) -> Result<(), String> {
        let Some(dir) = &self.run_dir else {
            return Ok(());
        };
        let ck = snapshot(
            &self.config,
            &self.model,
            self.optimizer.as_ref(),
            self.progress,
            self.train.num_batches(),
        );
        let (epoch_path, last_path) = checkpoint_paths(dir, self.config.model, self.progress.epoch);
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
/// `gradlab eval` uses the same, so that it reproduces the trainer's figures.
pub const EVAL_BATCH: usize = 250;

/// The data directory of a run: `--data` when given; else the one the
/// resumed run read, when it is still there; else the default location.
fn data_dir(args: &TrainArgs, config: &RunConfig) -> Result<PathBuf, String> {
    match (&args.data, &config.data) {
        (None, Some(recorded)) if !recorded.is_dir() => {
            let found = find_data_dir(config.dataset, None)?;
            eprintln!(
                "note: the run read its data from {}, which is gone; using {}",
                recorded.display(),
                found.display()
            );
            Ok(found)
        }
        _ => find_data_dir(config.dataset, config.data.as_deref()),
    }
}

/// Whether `path` names the file `other` names (compared as absolute paths,
/// before either need exist).
fn same_file(path: &Path, other: Option<&Path>) -> bool {
    let key = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        absolute(parent.unwrap_or(Path::new("."))).join(p.file_name().unwrap_or_default())
    };
    other.is_some_and(|o| key(path) == key(o))
}

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

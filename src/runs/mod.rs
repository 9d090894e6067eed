//! `gradlab runs`: the runs kept under `runs/` (or `--dir`) as a table, and
//! `--plot A B ...`: one picture comparing their curves.

use crate::plot::{Chart, Figure, Panel, Series};
use crate::train::args::value_name;
use crate::train::run_dir::{self, list_runs, read_metrics};
use crate::train::{EpochMetrics, RunConfig};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `gradlab runs`: list past runs, or compare some of them in one picture.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "runs")]
pub struct RunsArgs {
    /// The directory holding the runs.
    #[arg(long, default_value = run_dir::RUNS_DIR)]
    pub dir: PathBuf,
    /// Draw the curves of these runs (names under --dir, or paths of run
    /// directories) into one SVG.
    #[arg(long, num_args = 1..)]
    pub plot: Vec<PathBuf>,
    /// Where --plot writes its SVG (default: comparison.svg in --dir).
    #[arg(long, requires = "plot")]
    pub out: Option<PathBuf>,
}

/// What a run directory says about its run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The directory's name.
    pub name: String,
    pub dir: PathBuf,
    pub config: RunConfig,
    /// The epochs done, from its metrics.jsonl.
    pub epochs: Vec<EpochMetrics>,
}

impl RunSummary {
    pub fn read(dir: &Path) -> Result<RunSummary, String> {
        let config = RunConfig::read(&dir.join(run_dir::CONFIG_FILE))?;
        let epochs = read_metrics(&dir.join(run_dir::METRICS_FILE))?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(RunSummary {
            name,
            dir: dir.to_path_buf(),
            config,
            epochs,
        })
    }

    /// The best test accuracy and its epoch.
    pub fn best_accuracy(&self) -> Option<(f64, usize)> {
        self.epochs
            .iter()
            .map(|m| (m.test_accuracy, m.epoch))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Training images per second, averaged over the epochs.
    pub fn images_per_sec(&self) -> Option<f64> {
        let n = self.epochs.len();
        (n > 0).then(|| self.epochs.iter().map(|m| m.images_per_sec).sum::<f64>() / n as f64)
    }
}

/// The runs under `root`, oldest first. A directory whose configuration
/// cannot be read is reported and left out.
pub fn summaries(root: &Path) -> Result<Vec<RunSummary>, String> {
    let mut runs = Vec::new();
    for dir in list_runs(root)? {
        match RunSummary::read(&dir) {
            Ok(run) => runs.push(run),
            Err(e) => eprintln!("note: skipping {}: {e}", dir.display()),
        }
    }
    runs.sort_by(|a, b| {
        (a.config.started.as_str(), a.name.as_str()).cmp(&(b.config.started.as_str(), &b.name))
    });
    Ok(runs)
}

/// The runs as a table: one line each, columns as wide as their widest entry.
pub fn table(runs: &[RunSummary]) -> String {
    let header = [
        "run",
        "model",
        "recipe",
        "epochs",
        "best test acc",
        "images/s",
        "started (UTC)",
    ];
    let rows: Vec<[String; 7]> = runs
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                value_name(r.config.model),
                r.config.recipe(),
                format!(
                    "{}/{}",
                    r.epochs.last().map_or(0, |m| m.epoch),
                    r.config.epochs
                ),
                r.best_accuracy().map_or("-".into(), |(acc, epoch)| {
                    format!("{:.2}% (ep {epoch})", 100.0 * acc)
                }),
                r.images_per_sec().map_or("-".into(), |v| format!("{v:.0}")),
                r.config
                    .started
                    .replace('T', " ")
                    .trim_end_matches('Z')
                    .to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Numbers are right-aligned, words left-aligned.
    let right = [false, false, false, true, true, true, false];
    let line = |cells: [&str; 7]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths[i];
            let padded = if right[i] {
                format!("{cell:>w$}")
            } else {
                format!("{cell:<w$}")
            };
            out.push_str(&padded);
            out.push_str(if i + 1 < cells.len() { "  " } else { "" });
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line(std::array::from_fn(|i| row[i].as_str())));
    }
    out
}

/// One picture of `runs` side by side: test accuracy and test loss by
/// epoch, and the training loss along the epochs (steps counted in
/// epochs, so runs of different batch sizes line up).
pub fn comparison(runs: &[RunSummary]) -> Figure {
    let mut accuracy = Chart::new("test accuracy", "epoch", "accuracy (%)");
    let mut test_loss = Chart::new("test loss", "epoch", "loss");
    let mut train_loss = Chart::new("training loss", "epoch", "loss");
    for run in runs {
        let by_epoch = |f: &dyn Fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
            run.epochs.iter().map(|m| (m.epoch as f64, f(m))).collect()
        };
        accuracy = accuracy.series(Series::line_and_points(
            &run.name,
            by_epoch(&|m| 100.0 * m.test_accuracy),
        ));
        test_loss = test_loss.series(Series::line_and_points(
            &run.name,
            by_epoch(&|m| m.test_loss),
        ));
        let steps_per_epoch = run
            .epochs
            .last()
            .map_or(1.0, |m| (m.step as f64 / m.epoch.max(1) as f64).max(1.0));
        let along: Vec<(f64, f64)> = crate::train::plots::training_loss_by_step(&run.epochs)
            .into_iter()
            .map(|(step, loss)| (step / steps_per_epoch, loss))
            .collect();
        train_loss = train_loss.series(Series::line(&run.name, along));
    }
    Figure::row(vec![
        Panel::Chart(accuracy),
        Panel::Chart(test_loss),
        Panel::Chart(train_loss),
    ])
}

/// The run directory `name` stands for: a path to one, or a name under `root`.
fn find_run(root: &Path, name: &Path) -> Result<PathBuf, String> {
    for candidate in [name.to_path_buf(), root.join(name)] {
        if candidate.join(run_dir::CONFIG_FILE).is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "{}: not a run directory (no {} there, nor in {})",
        name.display(),
        run_dir::CONFIG_FILE,
        root.join(name).display()
    ))
}

/// `gradlab runs`.
pub fn run(args: &RunsArgs) -> Result<ExitCode, String> {
    if args.plot.is_empty() {
        if !args.dir.is_dir() {
            println!(
                "no runs yet: {} does not exist (`gradlab train` keeps each run there)",
                args.dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let runs = summaries(&args.dir)?;
        if runs.is_empty() {
            println!("no runs in {}", args.dir.display());
        } else {
            print!("{}", table(&runs));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let runs = args
        .plot
        .iter()
        .map(|name| RunSummary::read(&find_run(&args.dir, name)?))
        .collect::<Result<Vec<_>, String>>()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("comparison.svg"));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    comparison(&runs).write(&out).map_err(|e| e.to_string())?;
    print!("{}", table(&runs));
    println!(
        "comparison of {} run{} written to {}",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

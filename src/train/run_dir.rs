//! A run's directory: where `gradlab train` keeps what a run produced, so
//! that `eval --run`, `train --resume` and `gradlab runs` find it again.
//!
//! ```text
//! runs/lenet-20261130-175400/      runs/<model>-<date>-<time> (UTC) unless --run-dir says
//!   config.json                    every option, the data directory, kernels, threads, build
//!   metrics.jsonl                  one JSON object per epoch
//!   curves.svg                     training and test loss, test accuracy (redrawn every epoch)
//!   confusion.svg                  the last evaluation's confusion matrix
//!   conv-picks.json                what `--conv-algo auto` chose per layer shape, and the times it measured
//!   lenet-epoch1.safetensors ...   a checkpoint per epoch
//!   last.safetensors               the latest checkpoint
//! ```

use super::args::{value_name, ModelKind, TrainArgs};
use super::checkpoints::existing_checkpoints;
use super::config::RunConfig;
use super::trainer::EpochMetrics;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where runs go when no directory is named.
pub const RUNS_DIR: &str = "runs";
pub const CONFIG_FILE: &str = "config.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CURVES_FILE: &str = "curves.svg";
pub const CONFUSION_FILE: &str = "confusion.svg";
pub const CONV_PICKS_FILE: &str = "conv-picks.json";
pub const LAST_CHECKPOINT: &str = "last.safetensors";

/// A moment in UTC, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl UtcTime {
    /// The time `seconds` after 1970-01-01T00:00:00Z.
    pub fn from_unix(seconds: i64) -> UtcTime {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day count.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        UtcTime {
            year,
            month,
            day,
            hour: (of_day / 3600) as u32,
            minute: (of_day % 3600 / 60) as u32,
            second: (of_day % 60) as u32,
        }
    }

    /// `2026-11-30T17:54:00Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `20261130-175400`, for directory names (sorts by time).
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Now, in UTC.
pub fn utc_now() -> UtcTime {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    UtcTime::from_unix(seconds)
}

/// Creates a new run directory `root/<model>-<date>-<time>` (with `-2`,
/// `-3`, ... when runs start in the same second), claiming it atomically
/// so that two runs never share one.
pub fn create_named(root: &Path, model: ModelKind, at: UtcTime) -> Result<PathBuf, String> {
    std::fs::create_dir_all(root)
        .map_err(|e| format!("cannot create runs directory {}: {e}", root.display()))?;
    let base = format!("{}-{}", value_name(model), at.compact());
    for n in 1..1000 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot create run directory {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    Err(format!(
        "cannot find a free run directory name {base}-N under {}",
        root.display()
    ))
}

/// Where a resumed run comes from.
#[derive(Clone, Debug)]
pub struct ResumeFrom {
    /// The checkpoint to load.
    pub checkpoint: PathBuf,
    /// The directory it is in: the run goes on there by default.
    pub dir: PathBuf,
    /// That run's configuration, when it has a `config.json` (runs written
    /// with `--checkpoint-dir` before runs kept one have none).
    pub config: Option<RunConfig>,
}

/// Reads what `--resume PATH` names: a run directory (its
/// `last.safetensors`) or a checkpoint file (in a run directory or not).
pub fn resume_from(path: &Path) -> Result<ResumeFrom, String> {
    let (checkpoint, dir) = if path.is_dir() {
        let last = path.join(LAST_CHECKPOINT);
        if !last.is_file() {
            return Err(format!(
                "--resume {}: the run has no checkpoint yet ({LAST_CHECKPOINT} is missing; \
                 it stopped before its first epoch ended): start it again with --run-dir {} --overwrite",
                path.display(),
                path.display()
            ));
        }
        (last, path.to_path_buf())
    } else {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (path.to_path_buf(), parent.to_path_buf())
    };
    let config_path = dir.join(CONFIG_FILE);
    let config = if config_path.is_file() {
        Some(RunConfig::read(&config_path)?)
    } else {
        None
    };
    Ok(ResumeFrom {
        checkpoint,
        dir,
        config,
    })
}

/// Where a run writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Nothing is kept (`--no-save`).
    Nowhere,
    /// This directory, named by the options or the resumed checkpoint.
    Dir(PathBuf),
    /// A new directory under `runs/`, named when the run starts.
    NewUnder(PathBuf),
}

/// The option that named the run directory, for messages.
fn dir_flag(args: &TrainArgs) -> &'static str {
    if args.checkpoint_dir.is_some() {
        "--checkpoint-dir"
    } else {
        "--run-dir"
    }
}

/// Where a run with `args` writes: `--no-save` nowhere; `--run-dir` (or
/// its older name `--checkpoint-dir`) there; a resumed run in its
/// checkpoint's directory; a fresh one in a new directory under `runs/`.
pub fn output(args: &TrainArgs, resume: Option<&ResumeFrom>) -> Output {
    if args.no_save {
        return Output::Nowhere;
    }
    if let Some(dir) = args.run_dir.as_ref().or(args.checkpoint_dir.as_ref()) {
        return Output::Dir(dir.clone());
    }
    match resume {
        Some(r) => Output::Dir(r.dir.clone()),
        None => Output::NewUnder(PathBuf::from(RUNS_DIR)),
    }
}

/// Refuses a fresh run (no `--resume`) whose named directory holds another
/// run's checkpoints or records, unless `--overwrite` says to replace them.
pub fn check_fresh_directory(args: &TrainArgs, output: &Output) -> Result<(), String> {
    let Output::Dir(dir) = output else {
        return Ok(());
    };
    if args.resume.is_some() || args.overwrite {
        return Ok(());
    }
    let mut found = existing_checkpoints(dir);
    for name in [CONFIG_FILE, METRICS_FILE] {
        if dir.join(name).is_file() {
            found.push(name.to_string());
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let shown = found.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    let more = if found.len() > 3 {
        format!(" and {} more", found.len() - 3)
    } else {
        String::new()
    };
    let what = if existing_checkpoints(dir).is_empty() {
        "another run's records"
    } else {
        "another run's checkpoints"
    };
    Err(format!(
        "{} {} already holds {what} ({shown}{more}); \
         pass --resume {} to continue that run, --overwrite to replace them, or another directory",
        dir_flag(args),
        dir.display(),
        dir.display()
    ))
}

/// The run directories under `root` (those holding a `config.json`), sorted by name.
pub fn list_runs(root: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| format!("cannot read runs directory {}: {e}", root.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(CONFIG_FILE).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The run `path` names: itself when it is a run directory (it holds a
/// `config.json` or a checkpoint), else, when it holds runs (as `runs/`
/// does), the one started last.
pub fn run_or_newest(path: &Path) -> Result<PathBuf, String> {
    let is_run = |d: &Path| d.join(CONFIG_FILE).is_file() || d.join(LAST_CHECKPOINT).is_file();
    if !path.is_dir() || is_run(path) {
        return Ok(path.to_path_buf());
    }
    let newest = list_runs(path)?
        .into_iter()
        .filter_map(|dir| {
            let started = RunConfig::read(&dir.join(CONFIG_FILE)).ok()?.started;
            Some((started, dir))
        })
        .max();
    newest.map(|(_, dir)| dir).ok_or_else(|| {
        format!(
            "{} is neither a run directory nor a directory of runs (no {CONFIG_FILE} in it or in its subdirectories)",
            path.display()
        )
    })
}

/// The epochs of a metrics file, in order; lines that do not parse (one a
/// kill cut short) are left out, and a later line for the same epoch (a
/// resumed run's) replaces an earlier one.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read metrics {}: {e}", path.display())),
    };
    let mut epochs: Vec<EpochMetrics> = Vec::new();
    for line in text.lines() {
        let Ok(m) = serde_json::from_str::<EpochMetrics>(line) else {
            continue;
        };
        epochs.retain(|e| e.epoch < m.epoch);
        epochs.push(m);
    }
    Ok(epochs)
}

/// `--conv-algo auto`'s picks so far in this process, one object per shape
/// class (pass, dtype, the convolution's shape, SIMD level, threads) with
/// the method it chose and each candidate's best time in milliseconds on
/// the first `trial_images` images of the batch, in a fixed order. Empty
/// when nothing was timed (a named algorithm).
pub fn conv_picks_json() -> serde_json::Value {
    let mut picks = gradlab_cpu::conv::auto_picks();
    picks.sort_by_key(|p| {
        (
            p.class.pass.name(),
            p.class.dtype,
            format!("{:?}", p.class.shape),
        )
    });
    let entries = picks
        .iter()
        .map(|p| {
            let (c, s) = (&p.class, &p.class.shape);
            let times: serde_json::Map<String, serde_json::Value> = p
                .timings
                .iter()
                .map(|(m, t)| (m.to_string(), serde_json::json!(t * 1e3)))
                .collect();
            serde_json::json!({
                "pass": c.pass.name(),
                "dtype": c.dtype,
                "batch": s.batch,
                "in_channels": s.in_channels,
                "out_channels": s.out_channels,
                "input": [s.in_h, s.in_w],
                "kernel": [s.kernel_h, s.kernel_w],
                "stride": [s.stride.0, s.stride.1],
                "padding": [s.padding.0, s.padding.1],
                "dilation": [s.dilation.0, s.dilation.1],
                "groups": s.groups,
                "simd": c.simd.name(),
                "threads": c.threads,
                "pick": p.method.to_string(),
                "trial_images": p.trial_images,
                "ms": times,
            })
        })
        .collect();
    serde_json::Value::Array(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_from_unix_seconds() {
        let t = UtcTime::from_unix(0);
        assert_eq!(t.rfc3339(), "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day of a century leap year), 12:34:56.
        let t = UtcTime::from_unix(951_827_696);
        assert_eq!(t.rfc3339(), "2000-02-29T12:34:56Z");
        assert_eq!(t.compact(), "20000229-123456");
        // The last second of 2026 and the first of 2027.
        assert_eq!(
            UtcTime::from_unix(1_798_761_599).rfc3339(),
            "2026-12-31T23:59:59Z"
        );
        assert_eq!(
            UtcTime::from_unix(1_798_761_600).rfc3339(),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(UtcTime::from_unix(-1).rfc3339(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn runs_started_in_the_same_second_get_their_own_directories() {
        let root = std::env::temp_dir().join(format!("gradlab-run-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let at = UtcTime::from_unix(1_798_761_600);
        let a = create_named(&root, ModelKind::Lenet, at).unwrap();
        let b = create_named(&root, ModelKind::Lenet, at).unwrap();
        let c = create_named(&root, ModelKind::Convnet, at).unwrap();
        assert_eq!(a, root.join("lenet-20270101-000000"));
        assert_eq!(b, root.join("lenet-20270101-000000-2"));
        assert_eq!(c, root.join("convnet-20270101-000000"));
        assert!(a.is_dir() && b.is_dir() && c.is_dir());
        std::fs::remove_dir_all(root).unwrap();
    }
}

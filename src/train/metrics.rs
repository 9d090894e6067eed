//! The `--metrics` file: one JSON object per epoch, appended.
//!
//! The file is never truncated: a fresh run appends to what is there (so a
//! run that fails early loses nothing). A resumed run replays the epochs
//! after its checkpoint, so before its first line it drops the lines of
//! those epochs (written by the run it continues, after the checkpoint it
//! resumed from, e.g. when a kill landed between the metrics line and the
//! checkpoint) together with any line a kill cut short; that rewrite goes
//! through a temporary file and a rename, so the file is always whole.

use super::trainer::EpochMetrics;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An open metrics file.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
    /// Set for a resumed run until its first line: drop lines of later epochs.
    drop_after: Option<usize>,
}

impl MetricsLog {
    /// Opens `path` for appending (creating it, never truncating it). A run
    /// resumed after epoch `resumed_after` drops the lines of later epochs
    /// when it writes its first one.
    pub fn open(path: &Path, resumed_after: Option<usize>) -> Result<MetricsLog, String> {
        let file = open_append(path)?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
            drop_after: resumed_after,
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> String {
        format!("writing metrics file {}: {e}", self.path.display())
    }

    /// Appends one epoch's line.
    pub fn append(&mut self, metrics: &EpochMetrics) -> Result<(), String> {
        let line = serde_json::to_string(metrics).map_err(|e| self.error(e))?;
        if let Some(epoch) = self.drop_after.take() {
            return self.rewrite(epoch, &line);
        }
        let mut bytes = Vec::with_capacity(line.len() + 2);
        if !ends_with_newline(&mut self.file).map_err(|e| self.error(e))? {
            // A line cut short by a kill: start on a fresh line.
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.flush())
            .map_err(|e| self.error(e))
    }

    /// Replaces the file by its lines of epochs up to `epoch` and `line`,
    /// atomically, then goes on appending to the new file.
    fn rewrite(&mut self, epoch: usize, line: &str) -> Result<(), String> {
        let mut old = Vec::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut old))
            .map_err(|e| self.error(e))?;
        let text = String::from_utf8_lossy(&old);
        let mut kept: Vec<&str> = text
            .lines()
            .filter(|l| line_epoch(l).is_some_and(|e| e <= epoch))
            .collect();
        kept.push(line);
        let mut bytes = kept.join("\n").into_bytes();
        bytes.push(b'\n');
        gradlab_nn::checkpoint::write_atomically(&self.path, &bytes).map_err(|e| self.error(e))?;
        self.file = open_append(&self.path)?;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("cannot open metrics file {}: {e}", path.display()))
}

/// True for an empty file or one whose last byte is a newline.
fn ends_with_newline(file: &mut File) -> std::io::Result<bool> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The `epoch` of a whole metrics line (`None` for anything else, such as
/// a line a kill cut short).
fn line_epoch(line: &str) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("epoch")?.as_u64().map(|e| e as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 1.0,
            test_loss: 1.0,
            test_accuracy: 0.5,
            images_per_sec: 1.0,
            seconds: 1.0,
            eval_seconds: 1.0,
            lr: 0.1,
            step: 10 * epoch,
            rss_mib: None,
            loss_curve: Vec::new(),
        }
    }

    fn epochs(path: &Path) -> Vec<Option<usize>> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(line_epoch)
            .collect()
    }

    #[test]
    fn appends_and_a_resume_drops_later_epochs_and_torn_lines() {
        let dir = std::env::temp_dir().join(format!("gradlab-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut log = MetricsLog::open(&path, None).unwrap();
        for e in 1..=3 {
            log.append(&metrics(e)).unwrap();
        }
        drop(log);
        // Opening alone (a run that then fails) changes nothing.
        drop(MetricsLog::open(&path, Some(1)).unwrap());
        assert_eq!(epochs(&path), [Some(1), Some(2), Some(3)]);
        // A kill cut the next line short.
        let tear = |path: &Path| {
            let mut f = OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(br#"{"epoch":4,"train_lo"#).unwrap();
        };
        tear(&path);
        // Resuming after epoch 2 drops epoch 3 and the torn line, atomically.
        let mut log = MetricsLog::open(&path, Some(2)).unwrap();
        log.append(&metrics(3)).unwrap();
        log.append(&metrics(4)).unwrap();
        assert_eq!(epochs(&path), [Some(1), Some(2), Some(3), Some(4)]);
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")));
        // A run that appends after a torn line starts on a fresh line.
        tear(&path);
        let mut log = MetricsLog::open(&path, None).unwrap();
        log.append(&metrics(5)).unwrap();
        assert_eq!(
            epochs(&path),
            [Some(1), Some(2), Some(3), Some(4), None, Some(5)]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

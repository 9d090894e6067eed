//! What the trainer's tests share: scratch directories, a small synthetic
//! CIFAR-10 in the official binary layout, and keeping runs out of the
//! working tree.

use std::path::{Path, PathBuf};

/// Bytes of one CIFAR-10 record: the label, then 3x32x32 pixels.
const RECORD: usize = 3073;

/// An empty directory `gradlab-<what>-<name>-<pid>` under the temp dir.
pub fn scratch(what: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlab-{what}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` CIFAR-10 records: label `i % 10` and pixels from a simple hash.
pub fn records(n: usize, salt: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * RECORD);
    for i in 0..n {
        out.push((i % 10) as u8);
        out.extend((0..RECORD - 1).map(|p| ((p * 31 + i * 17 + salt * 7) % 251) as u8));
    }
    out
}

/// Writes a CIFAR-10 directory holding 40 training records (8 per batch
/// file) and 20 test records into `dir`, and returns `dir`.
pub fn write_synthetic_cifar(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), records(8, i)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), records(20, 0)).unwrap();
    dir.to_path_buf()
}

/// `--no-save` unless the arguments name where the run goes: tests keep
/// nothing in the working tree's runs/.
pub fn with_output_flag(mut argv: Vec<&str>) -> Vec<&str> {
    if !argv.iter().any(|a| {
        matches!(
            *a,
            "--checkpoint-dir" | "--run-dir" | "--resume" | "--no-save"
        )
    }) {
        argv.push("--no-save");
    }
    argv
}

//! Damaged variants of valid files, for the readers' fuzz tests: each test
//! starts from bytes a reader accepts and checks that every variant gives
//! `Ok` or a clear error, never a panic, an abort or a hang.
//!
//! Shared by the fuzz tests of several crates (included with `#[path]`).

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::{Path, PathBuf};

/// Runs `check` on `cases` values of `strategy`, each with the same scratch
/// directory (removed afterwards), and panics with the smallest failing
/// value when one fails.
pub fn fuzz<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    check: impl Fn(&Path, S::Value) -> Result<(), TestCaseError>,
) {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("gradlab-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| check(&dir, value));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Writes `bytes` as a new file at `path`. Removing the old one first
/// matters for speed: ext4 flushes a file that is truncated and rewritten
/// (`auto_da_alloc`), which made each case wait for the disk.
pub fn put(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

/// How to damage a file.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    /// Cut at a point (a download or write that stopped).
    Truncate,
    /// Flip a few bits, half of them in the first 64 bytes where headers live.
    FlipBits,
    /// Overwrite a short run with random bytes.
    Overwrite,
    /// Insert or delete a short run (everything after it shifts).
    Shift,
    /// Random bytes of a similar length, sharing at most a prefix.
    Random,
    /// One aligned big-endian `u32` of the first 64 bytes (binary headers:
    /// sizes, magic numbers) set to an extreme: 0, 1, 2^31 - 1, 2^31 or 2^32 - 1.
    ExtremeWord,
    /// One run of ASCII digits (a size, offset or attribute in a JSON text)
    /// replaced by an extreme number: 0, 1, 2^50, 2^62, 2^64 - 1 or 10^20.
    /// Each is either harmless or far beyond any memory, so a reader that
    /// checks sizes fails fast on it and none makes a test slow.
    Digits,
}

const EXTREME_WORDS: [u32; 5] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
const EXTREME_NUMBERS: [&str; 6] = [
    "0",
    "1",
    "1125899906842624",
    "4611686018427387904",
    "18446744073709551615",
    "100000000000000000000",
];

/// A damage kind and the seed of its random choices.
pub fn damage() -> impl Strategy<Value = (Damage, u64)> {
    (
        prop_oneof![
            Just(Damage::Truncate),
            Just(Damage::FlipBits),
            Just(Damage::Overwrite),
            Just(Damage::Shift),
            Just(Damage::Random),
            Just(Damage::ExtremeWord),
            Just(Damage::Digits),
        ],
        any::<u64>(),
    )
}

/// A small deterministic generator (SplitMix64), so a failing case is
/// reproduced from its seed alone.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// `valid` damaged as `damage` says, with choices drawn from `seed`.
pub fn apply(valid: &[u8], damage: Damage, seed: u64) -> Vec<u8> {
    let mut rng = Mix(seed);
    let mut out = valid.to_vec();
    let len = out.len();
    match damage {
        Damage::Truncate => out.truncate(rng.below(len + 1)),
        Damage::FlipBits => {
            for _ in 0..1 + rng.below(4) {
                if len == 0 {
                    break;
                }
                let at = if rng.coin() {
                    rng.below(len.min(64))
                } else {
                    rng.below(len)
                };
                out[at] ^= 1 << rng.below(8);
            }
        }
        Damage::Overwrite => {
            let start = if rng.coin() {
                rng.below(len.min(64))
            } else {
                rng.below(len + 1)
            };
            let run = 1 + rng.below(16);
            let end = (start + run).min(len);
            for byte in &mut out[start.min(end)..end] {
                *byte = rng.next() as u8;
            }
        }
        Damage::Shift => {
            let at = rng.below(len + 1);
            if rng.coin() {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            } else {
                let end = (at + 1 + rng.below(16)).min(len);
                out.drain(at..end);
            }
        }
        Damage::ExtremeWord => {
            let words = len.min(64) / 4;
            if words > 0 {
                let at = 4 * rng.below(words);
                let value = EXTREME_WORDS[rng.below(EXTREME_WORDS.len())];
                out[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
        }
        Damage::Digits => {
            let runs: Vec<(usize, usize)> = digit_runs(&out);
            if !runs.is_empty() {
                let (start, end) = runs[rng.below(runs.len())];
                let number = EXTREME_NUMBERS[rng.below(EXTREME_NUMBERS.len())];
                out.splice(start..end, number.bytes());
            }
        }
        Damage::Random => {
            let keep = rng.below(len.min(16) + 1);
            out.truncate(keep);
            let extra = rng.below(2 * len + 1);
            out.extend((0..extra).map(|_| rng.next() as u8));
        }
    }
    out
}

/// The `(start, end)` of every run of ASCII digits in `bytes`.
fn digit_runs(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, b) in bytes.iter().enumerate() {
        match (b.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, bytes.len()));
    }
    runs
}

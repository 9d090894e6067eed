//! `--compare OLD.json`: each row against the same row of an earlier run,
//! with a verdict that takes both runs' spread into account, and
//! `--fail-slower PCT` for CI.
//!
//! A variant is *faster* only when its slowest repetition beat the old
//! run's fastest, *slower* only when its fastest lost to the old slowest;
//! overlapping spreads are the *same* within noise, whatever the medians
//! say. On a shared machine that is the only honest reading.

use super::measured::Measured;
use super::report::format_time;
use serde::Serialize;
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Faster,
    Slower,
    Same,
}

impl Verdict {
    /// The verdict for runs whose repetitions spanned `new` and `old`
    /// (`[fastest, slowest]` seconds).
    ///
    /// ```
    /// use gradlab::bench::Verdict;
    /// assert_eq!(Verdict::of((1.0, 1.2), (2.0, 2.5)), Verdict::Faster);
    /// assert_eq!(Verdict::of((2.0, 2.5), (1.0, 1.2)), Verdict::Slower);
    /// assert_eq!(Verdict::of((1.0, 1.3), (1.2, 1.5)), Verdict::Same);
    /// ```
    pub fn of(new: (f64, f64), old: (f64, f64)) -> Verdict {
        if new.1 < old.0 {
            Verdict::Faster
        } else if new.0 > old.1 {
            Verdict::Slower
        } else {
            Verdict::Same
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Same => "same",
        }
    }
}

/// One row present in both runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub kernel: String,
    pub shape: String,
    pub variant: String,
    pub threads: usize,
    pub old_median_s: f64,
    pub new_median_s: f64,
    /// New median time over old: below 1 is faster.
    pub ratio: f64,
    pub verdict: Verdict,
}

/// Every row of `new` that `old` also has (same kernel, shape, variant
/// and threads), in `new`'s order.
pub fn compare(new: &[Measured], old: &[Measured]) -> Vec<Comparison> {
    new.iter()
        .filter_map(|n| {
            let o = old.iter().find(|o| o.key() == n.key())?;
            Some(Comparison {
                kernel: n.row.kernel.clone(),
                shape: n.row.shape.clone(),
                variant: n.row.variant.clone(),
                threads: n.row.threads,
                old_median_s: o.row.median_s,
                new_median_s: n.row.median_s,
                ratio: n.row.median_s / o.row.median_s,
                verdict: Verdict::of(n.interval(), o.interval()),
            })
        })
        .collect()
}

/// Rows judged slower whose median grew by more than `percent`.
pub fn regressions(comparisons: &[Comparison], percent: f64) -> Vec<&Comparison> {
    comparisons
        .iter()
        .filter(|c| c.verdict == Verdict::Slower && c.ratio > 1.0 + percent / 100.0)
        .collect()
}

/// The comparison as a table.
pub fn table(comparisons: &[Comparison]) -> String {
    let mut out = format!(
        "{:<16} {:<28} {:<26} {:>3} {:>11} {:>11} {:>8} {:>7}\n",
        "kernel", "shape", "variant", "thr", "old", "new", "new/old", "verdict"
    );
    for c in comparisons {
        let _ = writeln!(
            out,
            "{:<16} {:<28} {:<26} {:>3} {:>11} {:>11} {:>7.3}x {:>7}",
            c.kernel,
            c.shape,
            c.variant,
            c.threads,
            format_time(c.old_median_s),
            format_time(c.new_median_s),
            c.ratio,
            c.verdict.name()
        );
    }
    out
}

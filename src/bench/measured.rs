//! A row with everything a report needs besides the median: the spread of
//! its repetitions, its error against the reference twin, its rank, and
//! where it sits on the roofline; and the JSON document that holds the
//! rows with the machine they ran on.

use super::fingerprint::Fingerprint;
use super::report::{format_time, Row};
use super::timing::Timing;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// A variant's result against its reference twin on the same inputs,
/// computed before timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Largest `|x - ref|` over the checked entries.
    pub max_abs_error: f64,
    /// That over the largest `|ref|`: a normwise relative error, which an
    /// entry that happens to be near zero cannot blow up.
    pub max_rel_error: f64,
    /// The relative error allowed for this problem (f32 rounding over the
    /// reduction length, with a wide margin).
    pub tolerance: f64,
    /// What the variant was compared with, e.g. `reference, every row`.
    pub against: String,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.max_rel_error <= self.tolerance
    }

    /// `x` against `reference` (same length).
    pub fn compare(x: &[f32], reference: &[f32], tolerance: f64, against: &str) -> Check {
        let mut max_abs_error = 0.0f64;
        let mut max_ref = 0.0f64;
        for (&v, &r) in x.iter().zip(reference) {
            let (v, r) = (f64::from(v), f64::from(r));
            // NaN in x must count as an error, not vanish in max().
            let e = if v.is_nan() {
                f64::INFINITY
            } else {
                (v - r).abs()
            };
            max_abs_error = max_abs_error.max(e);
            max_ref = max_ref.max(r.abs());
        }
        Check {
            max_abs_error,
            max_rel_error: max_abs_error / max_ref.max(f64::MIN_POSITIVE),
            tolerance,
            against: against.to_string(),
        }
    }
}

/// One row of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    #[serde(flatten)]
    pub row: Row,
    /// The fastest and slowest repetition, and how many ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reps: Option<usize>,
    /// The numeric size the sweep varies (n of an n x n x n GEMM, the batch
    /// of a convolution), for plots against size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<f64>,
    /// FLOPs per byte of compulsory traffic, for the roofline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// 1 = fastest among the variants of the same kernel and shape that
    /// passed their check; `None` for a flagged (or unchecked) variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
}

impl Measured {
    /// A row with the spread of `timing` (if known) and nothing else.
    pub fn new(row: Row, timing: Option<Timing>) -> Measured {
        Measured {
            row,
            min_s: timing.map(|t| t.min_s),
            max_s: timing.map(|t| t.max_s),
            reps: timing.map(|t| t.reps),
            size: None,
            intensity: None,
            check: None,
            rank: None,
        }
    }

    /// True when a check ran and failed.
    pub fn flagged(&self) -> bool {
        self.check.as_ref().is_some_and(|c| !c.passed())
    }

    /// `(kernel, shape, variant, threads)`: what `--compare` matches rows by.
    pub fn key(&self) -> (String, String, String, usize) {
        (
            self.row.kernel.clone(),
            self.row.shape.clone(),
            self.row.variant.clone(),
            self.row.threads,
        )
    }

    /// `[min, max]` of the repetitions; `median ± 5%` for a row without
    /// its spread (an older file, or PyTorch's baseline script).
    pub fn interval(&self) -> (f64, f64) {
        match (self.min_s, self.max_s) {
            (Some(lo), Some(hi)) => (lo, hi),
            _ => (self.row.median_s * 0.95, self.row.median_s * 1.05),
        }
    }
}

/// Ranks the checked variants of each `(kernel, shape, threads)` by median
/// time; flagged and unchecked ones get no rank.
pub fn rank(rows: &mut [Measured]) {
    for i in 0..rows.len() {
        let ranked = |r: &Measured| r.check.as_ref().is_some_and(Check::passed);
        if !ranked(&rows[i]) {
            rows[i].rank = None;
            continue;
        }
        let same = |r: &Measured| {
            r.row.kernel == rows[i].row.kernel
                && r.row.shape == rows[i].row.shape
                && r.row.threads == rows[i].row.threads
        };
        let faster = rows
            .iter()
            .filter(|r| same(r) && ranked(r) && r.row.median_s < rows[i].row.median_s)
            .count();
        rows[i].rank = Some(faster + 1);
    }
}

/// What `gradlab bench --json` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub machine: Fingerprint,
    pub rows: Vec<Measured>,
}

/// Rows from a JSON file of `gradlab bench --json`: this module's document,
/// or a bare array of rows (older files, `scripts/torch-baseline.py`).
pub fn load_rows(path: &Path) -> Result<Vec<Measured>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Ok(report) = serde_json::from_str::<Report>(&text) {
        return Ok(report.rows);
    }
    serde_json::from_str::<Vec<Measured>>(&text).map_err(|e| {
        format!(
            "{} is neither a `gradlab bench --json` report nor an array of its rows: {e}",
            path.display()
        )
    })
}

/// The rows as a Markdown table, to paste into a README.
pub fn markdown(rows: &[Measured]) -> String {
    let mut out = String::from(
        "| kernel | shape | variant | threads | min | median | max | throughput | peak | max rel. error | rank |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let time = |t: Option<f64>| t.map_or("-".to_string(), format_time);
    for r in rows {
        let throughput = match (r.row.gflops, r.row.gbps) {
            (Some(g), _) => format!("{g:.1} GFLOP/s"),
            (None, Some(b)) => format!("{b:.1} GB/s"),
            (None, None) => "-".into(),
        };
        let error = match &r.check {
            Some(c) if c.passed() => format!("{:.1e}", c.max_rel_error),
            Some(c) => format!("**{:.1e} (wrong)**", c.max_rel_error),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% | {} | {} |",
            r.row.kernel,
            r.row.shape,
            r.row.variant,
            r.row.threads,
            time(r.min_s),
            format_time(r.row.median_s),
            time(r.max_s),
            throughput,
            100.0 * r.row.peak_share,
            error,
            r.rank.map_or("-".into(), |k| k.to_string()),
        );
    }
    out
}

/// Prints a sweep row (with a header first when `header`): the spread of
/// its repetitions, its error against the reference twin and its rank.
pub fn print_measured(r: &Measured, header: bool) {
    if header {
        println!(
            "{:<22} {:<32} {:<26} {:>3} {:>10} {:>10} {:>10} {:>12} {:>5} {:>9} {:>10}",
            "kernel",
            "shape",
            "variant",
            "thr",
            "min",
            "median",
            "max",
            "throughput",
            "peak",
            "rel err",
            "rank"
        );
    }
    let time = |t: Option<f64>| t.map_or("-".to_string(), format_time);
    let throughput = match (r.row.gflops, r.row.gbps) {
        (Some(g), _) => format!("{g:.1} GF/s"),
        (None, Some(b)) => format!("{b:.1} GB/s"),
        (None, None) => "-".into(),
    };
    let error = r
        .check
        .as_ref()
        .map_or("-".into(), |c| format!("{:.1e}", c.max_rel_error));
    let rank = match (&r.check, r.rank) {
        (Some(c), _) if !c.passed() => "WRONG".to_string(),
        (_, Some(k)) => k.to_string(),
        _ => "-".to_string(),
    };
    println!(
        "{:<22} {:<32} {:<26} {:>3} {:>10} {:>10} {:>10} {:>12} {:>4.0}% {:>9} {:>10}",
        r.row.kernel,
        r.row.shape,
        r.row.variant,
        r.row.threads,
        time(r.min_s),
        format_time(r.row.median_s),
        time(r.max_s),
        throughput,
        100.0 * r.row.peak_share,
        error,
        rank
    );
}

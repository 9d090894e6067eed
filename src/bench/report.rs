//! Result rows: printed as a table as they come, written as JSON at the end.

use serde::Serialize;

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub kernel: String,
    pub shape: String,
    pub variant: String,
    pub threads: usize,
    pub median_s: f64,
    /// Compute kernels: useful GFLOP/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    /// Memory-bound kernels: GB/s moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    /// Throughput over the machine's measured peak (FMA or triad).
    pub peak_share: f64,
    /// Baseline time over this variant's time (above 1: faster than the baseline).
    pub baseline_ratio: Option<f64>,
}

pub fn print_row(row: &Row, header: bool) {
    if header {
        println!(
            "{:<14} {:<28} {:<34} {:>3} {:>12} {:>12} {:>7} {:>9}",
            "kernel", "shape", "variant", "thr", "median", "throughput", "peak", "vs base"
        );
    }
    let throughput = match (row.gflops, row.gbps) {
        (Some(g), _) => format!("{g:.1} GF/s"),
        (None, Some(b)) => format!("{b:.1} GB/s"),
        (None, None) => "-".into(),
    };
    let ratio = row
        .baseline_ratio
        .map_or("-".into(), |r| format!("{r:.2}x"));
    println!(
        "{:<14} {:<28} {:<34} {:>3} {:>12} {:>12} {:>6.0}% {:>9}",
        row.kernel,
        row.shape,
        row.variant,
        row.threads,
        format_time(row.median_s),
        throughput,
        100.0 * row.peak_share,
        ratio
    );
}

fn format_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} us", s * 1e6)
    }
}

//! Result rows: printed as a table as they come, written as JSON at the end.

use serde::{Deserialize, Serialize};

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub kernel: String,
    pub shape: String,
    pub variant: String,
    pub threads: usize,
    pub median_s: f64,
    /// Compute kernels: useful GFLOP/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    /// Memory-bound kernels: GB/s moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    /// Throughput over the machine's measured peak (FMA or triad).
    pub peak_share: f64,
    /// Baseline time over this variant's time (above 1: faster than the baseline).
    pub baseline_ratio: Option<f64>,
}

/// Width of the shape column: the longest shape of the cases, with room to spare.
const SHAPE_WIDTH: usize = 28;

/// Prints one row (after the header when `header`). The numbers come
/// first, then the shape, and the variant last: a long variant name
/// (`matrixmultiply (1 thread)`) then never pushes a number out of its
/// column.
pub fn print_row(row: &Row, header: bool) {
    if header {
        println!("{}", header_line());
    }
    println!("{}", row_line(row));
}

fn header_line() -> String {
    format!(
        "{:<14} {:>3} {:>12} {:>12} {:>7} {:>9}  {:<SHAPE_WIDTH$} {}",
        "kernel", "thr", "median", "throughput", "peak", "vs base", "shape", "variant"
    )
}

fn row_line(row: &Row) -> String {
    let throughput = match (row.gflops, row.gbps) {
        (Some(g), _) => format!("{g:.1} GF/s"),
        (None, Some(b)) => format!("{b:.1} GB/s"),
        (None, None) => "-".into(),
    };
    let ratio = row
        .baseline_ratio
        .map_or("-".into(), |r| format!("{r:.2}x"));
    format!(
        "{:<14} {:>3} {:>12} {:>12} {:>6.0}% {:>9}  {:<SHAPE_WIDTH$} {}",
        row.kernel,
        row.threads,
        format_time(row.median_s),
        throughput,
        100.0 * row.peak_share,
        ratio,
        row.shape,
        row.variant,
    )
}

pub(crate) fn format_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} us", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(variant: &str) -> Row {
        Row {
            kernel: "gemm f32".into(),
            shape: "lenet conv2 64x6x14x14 k5".into(),
            variant: variant.into(),
            threads: 2,
            median_s: 1.5e-3,
            gflops: Some(105.25),
            gbps: None,
            peak_share: 0.9,
            baseline_ratio: Some(1.02),
        }
    }

    /// Where each column of the header starts: the numbers of every row
    /// must end where their header ends, whatever the variant's length.
    #[test]
    fn numbers_stay_in_their_columns_whatever_the_variant_name() {
        let header = header_line();
        let short = row_line(&row("fast"));
        let long = row_line(&row("matrixmultiply (1 thread) with a much longer name"));
        let end_of = |line: &str, text: &str| line.find(text).unwrap() + text.len();
        for (column, value) in [
            ("median", "1.500 ms"),
            ("throughput", "105.2 GF/s"),
            ("peak", "90%"),
            ("vs base", "1.02x"),
        ] {
            assert_eq!(end_of(&short, value), end_of(&header, column), "{column}");
            assert_eq!(end_of(&long, value), end_of(&header, column), "{column}");
        }
        let start = header.find("variant").unwrap();
        assert_eq!(short.find("fast"), Some(start));
        assert_eq!(long.find("matrixmultiply"), Some(start));
    }
}

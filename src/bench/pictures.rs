//! `--svg`: GFLOP/s against size with one line per variant (one panel per
//! kernel), and a roofline with every measured kernel placed, one series
//! per variant.

use super::measured::Measured;
use super::peak::MachinePeak;
use crate::plot::{roofline, Chart, Figure, Panel, RooflinePoint, Series};

/// Distinct values of `key` over `rows`, in first-seen order.
fn distinct<'a>(rows: &'a [Measured], key: impl Fn(&'a Measured) -> &'a str) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for r in rows {
        let k = key(r);
        if !seen.contains(&k) {
            seen.push(k);
        }
    }
    seen
}

/// One panel per kernel with sized rows: GFLOP/s against size, a line per
/// variant (for several shapes of one kernel, a line per shape and variant).
fn size_charts(rows: &[Measured], threads: usize) -> Vec<Panel> {
    let sized: Vec<Measured> = rows
        .iter()
        .filter(|r| r.size.is_some() && r.row.gflops.is_some())
        .cloned()
        .collect();
    let mut panels = Vec::new();
    for kernel in distinct(&sized, |r| r.row.kernel.as_str()) {
        let of_kernel: Vec<&Measured> = sized.iter().filter(|r| r.row.kernel == kernel).collect();
        let x_label = if kernel.starts_with("gemm") {
            "n (n x n x n)"
        } else {
            "batch"
        };
        let mut chart =
            Chart::new(format!("{kernel}, {threads} threads"), x_label, "GFLOP/s").log_log();
        // Shapes of a sweep differ only by the swept size after the last
        // " batch " (convolutions); GEMM shapes are all one family.
        let family = |r: &Measured| -> String {
            match r.row.shape.rsplit_once(" batch ") {
                Some((family, _)) => format!("{family}: "),
                None => String::new(),
            }
        };
        let mut names: Vec<String> = Vec::new();
        for r in &of_kernel {
            let name = format!("{}{}", family(r), r.row.variant);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for name in names {
            let points = of_kernel
                .iter()
                .filter(|r| format!("{}{}", family(r), r.row.variant) == name)
                .map(|r| (r.size.expect("sized"), r.row.gflops.expect("compute row")))
                .collect();
            chart = chart.series(Series::line_and_points(name, points));
        }
        panels.push(Panel::Chart(chart));
    }
    panels
}

/// Every row with an intensity placed on the machine's roofline, a series
/// per variant.
fn roofline_chart(rows: &[Measured], peak: &MachinePeak, threads: usize) -> Chart {
    let placed: Vec<&Measured> = rows
        .iter()
        .filter(|r| r.intensity.is_some() && r.row.gflops.is_some())
        .collect();
    let groups = distinct(rows, |r| r.row.variant.as_str())
        .into_iter()
        .filter(|v| placed.iter().any(|r| r.row.variant == *v))
        .map(|variant| {
            let points = placed
                .iter()
                .filter(|r| r.row.variant == variant)
                .map(|r| RooflinePoint {
                    label: String::new(),
                    intensity: r.intensity.expect("filtered"),
                    gflops: r.row.gflops.expect("filtered"),
                })
                .collect();
            (variant.to_string(), points)
        })
        .collect();
    roofline(
        &format!("roofline, {threads} threads"),
        peak.gflops_for(threads),
        peak.triad_gbps,
        groups,
    )
}

/// The sweep's figure: the size charts, then the roofline.
pub fn figure(rows: &[Measured], peak: &MachinePeak, threads: usize) -> Figure {
    let mut panels = size_charts(rows, threads);
    panels.push(Panel::Chart(roofline_chart(rows, peak, threads)));
    let columns = panels.len().min(2);
    Figure {
        panels,
        columns,
        panel_size: (760, 520),
    }
}

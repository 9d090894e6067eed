//! Roofline charts: kernels or graph nodes placed by arithmetic intensity
//! (FLOP/byte, x) and achieved GFLOP/s (y) under the machine's two roofs,
//! the FMA peak (flat) and the memory bandwidth (a slope of `GB/s`), which
//! meet at the ridge point.

use super::{Chart, Series};

/// One placed kernel or node.
#[derive(Clone, Debug, PartialEq)]
pub struct RooflinePoint {
    pub label: String,
    /// FLOPs per byte moved.
    pub intensity: f64,
    /// Achieved GFLOP/s.
    pub gflops: f64,
}

/// A log-log roofline: one labelled point series per group (`(name,
/// points)`, e.g. one per kernel variant), then the two roofs as lines.
/// The groups come first so that they take the same colours as the
/// same variants in a chart drawn beside it.
/// Points without a positive intensity and throughput cannot sit on log
/// axes and are left out.
///
/// ```
/// use gradlab::plot::{roofline, Figure, RooflinePoint};
/// let p = RooflinePoint { label: "conv1".into(), intensity: 10.0, gflops: 50.0 };
/// let chart = roofline("LeNet step", 100.0, 20.0, vec![("nodes".into(), vec![p])]);
/// assert_eq!(chart.series.len(), 3); // one group, two roofs
/// assert!(Figure::single(chart).to_svg().unwrap().contains("conv1"));
/// ```
pub fn roofline(
    title: &str,
    peak_gflops: f64,
    bandwidth_gbps: f64,
    groups: Vec<(String, Vec<RooflinePoint>)>,
) -> Chart {
    let ridge = peak_gflops / bandwidth_gbps;
    let placed = |p: &RooflinePoint| {
        p.intensity.is_finite() && p.intensity > 0.0 && p.gflops.is_finite() && p.gflops > 0.0
    };
    let intensities = groups
        .iter()
        .flat_map(|(_, points)| points.iter().filter(|p| placed(p)).map(|p| p.intensity))
        .chain([ridge]);
    let (lo, hi) = intensities.fold((f64::INFINITY, 0.0f64), |(lo, hi), i| {
        (lo.min(i), hi.max(i))
    });
    let (x0, x1) = (lo / 4.0, hi * 4.0);
    let mut chart = Chart::new(title, "arithmetic intensity (FLOP/byte)", "GFLOP/s").log_log();
    for (name, points) in groups {
        let kept: Vec<&RooflinePoint> = points.iter().filter(|p| placed(p)).collect();
        let mut series =
            Series::points(name, kept.iter().map(|p| (p.intensity, p.gflops)).collect());
        if kept.iter().any(|p| !p.label.is_empty()) {
            series = series.labelled(kept.iter().map(|p| p.label.clone()).collect());
        }
        chart = chart.series(series);
    }
    chart
        .series(Series::line(
            format!("FMA peak {peak_gflops:.0} GFLOP/s"),
            vec![(ridge, peak_gflops), (x1, peak_gflops)],
        ))
        .series(Series::line(
            format!("bandwidth {bandwidth_gbps:.1} GB/s"),
            vec![(x0, x0 * bandwidth_gbps), (ridge, peak_gflops)],
        ))
}

//! `--sweep`: every variant over a range of sizes, each checked against its
//! reference twin on the same inputs before it is timed.
//!
//! Square GEMM from 32 to 4096 in steps of about 1.25x, and LeNet's two
//! convolutions (forward and both gradients) over batch sizes. A variant
//! whose result is outside the tolerance is flagged and gets no rank, so a
//! wrong kernel can never top the table by being fast.

use super::measured::{rank, Check, Measured};
use super::peak::MachinePeak;
use super::report::Row;
use super::timing::{Plan, Timing};
use gradlab_cpu::cost::gemm_cost;
use gradlab_cpu::{reference, Conv2dShape, Rng, SimdLevel};

/// The sizes a sweep visits.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSizes {
    /// n of each n x n x n GEMM.
    pub gemm: Vec<usize>,
    /// Batch sizes of the convolutions.
    pub conv_batches: Vec<usize>,
}

impl SweepSizes {
    /// 32 to 4096 in steps of about 1.25x (odd sizes included: they
    /// exercise the kernels' edges); batches 1 to 128.
    pub fn full() -> SweepSizes {
        SweepSizes {
            gemm: geometric(32, 4096, 1.25),
            conv_batches: vec![1, 2, 4, 8, 16, 32, 64, 128],
        }
    }

    /// Up to 1024 in steps of about 1.5x; batches 1 to 64 by 4x.
    pub fn quick() -> SweepSizes {
        SweepSizes {
            gemm: geometric(32, 1024, 1.5),
            conv_batches: vec![1, 4, 16, 64],
        }
    }
}

/// `from`, `from·factor`, ... rounded, up to `to`, which is always last;
/// a size within half a step of `to` gives way to it.
///
/// ```
/// assert_eq!(gradlab::bench::geometric(32, 64, 1.25), vec![32, 40, 50, 64]);
/// ```
pub fn geometric(from: usize, to: usize, factor: f64) -> Vec<usize> {
    // A factor of 1 or less (or NaN) would never reach `to`.
    if from >= to || factor.is_nan() || factor <= 1.0 {
        return vec![to];
    }
    let mut sizes = Vec::new();
    let mut s = from as f64;
    let half_step_below_to = to as f64 / factor.sqrt();
    while s < half_step_below_to {
        let n = s.round() as usize;
        if sizes.last() != Some(&n) {
            sizes.push(n);
        }
        s *= factor;
    }
    sizes.push(to);
    sizes
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

/// f32 rounding over a reduction of `len` terms grows like `sqrt(len)·eps`;
/// the tolerance allows a hundred times that, and a wrong kernel is off by
/// order one.
fn tolerance(len: usize) -> f64 {
    1e-5 * (len.max(1) as f64).sqrt()
}

/// Runs `c = a · b` for row-major `m×k`, `k×n` matrices.
pub type GemmFn = Box<dyn Fn(usize, usize, usize, &[f32], &[f32], &mut [f32]) + Send + Sync>;

/// One way to multiply matrices.
pub struct GemmVariant {
    pub name: String,
    pub run: GemmFn,
    /// Timed only up to this many multiply-adds (the plain reference loop
    /// is too slow beyond); `None`: always.
    pub max_macs: Option<usize>,
}

impl GemmVariant {
    pub fn new(name: impl Into<String>, run: GemmFn) -> GemmVariant {
        GemmVariant {
            name: name.into(),
            run,
            max_macs: None,
        }
    }
}

/// Forced SIMD levels worth showing next to the automatic choice.
fn forced_levels() -> Vec<SimdLevel> {
    SimdLevel::supported()
        .into_iter()
        .filter(|&l| {
            l.kind() != gradlab_cpu::SimdKind::Scalar
                && l.kind() < gradlab_cpu::detected_simd_level().kind()
        })
        .collect()
}

fn fast_gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gradlab_cpu::gemm(m, k, n, 1.0, a, k, 1, b, n, 1, 0.0, c, n, 1);
}

/// The GEMMs a sweep compares: the reference loop, matrixmultiply, the
/// `gemm` crate, gradlab's kernel at the detected and at forced SIMD levels.
pub fn gemm_variants(threads: usize) -> Vec<GemmVariant> {
    let mut variants = vec![
        GemmVariant {
            max_macs: Some(1 << 25),
            ..GemmVariant::new(
                "reference",
                Box::new(|m, k, n, a, b, c| {
                    reference::gemm(m, k, n, 1.0, a, k, 1, b, n, 1, 0.0, c, n, 1)
                }),
            )
        },
        GemmVariant::new("matrixmultiply (1 thread)", Box::new(super::baseline_sgemm)),
        GemmVariant::new(
            format!("gemm crate ({threads} thr)"),
            Box::new(move |m, k, n, a, b, c| {
                super::gemm_crate::gemm_crate_sgemm(m, k, n, a, b, c, threads)
            }),
        ),
        GemmVariant::new(
            format!("fast ({})", gradlab_cpu::simd_level()),
            Box::new(fast_gemm),
        ),
    ];
    for level in forced_levels() {
        variants.push(GemmVariant::new(
            format!("fast ({level})"),
            Box::new(move |m, k, n, a, b, c| {
                gradlab_cpu::with_simd_level(level, || fast_gemm(m, k, n, a, b, c))
            }),
        ));
    }
    variants
}

/// Problems up to this size are checked on every entry; larger ones on
/// the rows [`check_rows`] picks.
const FULL_CHECK_MAX: usize = 1024;

/// Rows of an `n`-row result the check covers: all of them up to
/// [`FULL_CHECK_MAX`], else 16 spread evenly (first and last included).
fn check_rows(n: usize) -> Vec<usize> {
    if n <= FULL_CHECK_MAX {
        (0..n).collect()
    } else {
        (0..16).map(|i| i * (n - 1) / 15).collect()
    }
}

fn gemm_row(n: usize, variant: &str, threads: usize, median_s: f64, peak: &MachinePeak) -> Row {
    let flops = gemm_cost(1, n, n, n, 4).flops;
    let gflops = flops / median_s / 1e9;
    Row {
        kernel: "gemm f32".into(),
        shape: format!("{n}x{n}x{n}"),
        variant: variant.into(),
        threads,
        median_s,
        gflops: Some(gflops),
        gbps: None,
        peak_share: gflops / peak.gflops_for(threads),
        baseline_ratio: None,
    }
}

/// Speed-ups over `baseline` for the rows of one problem.
fn set_baseline(rows: &mut [Measured], baseline: &str) {
    if let Some(base) = rows.iter().find(|r| r.row.variant == baseline) {
        let base_s = base.row.median_s;
        for r in rows.iter_mut() {
            r.row.baseline_ratio = Some(base_s / r.row.median_s);
        }
    }
}

/// Every variant on every size: checked against the reference twin
/// (`reference::gemm` on the same inputs), then timed.
pub fn sweep_gemm(
    sizes: &[usize],
    variants: &[GemmVariant],
    plan: &Plan,
    peak: &MachinePeak,
    threads: usize,
    emit: &mut dyn FnMut(Measured),
) {
    for &n in sizes {
        let a = random(n * n, 1);
        let b = random(n * n, 2);
        let rows_checked = check_rows(n);
        // The reference twin on the checked rows of a (all rows, or 16).
        let a_rows: Vec<f32> = rows_checked
            .iter()
            .flat_map(|&i| a[i * n..(i + 1) * n].iter().copied())
            .collect();
        let mut expected = vec![0f32; rows_checked.len() * n];
        reference::gemm(
            rows_checked.len(),
            n,
            n,
            1.0,
            &a_rows,
            n,
            1,
            &b,
            n,
            1,
            0.0,
            &mut expected,
            n,
            1,
        );
        let against = if rows_checked.len() == n {
            "reference, every entry".to_string()
        } else {
            format!("reference, {} of {n} rows", rows_checked.len())
        };
        let mut c = vec![0f32; n * n];
        let mut rows = Vec::new();
        for v in variants {
            if v.max_macs.is_some_and(|max| n * n * n > max) {
                continue;
            }
            // NaN shows any entry a variant leaves unwritten.
            c.fill(f32::NAN);
            (v.run)(n, n, n, &a, &b, &mut c);
            let got: Vec<f32> = rows_checked
                .iter()
                .flat_map(|&i| c[i * n..(i + 1) * n].iter().copied())
                .collect();
            let check = Check::compare(&got, &expected, tolerance(n), &against);
            let timing = plan.measure(|| (v.run)(n, n, n, &a, &b, &mut c));
            let mut m = Measured::new(
                gemm_row(n, &v.name, threads, timing.median_s, peak),
                Some(timing),
            );
            m.size = Some(n as f64);
            m.intensity = gemm_cost(1, n, n, n, 4).intensity();
            m.check = Some(check);
            rows.push(m);
        }
        set_baseline(&mut rows, "matrixmultiply (1 thread)");
        rank(&mut rows);
        rows.into_iter().for_each(&mut *emit);
    }
}

/// Which pass of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    BackwardData,
    BackwardWeight,
}

impl ConvPass {
    pub const ALL: [ConvPass; 3] = [
        ConvPass::Forward,
        ConvPass::BackwardData,
        ConvPass::BackwardWeight,
    ];

    fn name(self) -> &'static str {
        match self {
            ConvPass::Forward => "conv2d forward",
            ConvPass::BackwardData => "conv2d backward_data",
            ConvPass::BackwardWeight => "conv2d backward_weight",
        }
    }
}

/// The operands of one convolution problem.
struct ConvOperands {
    x: Vec<f32>,
    w: Vec<f32>,
    dy: Vec<f32>,
}

/// Runs `pass` of `s` with the fast kernels (`fast`) or the reference
/// loops, writing its result into `out`.
fn run_conv(s: &Conv2dShape, pass: ConvPass, fast: bool, o: &ConvOperands, out: &mut [f32]) {
    match (pass, fast) {
        (ConvPass::Forward, true) => gradlab_cpu::conv2d_forward(s, &o.x, &o.w, None, out),
        (ConvPass::Forward, false) => reference::conv2d_forward(s, &o.x, &o.w, None, out),
        (ConvPass::BackwardData, true) => gradlab_cpu::conv2d_backward_data(s, &o.dy, &o.w, out),
        (ConvPass::BackwardData, false) => reference::conv2d_backward_data(s, &o.dy, &o.w, out),
        (ConvPass::BackwardWeight, true) => {
            gradlab_cpu::conv2d_backward_weight(s, &o.x, &o.dy, out)
        }
        (ConvPass::BackwardWeight, false) => reference::conv2d_backward_weight(s, &o.x, &o.dy, out),
    }
}

/// LeNet's two convolutions, forward and both gradients, over `batches`:
/// the fast kernels (detected and forced SIMD levels) checked against the
/// reference loops on the same inputs, then all timed.
pub fn sweep_conv(
    batches: &[usize],
    plan: &Plan,
    peak: &MachinePeak,
    threads: usize,
    emit: &mut dyn FnMut(Measured),
) {
    let shapes = [
        (
            "lenet conv1 3->6 32x32 k5",
            Conv2dShape::square(1, 3, 6, 32, 5, 0),
        ),
        (
            "lenet conv2 6->16 14x14 k5",
            Conv2dShape::square(1, 6, 16, 14, 5, 0),
        ),
    ];
    let mut levels = vec![None];
    levels.extend(forced_levels().into_iter().map(Some));
    for (name, base) in shapes {
        for &batch in batches {
            let s = Conv2dShape { batch, ..base };
            let o = ConvOperands {
                x: random(s.input_len(), 3),
                w: random(s.weight_len(), 4),
                dy: random(s.output_len(), 6),
            };
            for pass in ConvPass::ALL {
                let (len, reduction, cost) = match pass {
                    ConvPass::Forward => (
                        s.output_len(),
                        s.in_per_group() * s.kernel_h * s.kernel_w,
                        s.forward_cost(4, false),
                    ),
                    ConvPass::BackwardData => (
                        s.input_len(),
                        s.out_per_group() * s.kernel_h * s.kernel_w,
                        s.backward_data_cost(4),
                    ),
                    ConvPass::BackwardWeight => (
                        s.weight_len(),
                        batch * s.out_h() * s.out_w(),
                        s.backward_weight_cost(4),
                    ),
                };
                let mut expected = vec![0f32; len];
                run_conv(&s, pass, false, &o, &mut expected);
                let mut out = vec![0f32; len];
                let shape = format!("{name} batch {batch}");
                let mut rows = Vec::new();
                let mut record = |variant: String, check: Check, timing: Timing| {
                    let gflops = cost.flops / timing.median_s / 1e9;
                    let mut m = Measured::new(
                        Row {
                            kernel: pass.name().into(),
                            shape: shape.clone(),
                            variant,
                            threads,
                            median_s: timing.median_s,
                            gflops: Some(gflops),
                            gbps: None,
                            peak_share: gflops / peak.gflops_for(threads),
                            baseline_ratio: None,
                        },
                        Some(timing),
                    );
                    m.size = Some(batch as f64);
                    m.intensity = cost.intensity();
                    m.check = Some(check);
                    rows.push(m);
                };
                let against = "reference, every entry";
                let t = plan.measure(|| run_conv(&s, pass, false, &o, &mut out));
                record(
                    "reference".into(),
                    Check::compare(&expected, &expected, tolerance(reduction), against),
                    t,
                );
                for level in &levels {
                    let run = |out: &mut [f32]| match level {
                        None => run_conv(&s, pass, true, &o, out),
                        Some(l) => {
                            gradlab_cpu::with_simd_level(*l, || run_conv(&s, pass, true, &o, out))
                        }
                    };
                    out.fill(f32::NAN);
                    run(&mut out);
                    let check = Check::compare(&out, &expected, tolerance(reduction), against);
                    let t = plan.measure(|| run(&mut out));
                    let level = level.unwrap_or_else(gradlab_cpu::simd_level);
                    record(format!("fast ({level})"), check, t);
                }
                set_baseline(&mut rows, "reference");
                rank(&mut rows);
                rows.into_iter().for_each(&mut *emit);
            }
        }
    }
}

//! The benchmark cases: every shape with every variant side by side.

use super::peak::MachinePeak;
use super::report::Row;
use super::timing::Plan;
use gradlab_cpu::conv::{Method, Pass};
use gradlab_cpu::{
    reference, with_conv_algo, Conv2dShape, ConvAlgo, Pool2dShape, Rng, SimdKind, SimdLevel,
};

/// Reference GEMMs above this many multiply-adds take too long to time.
const REFERENCE_GEMM_MAX_MACS: usize = 1 << 25;
/// Reference convolutions above this many FLOPs are timed once (or skipped with --quick).
const REFERENCE_CONV_MAX_FLOPS: f64 = 5e8;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

/// What the compute-bound rows of one kernel and shape share.
struct ComputeCase<'a> {
    kernel: &'a str,
    shape: &'a str,
    threads: usize,
    flops: f64,
    peak: &'a MachinePeak,
    /// The baseline variant's median, when it was timed.
    baseline_s: Option<f64>,
}

impl ComputeCase<'_> {
    /// The row of `variant`, which took `median_s`.
    fn row(&self, variant: &str, median_s: f64) -> Row {
        let gflops = self.flops / median_s / 1e9;
        Row {
            kernel: self.kernel.into(),
            shape: self.shape.into(),
            variant: variant.into(),
            threads: self.threads,
            median_s,
            gflops: Some(gflops),
            gbps: None,
            peak_share: gflops / self.peak.gflops_for(self.threads),
            baseline_ratio: self.baseline_s.map(|b| b / median_s),
        }
    }
}

/// Forced SIMD levels worth showing next to the automatic choice.
fn forced_levels() -> Vec<SimdLevel> {
    SimdLevel::supported()
        .into_iter()
        .filter(|&l| l.kind() != SimdKind::Scalar && l < gradlab_cpu::detected_simd_level())
        .collect()
}

pub fn gemm(plan: &Plan, peak: &MachinePeak, threads: usize, emit: &mut dyn FnMut(Row)) {
    let squares: &[usize] = if plan.quick {
        &[256, 1024]
    } else {
        &[64, 128, 256, 512, 1024, 2048]
    };
    let mut shapes: Vec<(String, usize, usize, usize)> = squares
        .iter()
        .map(|&s| (format!("{s}x{s}x{s}"), s, s, s))
        .collect();
    // LeNet at batch 64, as the GEMMs its layers run (conv as W · im2col).
    for (name, m, k, n) in [
        ("lenet conv1 6x75x50176", 6, 75, 64 * 784),
        ("lenet conv2 16x150x6400", 16, 150, 64 * 100),
        ("lenet fc1 64x400x120", 64, 400, 120),
        ("lenet fc2 64x120x84", 64, 120, 84),
        ("lenet fc3 64x84x10", 64, 84, 10),
    ] {
        shapes.push((name.into(), m, k, n));
    }
    for (shape, m, k, n) in shapes {
        let a = random(m * k, 1);
        let b = random(k * n, 2);
        let mut c = vec![0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let base = plan.median_s(|| super::baseline_sgemm(m, k, n, &a, &b, &mut c));
        let case = ComputeCase {
            kernel: "gemm f32",
            shape: &shape,
            threads,
            flops,
            peak,
            baseline_s: Some(base),
        };
        let row = |variant: &str, t: f64| case.row(variant, t);
        if m * k * n <= REFERENCE_GEMM_MAX_MACS && !(plan.quick && m * k * n > 1 << 22) {
            let t = plan
                .median_s(|| reference::gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1));
            emit(row("reference", t));
        }
        // The workspace builds matrixmultiply without its `threading` feature.
        emit(row("matrixmultiply (1 thread)", base));
        let t = plan.median_s(|| super::gemm_crate_sgemm(m, k, n, &a, &b, &mut c, threads));
        emit(row(&format!("gemm crate ({threads} thr)"), t));
        let t = plan
            .median_s(|| gradlab_cpu::gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1));
        emit(row(&format!("fast ({})", gradlab_cpu::simd_level()), t));
        for level in forced_levels() {
            let t = plan.median_s(|| {
                gradlab_cpu::with_simd_level(level, || {
                    gradlab_cpu::gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1)
                })
            });
            emit(row(&format!("fast ({level})"), t));
        }
    }
}

/// The convolution shapes of the table: LeNet's two layers, a 3x3
/// 64->64 layer and the convnet's second and third layers, at batch 64.
pub fn conv_shapes() -> [(&'static str, Conv2dShape); 5] {
    [
        (
            "lenet conv1 64x3x32x32 k5",
            Conv2dShape::square(64, 3, 6, 32, 5, 0),
        ),
        (
            "lenet conv2 64x6x14x14 k5",
            Conv2dShape::square(64, 6, 16, 14, 5, 0),
        ),
        (
            "64x64x32x32 k3 p1",
            Conv2dShape::square(64, 64, 64, 32, 3, 1),
        ),
        (
            "convnet conv2 64x64x16x16 k3 p1",
            Conv2dShape::square(64, 64, 128, 16, 3, 1),
        ),
        (
            "convnet conv3 64x128x8x8 k3 p1",
            Conv2dShape::square(64, 128, 256, 8, 3, 1),
        ),
    ]
}

/// The variants of one convolution pass to time: every method that applies
/// (direct, im2col, each Winograd tile) and `auto`, or only `only`.
fn conv_variants(pass: Pass, s: &Conv2dShape, only: Option<ConvAlgo>) -> Vec<ConvAlgo> {
    let mut algos: Vec<ConvAlgo> = gradlab_cpu::conv::methods::<f32>(pass, s)
        .into_iter()
        .map(Method::algo)
        .collect();
    algos.sort_by_key(|a| ConvAlgo::ALL.iter().position(|b| b == a));
    algos.insert(0, ConvAlgo::Auto);
    match only {
        Some(ConvAlgo::Winograd) => vec![ConvAlgo::Winograd],
        Some(algo) => vec![algo],
        None => algos,
    }
}

/// The row label of `algo` for `pass` of `s` (after it ran: `auto` names its pick).
fn conv_label(algo: ConvAlgo, pass: Pass, s: &Conv2dShape) -> String {
    let level = gradlab_cpu::simd_level();
    let method = match algo {
        ConvAlgo::Auto => gradlab_cpu::conv::auto_picks()
            .into_iter()
            .find(|p| {
                p.class.pass == pass
                    && p.class.shape == *s
                    && p.class.dtype == "f32"
                    && p.class.simd == level.kind()
                    && p.class.threads == rayon::current_num_threads()
            })
            .map_or_else(
                || gradlab_cpu::conv::methods::<f32>(pass, s)[0].to_string(),
                |p| p.method.to_string(),
            ),
        ConvAlgo::Winograd => {
            Method::Winograd(gradlab_cpu::conv::algo::winograd_tile_for(s)).to_string()
        }
        other => Method::algo_method(other).map_or_else(|| other.to_string(), |m| m.to_string()),
    };
    match algo {
        ConvAlgo::Auto => format!("auto={method} ({level})"),
        _ => format!("{method} ({level})"),
    }
}

pub fn conv2d(
    plan: &Plan,
    peak: &MachinePeak,
    threads: usize,
    only: Option<ConvAlgo>,
    emit: &mut dyn FnMut(Row),
) {
    for (name, s) in conv_shapes() {
        let x = random(s.input_len(), 3);
        let w = random(s.weight_len(), 4);
        let bias = random(s.out_channels, 5);
        let dy = random(s.output_len(), 6);
        let mut y = vec![0f32; s.output_len()];
        let mut dx = vec![0f32; s.input_len()];
        let mut dw = vec![0f32; s.weight_len()];
        let flops = s.flops();
        let reference_timer = if flops <= REFERENCE_CONV_MAX_FLOPS {
            Some(true)
        } else if plan.quick {
            None
        } else {
            Some(false)
        };
        // The three passes' times under each setting, for the total rows.
        let mut totals: Vec<(ConvAlgo, String, f64)> = Vec::new();
        for pass in [Pass::Forward, Pass::BackwardData, Pass::BackwardWeight] {
            let mut run = |fast: bool| match (pass, fast) {
                (Pass::Forward, true) => {
                    gradlab_cpu::conv2d_forward(&s, &x, &w, Some(&bias), &mut y)
                }
                (Pass::Forward, false) => {
                    reference::conv2d_forward(&s, &x, &w, Some(&bias), &mut y)
                }
                (Pass::BackwardData, true) => {
                    gradlab_cpu::conv2d_backward_data(&s, &dy, &w, &mut dx)
                }
                (Pass::BackwardData, false) => {
                    reference::conv2d_backward_data(&s, &dy, &w, &mut dx)
                }
                (_, true) => gradlab_cpu::conv2d_backward_weight(&s, &x, &dy, &mut dw),
                (_, false) => reference::conv2d_backward_weight(&s, &x, &dy, &mut dw),
            };
            let base = match reference_timer {
                Some(true) => Some(plan.median_s(|| run(false))),
                Some(false) => Some(plan.once_s(|| run(false))),
                None => None,
            };
            let kernel = format!("conv2d {}", pass.name());
            let case = ComputeCase {
                kernel: &kernel,
                shape: name,
                threads,
                flops,
                peak,
                baseline_s: base,
            };
            if let Some(b) = base {
                emit(case.row("reference", b));
            }
            for algo in conv_variants(pass, &s, only) {
                let t = with_conv_algo(algo, || plan.median_s(|| run(true)));
                let label = conv_label(algo, pass, &s);
                emit(case.row(&label, t));
                if algo == ConvAlgo::Auto || Some(algo) == only {
                    totals.push((algo, label, t));
                }
            }
        }
        // Forward and both gradients, as a training step runs them.
        let total: f64 = totals.iter().map(|(_, _, t)| t).sum();
        if totals.len() == 3 {
            let picks: Vec<&str> = totals.iter().map(|(_, l, _)| l.as_str()).collect();
            let case = ComputeCase {
                kernel: "conv2d all 3",
                shape: name,
                threads,
                flops: 3.0 * flops,
                peak,
                baseline_s: None,
            };
            let label = picks
                .join(" + ")
                .replace(&format!(" ({})", gradlab_cpu::simd_level()), "");
            emit(case.row(&label, total));
        }
    }
}

/// LeNet's first pool, the convnet's first (the largest of a step) and its
/// last (narrow 8x8 planes).
pub fn maxpool(plan: &Plan, peak: &MachinePeak, threads: usize, emit: &mut dyn FnMut(Row)) {
    let cases = [
        ("", 6, 28),
        ("convnet pool1 ", 64, 32),
        ("convnet pool3 ", 256, 8),
    ];
    for (label, channels, side) in cases {
        let s = Pool2dShape {
            batch: 64,
            channels,
            in_h: side,
            in_w: side,
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        };
        let shape = format!("{label}64x{channels}x{side}x{side} k2 s2");
        maxpool_case(plan, peak, threads, &s, &shape, emit);
    }
}

fn maxpool_case(
    plan: &Plan,
    peak: &MachinePeak,
    threads: usize,
    s: &Pool2dShape,
    shape: &str,
    emit: &mut dyn FnMut(Row),
) {
    let x = random(s.input_len(), 7);
    let dy = random(s.output_len(), 8);
    let mut y = vec![0f32; s.output_len()];
    let mut idx = vec![0usize; s.output_len()];
    let mut dx = vec![0f32; s.input_len()];
    let f32_bytes = std::mem::size_of::<f32>();
    let index_bytes = std::mem::size_of::<usize>();
    let forward_bytes = s.input_len() * f32_bytes + s.output_len() * (f32_bytes + index_bytes);
    let backward_bytes = s.output_len() * (f32_bytes + index_bytes) + s.input_len() * f32_bytes;
    let row = |op: &str, variant: &str, t: f64, bytes: usize, base: f64| {
        let gbps = bytes as f64 / t / 1e9;
        Row {
            kernel: format!("maxpool {op}"),
            shape: shape.into(),
            variant: variant.into(),
            threads,
            median_s: t,
            gflops: None,
            gbps: Some(gbps),
            peak_share: gbps / peak.triad_gbps,
            baseline_ratio: Some(base / t),
        }
    };
    let fwd_ref = plan.median_s(|| reference::max_pool2d_forward(s, &x, &mut y, &mut idx));
    emit(row("forward", "reference", fwd_ref, forward_bytes, fwd_ref));
    let fwd = plan.median_s(|| gradlab_cpu::max_pool2d_forward(s, &x, &mut y, &mut idx));
    emit(row("forward", "fast", fwd, forward_bytes, fwd_ref));
    let bwd_ref = plan.median_s(|| reference::max_pool2d_backward(s, &dy, &idx, &mut dx));
    emit(row(
        "backward",
        "reference",
        bwd_ref,
        backward_bytes,
        bwd_ref,
    ));
    let bwd = plan.median_s(|| gradlab_cpu::max_pool2d_backward(s, &dy, &idx, &mut dx));
    emit(row("backward", "fast", bwd, backward_bytes, bwd_ref));
}

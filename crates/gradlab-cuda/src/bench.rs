//! Kernel benchmarks on the GPU: matmul variants, conv2d forward/backward,
//! max-pool and copy bandwidth. The same driver serves the `cuda_bench`
//! example, `scripts/gpu-check.sh` and `gradlab bench --device cuda`.

use crate::device::Gpu;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;
use crate::ops::conv::{conv2d_backward_data, conv2d_backward_weight, conv2d_forward};
use crate::ops::matmul::{gemm, GemmProblem, MatmulVariant};
use crate::ops::pool::{max_pool2d_backward, max_pool2d_forward};
use cudarc::driver::sys::CUevent_flags;
use gradlab_cpu::{Conv2dShape, Pool2dShape, Rng};
use std::sync::Arc;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Square matmul sizes (m = n = k).
    pub matmul_sizes: Vec<usize>,
    pub matmul_variants: Vec<MatmulVariant>,
    /// Batch of the conv and pool cases.
    pub batch: usize,
    /// Keep repeating a case until about this much GPU time has passed.
    pub min_time_ms: f64,
    pub max_reps: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            matmul_sizes: vec![1024, 2048, 4096],
            matmul_variants: MatmulVariant::ALL.to_vec(),
            batch: 256,
            min_time_ms: 60.0,
            max_reps: 200,
        }
    }
}

/// One measured case.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// `matmul`, `conv2d`, `max_pool2d` or `copy`.
    pub group: &'static str,
    /// The problem, e.g. `4096` or `lenet_conv1`.
    pub case: String,
    /// The kernel or pass, e.g. `warp_tiled` or `backward_weight`.
    pub variant: String,
    /// Mean GPU time of one run.
    pub ms: f64,
    pub gflops: Option<f64>,
    /// Bytes moved (read + written, counted once) per second.
    pub gbps: Option<f64>,
}

/// The conv problems of the benchmark, by name.
pub fn bench_conv_shapes(batch: usize) -> Vec<(&'static str, Conv2dShape)> {
    let conv = |ic, hw, oc, k, pad| Conv2dShape {
        batch,
        in_channels: ic,
        in_h: hw,
        in_w: hw,
        out_channels: oc,
        kernel_h: k,
        kernel_w: k,
        stride: (1, 1),
        padding: (pad, pad),
        dilation: (1, 1),
        groups: 1,
    };
    vec![
        ("lenet_conv1", conv(3, 32, 6, 5, 0)),
        ("lenet_conv2", conv(6, 14, 16, 5, 0)),
        ("conv3x3_64", conv(64, 32, 64, 3, 1)),
    ]
}

/// The pooling problem of the benchmark.
pub fn bench_pool_shape(batch: usize) -> Pool2dShape {
    Pool2dShape {
        batch,
        channels: 64,
        in_h: 32,
        in_w: 32,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    }
}

fn random_buffer(gpu: &Arc<Gpu>, rng: &mut Rng, len: usize) -> Result<DeviceBuffer<f32>> {
    let host: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    DeviceBuffer::from_host(gpu, &host)
}

/// Mean milliseconds of `run`, timed with CUDA events after one warm-up.
fn time_ms(gpu: &Gpu, opts: &BenchOptions, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    let ctx = gpu.context()?;
    let stream = gpu.stream()?;
    let event = || {
        ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(CudaError::driver("create event"))
    };
    let (start, end) = (event()?, event()?);
    let span = |reps: usize, run: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        start
            .record(stream)
            .map_err(CudaError::driver("record event"))?;
        for _ in 0..reps {
            run()?;
        }
        end.record(stream)
            .map_err(CudaError::driver("record event"))?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(CudaError::driver("event timing"))?;
        Ok(ms as f64 / reps as f64)
    };
    run()?;
    gpu.synchronize()?;
    let estimate = span(1, &mut run)?;
    let reps = ((opts.min_time_ms / estimate.max(1e-3)).ceil() as usize).clamp(1, opts.max_reps);
    if reps == 1 {
        return Ok(estimate);
    }
    span(reps, &mut run)
}

fn bench_matmul(gpu: &Arc<Gpu>, opts: &BenchOptions, rng: &mut Rng) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for &size in &opts.matmul_sizes {
        let a = random_buffer(gpu, rng, size * size)?;
        let b = random_buffer(gpu, rng, size * size)?;
        let mut c = DeviceBuffer::<f32>::zeros(gpu, size * size)?;
        let p = GemmProblem::new(size, size, size, false, false);
        for &variant in &opts.matmul_variants {
            let ms = time_ms(gpu, opts, || gemm(variant, &p, &a, &b, &mut c))?;
            rows.push(BenchRow {
                group: "matmul",
                case: size.to_string(),
                variant: variant.name().to_string(),
                ms,
                gflops: Some(p.flops() / ms / 1e6),
                gbps: None,
            });
        }
    }
    Ok(rows)
}

fn bench_conv(gpu: &Arc<Gpu>, opts: &BenchOptions, rng: &mut Rng) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for (name, s) in bench_conv_shapes(opts.batch) {
        let x = random_buffer(gpu, rng, s.input_len())?;
        let w = random_buffer(gpu, rng, s.weight_len())?;
        let bias = random_buffer(gpu, rng, s.out_channels)?;
        let dy = random_buffer(gpu, rng, s.output_len())?;
        let mut y = DeviceBuffer::<f32>::zeros(gpu, s.output_len())?;
        let mut dx = DeviceBuffer::<f32>::zeros(gpu, s.input_len())?;
        let mut dw = DeviceBuffer::<f32>::zeros(gpu, s.weight_len())?;
        let fwd = time_ms(gpu, opts, || {
            conv2d_forward(&s, &x, &w, Some(&bias), &mut y)
        })?;
        let bwd_data = time_ms(gpu, opts, || conv2d_backward_data(&s, &dy, &w, &mut dx))?;
        let bwd_weight = time_ms(gpu, opts, || conv2d_backward_weight(&s, &x, &dy, &mut dw))?;
        let flops = s.flops();
        for (pass, ms, f) in [
            ("forward", fwd, flops),
            ("backward_data", bwd_data, flops),
            ("backward_weight", bwd_weight, flops),
            ("fwd+bwd", fwd + bwd_data + bwd_weight, 3.0 * flops),
        ] {
            rows.push(BenchRow {
                group: "conv2d",
                case: name.to_string(),
                variant: pass.to_string(),
                ms,
                gflops: Some(f / ms / 1e6),
                gbps: None,
            });
        }
    }
    Ok(rows)
}

fn bench_pool(gpu: &Arc<Gpu>, opts: &BenchOptions, rng: &mut Rng) -> Result<Vec<BenchRow>> {
    let s = bench_pool_shape(opts.batch);
    let x = random_buffer(gpu, rng, s.input_len())?;
    let dy = random_buffer(gpu, rng, s.output_len())?;
    let mut y = DeviceBuffer::<f32>::zeros(gpu, s.output_len())?;
    let mut argmax = DeviceBuffer::<i64>::zeros(gpu, s.output_len())?;
    let mut dx = DeviceBuffer::<f32>::zeros(gpu, s.input_len())?;
    let fwd = time_ms(gpu, opts, || {
        max_pool2d_forward(&s, &x, &mut y, &mut argmax)
    })?;
    let bwd = time_ms(gpu, opts, || max_pool2d_backward(&s, &dy, &argmax, &mut dx))?;
    let mut copy_dst = DeviceBuffer::<f32>::zeros(gpu, s.input_len())?;
    let copy = time_ms(gpu, opts, || copy_dst.copy_from(&x))?;
    let (input, output) = (4.0 * s.input_len() as f64, 4.0 * s.output_len() as f64);
    let case = format!("{}x{}x{}x{} k2s2", s.batch, s.channels, s.in_h, s.in_w);
    let row = |group, variant: &str, ms: f64, bytes: f64| BenchRow {
        group,
        case: case.clone(),
        variant: variant.to_string(),
        ms,
        gflops: None,
        gbps: Some(bytes / ms / 1e6),
    };
    Ok(vec![
        // forward reads x, writes y and the i64 argmax; backward reads dy and argmax
        // (each about once per input element's window) and writes dx.
        row("max_pool2d", "forward", fwd, input + 3.0 * output),
        row("max_pool2d", "backward", bwd, 3.0 * output + input),
        row("copy", "device_to_device", copy, 2.0 * input),
    ])
}

/// Runs every benchmark case on `gpu` and returns one row per measurement.
/// Kernels are compiled before timing starts.
pub fn run_cuda_bench(gpu: &Arc<Gpu>, opts: &BenchOptions) -> Result<Vec<BenchRow>> {
    gpu.load_all_kernels()?;
    let mut rng = Rng::new(0x5EED);
    let mut rows = bench_matmul(gpu, opts, &mut rng)?;
    rows.extend(bench_conv(gpu, opts, &mut rng)?);
    rows.extend(bench_pool(gpu, opts, &mut rng)?);
    gpu.synchronize()?;
    Ok(rows)
}

/// A fixed-width table for people.
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<11} {:<22} {:<18} {:>10} {:>10} {:>9}\n",
        "group", "case", "variant", "ms", "GFLOP/s", "GB/s"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for r in rows {
        out.push_str(&format!(
            "{:<11} {:<22} {:<18} {:>10.4} {:>10} {:>9}\n",
            r.group,
            r.case,
            r.variant,
            r.ms,
            opt(r.gflops),
            opt(r.gbps)
        ));
    }
    out
}

/// Tab-separated rows with a header, for scripts.
pub fn format_tsv(rows: &[BenchRow]) -> String {
    let mut out = String::from("group\tcase\tvariant\tms\tgflops\tgbps\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    for r in rows {
        out.push_str(&format!(
            "{}\t{}\t{}\t{:.6}\t{}\t{}\n",
            r.group,
            r.case,
            r.variant,
            r.ms,
            opt(r.gflops),
            opt(r.gbps)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_one_line_per_row() {
        let rows = vec![BenchRow {
            group: "matmul",
            case: "1024".into(),
            variant: "naive".into(),
            ms: 2.0,
            gflops: Some(1073.7),
            gbps: None,
        }];
        let tsv = format_tsv(&rows);
        assert_eq!(tsv.lines().count(), 2);
        assert_eq!(
            tsv.lines().nth(1).unwrap(),
            "matmul\t1024\tnaive\t2.000000\t1073.700\t"
        );
        assert!(format_table(&rows).contains("1073.7"));
        let shapes = bench_conv_shapes(256);
        assert_eq!(shapes[0].1.out_h(), 28);
        assert_eq!(shapes[1].1.out_h(), 10);
        assert_eq!(shapes[2].1.out_h(), 32);
    }
}

//! Criterion benchmarks of the CPU kernels, every variant side by side:
//! the reference twin, the fast kernel and (for GEMM) matrixmultiply.
//! Sample counts are small so that `cargo bench --bench kernels` stays short;
//! `gradlab bench` prints the same comparison as one table with peak shares.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gradlab::cpu::{self, reference, Conv2dShape, Pool2dShape, Rng};
use std::time::Duration;

/// Reference kernels above this many multiply-adds are too slow to sample.
const REFERENCE_MAX_MACS: usize = 1 << 24;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    group
}

fn gemm(c: &mut Criterion) {
    let mut group = configure(c, "gemm_f32");
    let mut shapes: Vec<(String, usize, usize, usize)> = [64, 128, 256, 512, 1024, 2048]
        .iter()
        .map(|&s| (format!("{s}"), s, s, s))
        .collect();
    shapes.extend([
        ("lenet_conv1_6x75x50176".to_string(), 6, 75, 64 * 784),
        ("lenet_conv2_16x150x6400".to_string(), 16, 150, 64 * 100),
        ("lenet_fc1_64x400x120".to_string(), 64, 400, 120),
    ]);
    for (name, m, k, n) in shapes {
        let a = random(m * k, 1);
        let b = random(k * n, 2);
        let mut out = vec![0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        if m * k * n <= REFERENCE_MAX_MACS {
            group.bench_function(BenchmarkId::new("reference", &name), |bench| {
                bench
                    .iter(|| reference::gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut out, n, 1))
            });
        }
        group.bench_function(BenchmarkId::new("fast", &name), |bench| {
            bench.iter(|| cpu::gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut out, n, 1))
        });
        group.bench_function(BenchmarkId::new("matrixmultiply", &name), |bench| {
            bench.iter(|| gradlab::bench::baseline_sgemm(m, k, n, &a, &b, &mut out))
        });
    }
    group.finish();
}

fn conv2d(c: &mut Criterion) {
    let mut group = configure(c, "conv2d_f32");
    for (name, s) in [
        ("lenet_conv1", Conv2dShape::square(64, 3, 6, 32, 5, 0)),
        ("lenet_conv2", Conv2dShape::square(64, 6, 16, 14, 5, 0)),
        ("3x3_64x64_32x32", Conv2dShape::square(64, 64, 64, 32, 3, 1)),
    ] {
        let x = random(s.input_len(), 3);
        let w = random(s.weight_len(), 4);
        let bias = random(s.out_channels, 5);
        let dy = random(s.output_len(), 6);
        let mut y = vec![0f32; s.output_len()];
        let mut dx = vec![0f32; s.input_len()];
        let mut dw = vec![0f32; s.weight_len()];
        group.throughput(Throughput::Elements(s.flops() as u64));
        let with_reference = s.flops() / 2.0 <= REFERENCE_MAX_MACS as f64 * 4.0;
        if with_reference {
            group.bench_function(BenchmarkId::new("forward/reference", name), |b| {
                b.iter(|| reference::conv2d_forward(&s, &x, &w, Some(&bias), &mut y))
            });
            group.bench_function(BenchmarkId::new("backward_data/reference", name), |b| {
                b.iter(|| reference::conv2d_backward_data(&s, &dy, &w, &mut dx))
            });
            group.bench_function(BenchmarkId::new("backward_weight/reference", name), |b| {
                b.iter(|| reference::conv2d_backward_weight(&s, &x, &dy, &mut dw))
            });
        }
        group.bench_function(BenchmarkId::new("forward/fast", name), |b| {
            b.iter(|| cpu::conv2d_forward(&s, &x, &w, Some(&bias), &mut y))
        });
        group.bench_function(BenchmarkId::new("backward_data/fast", name), |b| {
            b.iter(|| cpu::conv2d_backward_data(&s, &dy, &w, &mut dx))
        });
        group.bench_function(BenchmarkId::new("backward_weight/fast", name), |b| {
            b.iter(|| cpu::conv2d_backward_weight(&s, &x, &dy, &mut dw))
        });
    }
    group.finish();
}

fn maxpool(c: &mut Criterion) {
    let mut group = configure(c, "maxpool_f32");
    let s = Pool2dShape {
        batch: 64,
        channels: 6,
        in_h: 28,
        in_w: 28,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let x = random(s.input_len(), 7);
    let dy = random(s.output_len(), 8);
    let mut y = vec![0f32; s.output_len()];
    let mut idx = vec![0usize; s.output_len()];
    let mut dx = vec![0f32; s.input_len()];
    group.throughput(Throughput::Bytes(
        (s.input_len() * 4 + s.output_len() * 12) as u64,
    ));
    group.bench_function("forward/reference", |b| {
        b.iter(|| reference::max_pool2d_forward(&s, &x, &mut y, &mut idx))
    });
    group.bench_function("forward/fast", |b| {
        b.iter(|| cpu::max_pool2d_forward(&s, &x, &mut y, &mut idx))
    });
    group.bench_function("backward/reference", |b| {
        b.iter(|| reference::max_pool2d_backward(&s, &dy, &idx, &mut dx))
    });
    group.bench_function("backward/fast", |b| {
        b.iter(|| cpu::max_pool2d_backward(&s, &dy, &idx, &mut dx))
    });
    group.finish();
}

criterion_group!(benches, gemm, conv2d, maxpool);
criterion_main!(benches);

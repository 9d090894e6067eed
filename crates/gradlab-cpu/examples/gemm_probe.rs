//! Quick GEMM throughput probe: `cargo run --release --example gemm_probe -p gradlab-cpu -- [threads] [sizes...]`.

use gradlab_cpu::{gemm, with_simd_level, SimdLevel};
use std::time::Instant;

/// On-CPU nanoseconds of this thread (immune to time spent descheduled on a busy machine).
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Best time of `f`: on-CPU time when single-threaded (GRADLAB_CPU_TIME=1), else wall time.
fn time<F: FnMut()>(mut f: F) -> f64 {
    f();
    let mut best = f64::INFINITY;
    let start = Instant::now();
    if std::env::var_os("GRADLAB_CPU_TIME").is_some() {
        let once = Instant::now();
        f();
        let reps = (0.03 / once.elapsed().as_secs_f64()).ceil().max(1.0) as usize;
        while start.elapsed().as_secs_f64() < 1.5 {
            let t = cpu_ns().unwrap();
            for _ in 0..reps {
                f();
            }
            best = best.min((cpu_ns().unwrap() - t) as f64 * 1e-9 / reps as f64);
        }
        return best;
    }
    while start.elapsed().as_secs_f64() < 0.3 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let threads = args.first().copied().unwrap_or(1);
    let sizes: Vec<(usize, usize, usize)> = if args.len() > 1 {
        args[1..].chunks(3).map(|c| (c[0], c[1], c[2])).collect()
    } else {
        [64, 128, 256, 512, 1024, 2048]
            .iter()
            .map(|&s| (s, s, s))
            .collect()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        for (m, k, n) in sizes {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
            let mut c = vec![0f32; m * n];
            let flops = 2.0 * (m * k * n) as f64;
            let mut line = format!("{m}x{k}x{n} t={threads}:");
            for level in SimdLevel::supported() {
                if level == SimdLevel::Scalar && m > 512 {
                    continue;
                }
                let t = time(|| {
                    with_simd_level(level, || {
                        gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1)
                    })
                    .unwrap()
                });
                line += &format!(" {level} {:.1}", flops / t / 1e9);
            }
            let t = time(|| unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            });
            line += &format!(" mm {:.1} GFLOP/s", flops / t / 1e9);
            println!("{line}");
        }
    });
}

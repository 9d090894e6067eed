//! Quick conv timing: `cargo run --release -p gradlab-cpu --example conv_probe -- [threads]`.

use gradlab_cpu::Conv2dShape;
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
    while start.elapsed().as_secs_f64() < 0.4 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn shape(ic: usize, oc: usize, side: usize, k: usize, pad: usize) -> Conv2dShape {
    Conv2dShape {
        batch: 64,
        in_channels: ic,
        in_h: side,
        in_w: side,
        out_channels: oc,
        kernel_h: k,
        kernel_w: k,
        stride: (1, 1),
        padding: (pad, pad),
        dilation: (1, 1),
        groups: 1,
    }
}

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |a| a.parse().unwrap());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        for (name, s) in [("conv1", shape(3, 6, 32, 5, 0)), ("conv2", shape(6, 16, 14, 5, 0)), ("3x3x64", shape(64, 64, 32, 3, 1))] {
            let x = vec![0.5f32; s.input_len()];
            let w = vec![0.25f32; s.weight_len()];
            let b = vec![0.1f32; s.out_channels];
            let mut y = vec![0f32; s.output_len()];
            let mut dx = vec![0f32; s.input_len()];
            let mut dw = vec![0f32; s.weight_len()];
            let f = time(|| gradlab_cpu::conv2d_forward(&s, &x, &w, Some(&b), &mut y));
            let bd = time(|| gradlab_cpu::conv2d_backward_data(&s, &y, &w, &mut dx));
            let bw = time(|| gradlab_cpu::conv2d_backward_weight(&s, &x, &y, &mut dw));
            let gf = s.flops() / 1e9;
            println!("{name} t={threads}: fwd {:.3} ms ({:.0} GF/s) bwd_data {:.3} ms ({:.0}) bwd_weight {:.3} ms ({:.0})",
                f * 1e3, gf / f, bd * 1e3, gf / bd, bw * 1e3, gf / bw);
        }
    });
}

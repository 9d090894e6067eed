//! `cargo bench --bench profile_overhead -- [--model lenet|convnet] [--batch N] [--rounds N] [--threads N]`:
//! what the profiler costs. Each round runs one training step of the
//! trainer's model three ways, in rotating order: without the profiler,
//! profiled for time, costs and memory (`ProfileOptions::timing_only`),
//! and profiled with inspection (activation statistics, NaN checks). The
//! medians and the ratios to the unprofiled step are printed with the
//! machine they were measured on, in wall time and in the CPU time of the
//! process: on a machine shared with other work the scheduler's cuts blur
//! wall times, while CPU time counts only what this process ran.

use clap::Parser;
use gradlab::autograd::profile::{profile_with, ProfileOptions};
use gradlab::autograd::Var;
use gradlab::introspect::{named_model, random_batch};
use gradlab::nn::optim::{Optimizer, Sgd};
use gradlab::nn::{Module, Sequential};
use gradlab::tensor::optim::SgdConfig;
use gradlab::tensor::{Rng, Tensor};
use gradlab::train::ModelKind;
use std::time::Instant;

#[derive(Parser)]
struct Cli {
    #[arg(long, value_enum, default_value = "lenet")]
    model: ModelKind,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    #[arg(long)]
    threads: Option<usize>,
    /// Run only this mode (0 off, 1 timing, 2 inspect), for `perf stat`.
    #[arg(long)]
    only: Option<usize>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn step(model: &Sequential, optimizer: &mut Sgd, x: &Var, target: &Tensor) {
    model.zero_grad();
    let logits = model.forward(x).expect("forward");
    let loss = gradlab::nn::cross_entropy(&logits, target).expect("loss");
    loss.backward().expect("backward");
    optimizer.step().expect("update");
}

/// As the `gradlab` binary does at start: large activations stay in the
/// heap instead of being mapped (and their pages faulted in) every step,
/// which would otherwise dominate, and blur, the comparison.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_in_the_heap() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only tunes glibc's allocator; it runs before any
    // other thread exists, with values inside glibc's documented limits.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 512 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_in_the_heap() {}

/// CPU seconds this process (all its threads) has run so far.
#[cfg(target_os = "linux")]
fn process_cpu_seconds() -> f64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec (two 64-bit fields on
    // 64-bit Linux) through a pointer to a live one.
    let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
fn process_cpu_seconds() -> f64 {
    f64::NAN
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    keep_large_allocations_in_the_heap();
    let cli = Cli::parse();
    let threads = cli.threads.unwrap_or_else(gradlab::threads::cores);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    pool.install(|| {
        let mut rng = Rng::new(0);
        let model = named_model(cli.model, &mut rng).expect("model");
        let mut optimizer = Sgd::new(model.parameters(), SgdConfig::new(0.01).with_momentum(0.9))
            .expect("optimizer");
        let (x, target) = random_batch(cli.batch, &mut rng);
        for _ in 0..3 {
            step(&model, &mut optimizer, &x, &target);
        }
        let modes = ["off", "timing", "inspect"];
        let mut times: [Vec<f64>; 3] = Default::default();
        let mut cpu_times: [Vec<f64>; 3] = Default::default();
        for round in 0..cli.rounds {
            for k in 0..3 {
                let mode = cli.only.unwrap_or((round + k) % 3);
                let cpu_started = process_cpu_seconds();
                let started = Instant::now();
                match mode {
                    0 => step(&model, &mut optimizer, &x, &target),
                    1 => {
                        profile_with(ProfileOptions::timing_only(), || {
                            step(&model, &mut optimizer, &x, &target)
                        });
                    }
                    _ => {
                        profile_with(ProfileOptions::default().inspecting(), || {
                            step(&model, &mut optimizer, &x, &target)
                        });
                    }
                }
                times[mode].push(started.elapsed().as_secs_f64());
                cpu_times[mode].push(process_cpu_seconds() - cpu_started);
            }
        }
        println!(
            "profiler overhead: {:?} at batch {}, {threads} threads, {} rounds (each mode once per round, rotating)",
            cli.model, cli.batch, cli.rounds
        );
        println!("machine: {}", gradlab::bench::cpu_model());
        let off = (!times[0].is_empty()).then(|| (median(times[0].clone()), median(cpu_times[0].clone())));
        for (mode, (t, cpu)) in modes.iter().zip(times.iter().zip(&cpu_times)) {
            if t.is_empty() {
                continue;
            }
            let (wall, cpu) = (median(t.clone()), median(cpu.clone()));
            let against = off.map_or(String::new(), |(off_wall, off_cpu)| {
                format!(
                    " ({:+.1}% and {:+.1}% against off)",
                    100.0 * (wall / off_wall - 1.0),
                    100.0 * (cpu / off_cpu - 1.0)
                )
            });
            println!(
                "{mode:>8}: median step {:.3} ms wall, {:.3} ms CPU{against}",
                wall * 1e3,
                cpu * 1e3
            );
        }
    });
}

//! Measuring what the machine can do at best, so that benchmark tables can
//! report kernels as a share of it: the fused multiply-add throughput of one
//! core (independent accumulators, no memory traffic) and the streaming
//! memory bandwidth (STREAM triad).

use crate::simd::{SimdKind, SimdLevel};
use std::time::Instant;

/// FMAs issued per loop trip per accumulator chain; more chains than
/// (pipes × latency) so that the loop is throughput-bound.
const CHAINS: usize = 12;

/// Single-thread f32 FMA throughput at `level` in GFLOP/s (2 FLOPs per lane
/// per FMA), measured over roughly `seconds`.
///
/// The time is spent in many short runs (about a millisecond each) and the
/// best one counts: on a machine shared with other work, a long run is
/// almost surely cut by the scheduler and would report the share of the
/// core this process got, not what the core can do. Kernels timed in
/// short bursts would then appear to beat the peak.
pub fn fma_peak_gflops(level: SimdLevel, seconds: f64) -> f64 {
    const RUN_S: f64 = 1e-3;
    let mut iters: u64 = 1 << 10;
    let start = Instant::now();
    let mut best = 0f64;
    loop {
        let t = Instant::now();
        let flops = run_fma(level, iters);
        let elapsed = t.elapsed().as_secs_f64();
        best = best.max(flops / elapsed);
        if elapsed < RUN_S {
            iters *= 2;
        } else if start.elapsed().as_secs_f64() >= seconds {
            return best / 1e9;
        }
    }
}

fn run_fma(level: SimdLevel, iters: u64) -> f64 {
    match level.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a level of this kind exists only where detection found
        // AVX-512F (see `crate::simd`).
        SimdKind::Avx512 => unsafe { x86::fma_avx512(iters) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a level of this kind exists only where detection found AVX2 and FMA.
        SimdKind::Avx2 => unsafe { x86::fma_avx2(iters) },
        _ => fma_scalar(iters),
    }
}

fn fma_scalar(iters: u64) -> f64 {
    let mut acc = [0f32; CHAINS];
    let (x, y) = (
        std::hint::black_box(0.999_f32),
        std::hint::black_box(1e-3_f32),
    );
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = *a * x + y;
        }
    }
    std::hint::black_box(acc);
    (iters * CHAINS as u64 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_avx512(iters: u64) -> f64 {
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        let x = _mm512_set1_ps(std::hint::black_box(0.999));
        let y = _mm512_set1_ps(std::hint::black_box(1e-3));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        std::hint::black_box(acc);
        (iters * CHAINS as u64 * 16 * 2) as f64
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_avx2(iters: u64) -> f64 {
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        let x = _mm256_set1_ps(std::hint::black_box(0.999));
        let y = _mm256_set1_ps(std::hint::black_box(1e-3));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        std::hint::black_box(acc);
        (iters * CHAINS as u64 * 8 * 2) as f64
    }
}

/// Memory bandwidth of `a[i] = b[i] + s·c[i]` over arrays far larger than
/// the caches, in GB/s (three arrays' bytes moved per pass; write-allocate
/// traffic not counted, as STREAM reports it). Runs on the current rayon
/// pool's threads.
pub fn triad_gbps(seconds: f64) -> f64 {
    use rayon::prelude::*;
    const LEN: usize = 1 << 24; // 64 MiB per f32 array, twice the L3 of common servers.
    let mut a = vec![0f32; LEN];
    let b = vec![1f32; LEN];
    let c = vec![2f32; LEN];
    let chunk = LEN / (4 * rayon::current_num_threads()).max(1);
    let mut best = 0f64;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || best == 0.0 {
        let t = Instant::now();
        a.par_chunks_mut(chunk)
            .zip(b.par_chunks(chunk))
            .zip(c.par_chunks(chunk))
            .for_each(|((a, b), c)| {
                for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                    *a = b + 3.0 * c;
                }
            });
        let bytes = (3 * LEN * std::mem::size_of::<f32>()) as f64;
        best = best.max(bytes / t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&a);
    best / 1e9
}

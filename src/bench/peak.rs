//! What this machine can do at best: FMA throughput of one core and of the
//! whole pool, and streaming memory bandwidth.

use gradlab_cpu::{peak, SimdKind, SimdLevel};

/// Peaks measured on the current rayon pool.
#[derive(Clone, Debug)]
pub struct MachinePeak {
    /// The widest SIMD level this CPU has.
    pub level: SimdLevel,
    /// f32 GFLOP/s of one core at `level`.
    pub one_core_gflops: f64,
    /// f32 GFLOP/s of all pool threads together at `level`.
    pub all_cores_gflops: f64,
    /// f32 GFLOP/s of one core with AVX2 (for comparison), when available.
    pub one_core_avx2_gflops: Option<f64>,
    /// STREAM-triad GB/s on the pool.
    pub triad_gbps: f64,
}

impl MachinePeak {
    pub fn measure(quick: bool) -> MachinePeak {
        let seconds = if quick { 0.1 } else { 0.3 };
        let level = gradlab_cpu::detected_simd_level();
        let one_core_gflops = peak::fma_peak_gflops(level, seconds);
        let all_cores_gflops = rayon::broadcast(|_| peak::fma_peak_gflops(level, seconds))
            .into_iter()
            .sum();
        let one_core_avx2_gflops = SimdLevel::new(SimdKind::Avx2)
            .ok()
            .filter(|&avx2| level > avx2)
            .map(|avx2| peak::fma_peak_gflops(avx2, seconds));
        MachinePeak {
            level,
            one_core_gflops,
            all_cores_gflops,
            one_core_avx2_gflops,
            triad_gbps: peak::triad_gbps(seconds),
        }
    }

    /// The FMA peak for a run on `threads` threads.
    pub fn gflops_for(&self, threads: usize) -> f64 {
        if threads <= 1 {
            self.one_core_gflops
        } else {
            self.all_cores_gflops
        }
    }

    pub fn describe(&self, threads: usize) -> String {
        let avx2 = self
            .one_core_avx2_gflops
            .map_or(String::new(), |g| format!(" (avx2: {g:.1})"));
        let on = if threads == 1 {
            "1 thread".to_string()
        } else {
            format!("{threads} threads")
        };
        format!(
            "peak: {} FMA {:.1} GFLOP/s on one core{avx2}, {:.1} on {on}; triad {:.1} GB/s",
            self.level, self.one_core_gflops, self.all_cores_gflops, self.triad_gbps
        )
    }
}

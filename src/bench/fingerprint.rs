//! What machine and build a benchmark ran on, written into its JSON so
//! that two runs can be told apart (and compared only when comparable).

use super::peak::MachinePeak;
use serde::{Deserialize, Serialize};

/// One CPU cache, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    /// 1, 2, 3.
    pub level: u32,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    /// As the kernel writes it, e.g. `48K`.
    pub size: String,
}

/// The machine, the build and the measured peaks of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub cpu_model: String,
    /// The widest SIMD level the CPU has (what the fast kernels pick).
    pub simd_level: String,
    /// Logical cores the process may run on.
    pub cores: usize,
    /// Worker threads of the run.
    pub threads: usize,
    pub caches: Vec<Cache>,
    /// f32 FMA GFLOP/s of one core and of the run's threads, STREAM-triad GB/s.
    pub peak_one_core_gflops: f64,
    pub peak_gflops: f64,
    pub peak_triad_gbps: f64,
    pub gradlab_version: String,
    /// The git commit the binary was built from (`unknown` outside a checkout).
    pub commit: String,
}

/// The CPU's model name from `/proc/cpuinfo` (`unknown` elsewhere).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The caches of CPU 0 from sysfs (empty where there is none).
fn caches() -> Vec<Cache> {
    let mut caches = Vec::new();
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |name: &str| {
            std::fs::read_to_string(format!("{dir}/{name}"))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            break;
        };
        caches.push(Cache {
            level: level.parse().unwrap_or(0),
            kind,
            size,
        });
    }
    caches
}

impl Fingerprint {
    /// This machine and build, with `peak` measured on `threads` threads.
    pub fn collect(peak: &MachinePeak, threads: usize) -> Fingerprint {
        Fingerprint {
            cpu_model: cpu_model(),
            simd_level: peak.level.to_string(),
            cores: crate::threads::cores(),
            threads,
            caches: caches(),
            peak_one_core_gflops: peak.one_core_gflops,
            peak_gflops: peak.gflops_for(threads),
            peak_triad_gbps: peak.triad_gbps,
            gradlab_version: env!("CARGO_PKG_VERSION").to_string(),
            commit: env!("GRADLAB_COMMIT").to_string(),
        }
    }

    /// One line: `Intel Xeon ... (avx512), 2 cores; L1d 48K, ...; gradlab 0.1.0 (abc1234)`.
    pub fn describe(&self) -> String {
        let caches: Vec<String> = self
            .caches
            .iter()
            .map(|c| {
                let kind = match c.kind.as_str() {
                    "Data" => "d",
                    "Instruction" => "i",
                    _ => "",
                };
                format!("L{}{kind} {}", c.level, c.size)
            })
            .collect();
        format!(
            "{} ({}), {} cores, {} threads; {}; gradlab {} ({})",
            self.cpu_model,
            self.simd_level,
            self.cores,
            self.threads,
            caches.join(", "),
            self.gradlab_version,
            &self.commit[..self.commit.len().min(12)]
        )
    }
}

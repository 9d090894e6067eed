//! Which SIMD instruction set the fast kernels use.
//!
//! The CPU is probed once (the answer is cached); callers may force a lower
//! level, process-wide with [`set_simd_level`] or for one closure on the
//! current thread with [`with_simd_level`], so that tests and benchmarks can
//! run every code path the machine supports side by side. A kernel reads the
//! level once, on the calling thread, and hands it to its worker threads.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// A family of micro-kernels, from the portable one up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Plain Rust, compiled for the baseline target (runs everywhere).
    Scalar,
    /// 256-bit AVX2 with fused multiply-add (x86-64 only).
    Avx2,
    /// 512-bit AVX-512F (x86-64 only).
    Avx512,
}

impl SimdLevel {
    /// Every level, lowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];

    /// Short lowercase name, as printed in benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can execute the level's instructions.
    pub fn is_supported(self) -> bool {
        self <= detected_simd_level()
    }

    /// The levels this CPU supports, lowest first.
    pub fn supported() -> Vec<SimdLevel> {
        Self::ALL.into_iter().filter(|l| l.is_supported()).collect()
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<SimdLevel> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Asking for instructions this CPU does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SIMD level {requested} is not supported by this CPU (best available: {available})")]
pub struct UnsupportedSimdLevel {
    pub requested: SimdLevel,
    pub available: SimdLevel,
}

/// The best level this CPU supports, probed once.
pub fn detected_simd_level() -> SimdLevel {
    static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
    *DETECTED.get_or_init(probe)
}

#[cfg(target_arch = "x86_64")]
fn probe() -> SimdLevel {
    if std::arch::is_x86_feature_detected!("avx512f") {
        SimdLevel::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        SimdLevel::Avx2
    } else {
        SimdLevel::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn probe() -> SimdLevel {
    SimdLevel::Scalar
}

/// Whether 512-bit FMAs have twice the throughput of 256-bit ones here.
///
/// AMD's Zen 4 (family 19h) executes AVX-512 on 256-bit units in two halves,
/// so a 256-bit tile costs it nothing extra; other AVX-512 cores (Zen 5,
/// Intel server parts) run 512-bit FMAs at full rate. Probed once.
pub fn full_rate_avx512() -> bool {
    static FULL_RATE: OnceLock<bool> = OnceLock::new();
    *FULL_RATE.get_or_init(probe_full_rate)
}

#[cfg(target_arch = "x86_64")]
fn probe_full_rate() -> bool {
    use std::arch::x86_64::__cpuid;
    // SAFETY: cpuid leaves 0 and 1 exist on every x86-64 CPU (newer
    // toolchains declare `__cpuid` safe, hence the allow).
    #[allow(unused_unsafe)]
    let (vendor, signature) = unsafe { (__cpuid(0), __cpuid(1)) };
    let amd = (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
    let base_family = (signature.eax >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((signature.eax >> 20) & 0xff)
    } else {
        base_family
    };
    !(amd && family == 0x19)
}

#[cfg(not(target_arch = "x86_64"))]
fn probe_full_rate() -> bool {
    false
}

/// 0 means "no override"; otherwise `SimdLevel::code`.
static GLOBAL_OVERRIDE: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static THREAD_OVERRIDE: Cell<Option<SimdLevel>> = const { Cell::new(None) };
}

fn check(level: SimdLevel) -> Result<(), UnsupportedSimdLevel> {
    if level.is_supported() {
        Ok(())
    } else {
        Err(UnsupportedSimdLevel {
            requested: level,
            available: detected_simd_level(),
        })
    }
}

/// Forces every later kernel call in the process to `level` (`None`: back to
/// the detected level).
pub fn set_simd_level(level: Option<SimdLevel>) -> Result<(), UnsupportedSimdLevel> {
    if let Some(level) = level {
        check(level)?;
    }
    GLOBAL_OVERRIDE.store(level.map_or(0, SimdLevel::code), Ordering::Relaxed);
    Ok(())
}

/// Runs `f` with kernels called from this thread forced to `level`.
pub fn with_simd_level<R>(
    level: SimdLevel,
    f: impl FnOnce() -> R,
) -> Result<R, UnsupportedSimdLevel> {
    check(level)?;
    struct Restore(Option<SimdLevel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_OVERRIDE.with(|c| c.replace(Some(level))));
    Ok(f())
}

/// The level a kernel called now, from this thread, uses.
pub fn simd_level() -> SimdLevel {
    THREAD_OVERRIDE
        .with(Cell::get)
        .or_else(|| SimdLevel::from_code(GLOBAL_OVERRIDE.load(Ordering::Relaxed)))
        .unwrap_or_else(detected_simd_level)
}

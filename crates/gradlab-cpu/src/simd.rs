//! Which SIMD instruction set the fast kernels use.
//!
//! A [`SimdLevel`] is a proof: only feature detection creates one, so a
//! kernel that holds a level of kind [`SimdKind::Avx512`] knows that this
//! CPU executes AVX-512F, AVX2 and FMA, and its calls into
//! `#[target_feature]` code are sound by construction (each such call's
//! `SAFETY` comment points here). A [`SimdKind`] is only a name: what a user
//! or a test asks for, turned into a level by [`SimdLevel::new`] (which
//! refuses what this CPU lacks).
//!
//! The CPU is probed once (the answer is cached); callers may force a lower
//! level, process-wide with [`set_simd_level`] or for one closure on the
//! current thread with [`with_simd_level`], so that tests and benchmarks can
//! run every code path the machine supports side by side. A kernel reads the
//! level once, on the calling thread, and hands it to its worker threads.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// A family of micro-kernels by name, from the portable one up. Naming one
/// says nothing about this CPU; see [`SimdLevel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdKind {
    /// Plain Rust, compiled for the baseline target (runs everywhere).
    Scalar,
    /// 256-bit AVX2 with fused multiply-add (x86-64 only).
    Avx2,
    /// 512-bit AVX-512F, with AVX2 and FMA beside it (x86-64 only).
    Avx512,
}

impl SimdKind {
    /// Every kind, lowest first.
    pub const ALL: [SimdKind; 3] = [SimdKind::Scalar, SimdKind::Avx2, SimdKind::Avx512];

    /// Short lowercase name, as printed in benchmark tables and parsed by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            SimdKind::Scalar => "scalar",
            SimdKind::Avx2 => "avx2",
            SimdKind::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can execute the kind's instructions.
    pub fn is_supported(self) -> bool {
        self <= detected_simd_level().kind()
    }
}

impl fmt::Display for SimdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a SIMD kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SIMD level {0:?} (expected scalar, avx2 or avx512)")]
pub struct UnknownSimdKind(pub String);

impl FromStr for SimdKind {
    type Err = UnknownSimdKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SimdKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownSimdKind(s.to_string()))
    }
}

/// A SIMD level this CPU executes. There is no public constructor that
/// skips detection: a value of this type proves that the instructions of
/// its [`kind`](SimdLevel::kind) exist here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimdLevel {
    kind: SimdKind,
}

impl SimdLevel {
    /// The portable level, which every CPU runs.
    pub const SCALAR: SimdLevel = SimdLevel {
        kind: SimdKind::Scalar,
    };

    /// The level of `kind`, if this CPU executes it.
    pub fn new(kind: SimdKind) -> Result<SimdLevel, UnsupportedSimdLevel> {
        let detected = detected_simd_level();
        if kind <= detected.kind {
            Ok(SimdLevel { kind })
        } else {
            Err(UnsupportedSimdLevel {
                requested: kind,
                available: detected.kind,
            })
        }
    }

    /// The best level this CPU supports (same as [`detected_simd_level`]).
    pub fn detected() -> SimdLevel {
        detected_simd_level()
    }

    /// The levels this CPU supports, lowest first.
    pub fn supported() -> Vec<SimdLevel> {
        SimdKind::ALL
            .into_iter()
            .filter_map(|k| SimdLevel::new(k).ok())
            .collect()
    }

    /// Which instruction set this level runs.
    pub fn kind(self) -> SimdKind {
        self.kind
    }

    /// Short lowercase name, as printed in benchmark tables.
    pub fn name(self) -> &'static str {
        self.kind.name()
    }

    fn code(self) -> u8 {
        self.kind as u8 + 1
    }

    /// The level stored by [`SimdLevel::code`]. Codes come only from levels
    /// (see `GLOBAL_OVERRIDE`), so decoding one recreates a checked level.
    fn from_code(code: u8) -> Option<SimdLevel> {
        let kind = *SimdKind::ALL.get(usize::from(code).checked_sub(1)?)?;
        Some(SimdLevel { kind })
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a name did not give a SIMD level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimdLevelError {
    #[error(transparent)]
    Unknown(#[from] UnknownSimdKind),
    #[error(transparent)]
    Unsupported(#[from] UnsupportedSimdLevel),
}

impl FromStr for SimdLevel {
    type Err = SimdLevelError;

    /// `scalar`, `avx2` or `avx512`, if this CPU executes it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SimdLevel::new(s.parse()?)?)
    }
}

/// Asking for instructions this CPU does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SIMD level {requested} is not supported by this CPU (best available: {available})")]
pub struct UnsupportedSimdLevel {
    pub requested: SimdKind,
    pub available: SimdKind,
}

/// The best level this CPU supports, probed once.
pub fn detected_simd_level() -> SimdLevel {
    static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
    *DETECTED.get_or_init(|| SimdLevel { kind: probe() })
}

/// The one place that decides what a [`SimdLevel`] proves: AVX-512 is
/// claimed only with AVX2 and FMA beside it (its kernels also run the
/// 256-bit tiles), AVX2 only with FMA.
#[cfg(target_arch = "x86_64")]
fn probe() -> SimdKind {
    let avx2 =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
        SimdKind::Avx512
    } else if avx2 {
        SimdKind::Avx2
    } else {
        SimdKind::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn probe() -> SimdKind {
    SimdKind::Scalar
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

/// 0 means "no override"; otherwise `SimdLevel::code` of a level.
static GLOBAL_OVERRIDE: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static THREAD_OVERRIDE: Cell<Option<SimdLevel>> = const { Cell::new(None) };
}

/// Forces every later kernel call in the process to `level` (`None`: back to
/// the detected level).
pub fn set_simd_level(level: Option<SimdLevel>) {
    GLOBAL_OVERRIDE.store(level.map_or(0, SimdLevel::code), Ordering::Relaxed);
}

/// Runs `f` with kernels called from this thread forced to `level`.
pub fn with_simd_level<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<SimdLevel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_OVERRIDE.with(|c| c.replace(Some(level))));
    f()
}

/// The level a kernel called now, from this thread, uses.
pub fn simd_level() -> SimdLevel {
    THREAD_OVERRIDE
        .with(Cell::get)
        .or_else(|| SimdLevel::from_code(GLOBAL_OVERRIDE.load(Ordering::Relaxed)))
        .unwrap_or_else(detected_simd_level)
}

/// Defines `fn $name(level, args..)`, which runs the `#[inline(always)]`
/// function `$body` compiled with the target features of `level`'s kind:
/// on x86-64 once for AVX-512 and once for AVX2 + FMA (so that plain Rust
/// loops over fixed-size arrays vectorise to those widths), elsewhere and
/// at the scalar level as the portable build. For kernels written once
/// and compiled per level; the dispatch's `unsafe` rests on `level`, which
/// only detection creates (see the module docs).
macro_rules! per_simd_level {
    ($(#[$attr:meta])* fn $name:ident<$e:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$attr])*
        fn $name<$e: $bound>(level: $crate::simd::SimdLevel, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            fn avx512<$e: $bound>($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2<$e: $bound>($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            match level.kind() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: a level of this kind proves AVX-512F (see `crate::simd`).
                $crate::simd::SimdKind::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: a level of this kind proves AVX2 and FMA.
                $crate::simd::SimdKind::Avx2 => unsafe { avx2($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
}
pub(crate) use per_simd_level;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unsupported_kinds_are_refused() {
        for kind in SimdKind::ALL {
            assert_eq!(kind.name().parse::<SimdKind>(), Ok(kind));
            match SimdLevel::new(kind) {
                Ok(level) => {
                    assert!(kind.is_supported());
                    assert_eq!(level.kind(), kind);
                    assert_eq!(kind.name().parse::<SimdLevel>(), Ok(level));
                }
                Err(e) => {
                    assert!(!kind.is_supported());
                    assert_eq!(e.available, detected_simd_level().kind());
                }
            }
        }
        assert!("sse9".parse::<SimdKind>().is_err());
        assert_eq!(SimdLevel::supported()[0], SimdLevel::SCALAR);
    }

    #[test]
    fn a_forced_level_applies_to_this_thread_until_the_closure_returns() {
        let inner = with_simd_level(SimdLevel::SCALAR, simd_level);
        assert_eq!(inner, SimdLevel::SCALAR);
        // Outside, the override is gone (the global one is not set here).
        let nested = with_simd_level(SimdLevel::SCALAR, || {
            with_simd_level(detected_simd_level(), simd_level)
        });
        assert_eq!(nested, detected_simd_level());
    }
}

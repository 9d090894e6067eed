//! The micro-kernel contract and the choice of micro-kernel per element type
//! and SIMD level.
//!
//! A micro-kernel computes one `MR×NR` tile of `C` from a packed panel of `A`
//! (`kc` steps of `MR` values) and a panel of `B` (`kc` rows of `NR` values,
//! `rsb` apart: either a packed panel or `B` itself when its rows are
//! contiguous), then applies the [`TileEpilogue`] while storing the tile.

use crate::simd::{SimdKind, SimdLevel};
use crate::Float;

/// What to do with the accumulated tile `acc` when storing it into `C`:
/// `C = relu?(alpha·acc + beta·C + row_bias[i] + col_bias[j])`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpilogue<E> {
    pub alpha: E,
    /// When zero, `C` is not read (BLIS convention: NaNs there do not leak).
    pub beta: E,
    /// `MR` values, one per tile row, or null.
    pub row_bias: *const E,
    /// `NR` values, one per tile column, or null.
    pub col_bias: *const E,
    pub relu: bool,
}

/// `(kc, a_panel, b_panel, rsb, c_tile, rsc, epilogue)`; the tile's columns are contiguous.
///
/// # Safety
/// `kc > 0`; `a_panel` holds `kc` steps of `mr` values; `b_panel` holds
/// `kc` rows of `nr` values, `rsb` apart; `c_tile` is `mr` rows of `nr`
/// values, `rsc` apart, that no other thread accesses during the call (read
/// only when `beta` is not zero); non-null biases hold `mr` (row) and `nr`
/// (column) values. The kernel must come from
/// [`GemmElement::micro_kernel`] (or the narrow one) for a [`SimdLevel`],
/// which proves that the CPU runs its instructions.
pub(crate) type MicroKernelFn<E> =
    unsafe fn(usize, *const E, *const E, usize, *mut E, usize, &TileEpilogue<E>);

/// A micro-kernel with its tile shape.
#[derive(Clone, Copy)]
pub(crate) struct MicroKernel<E> {
    pub mr: usize,
    pub nr: usize,
    pub run: MicroKernelFn<E>,
}

/// Element types with hand-written micro-kernels.
pub(crate) trait GemmElement: Float {
    /// The micro-kernel for `level` (which proves that this CPU runs it).
    fn micro_kernel(level: SimdLevel) -> MicroKernel<Self>;
    /// A narrower-tiled kernel the level may also use for awkward shapes
    /// (AVX-512 machines run the AVX2 tile, which pads less on small C).
    fn narrow_micro_kernel(level: SimdLevel) -> Option<MicroKernel<Self>>;
    /// A tile as costly per lane as the main one but a different shape
    /// (4 vectors wide where the main tile is 3), which the level may use
    /// where it pads C less.
    fn wide_micro_kernel(level: SimdLevel) -> Option<MicroKernel<Self>>;
}

macro_rules! impl_gemm_element {
    ($t:ty, $avx512:path, $avx512_wide:path, $avx2:path) => {
        impl GemmElement for $t {
            fn micro_kernel(level: SimdLevel) -> MicroKernel<Self> {
                match level.kind() {
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx512 => $avx512,
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx2 => $avx2,
                    _ => super::scalar::kernel(),
                }
            }
            fn narrow_micro_kernel(level: SimdLevel) -> Option<MicroKernel<Self>> {
                match level.kind() {
                    // The AVX-512 level proves AVX2 and FMA too.
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx512 => Some($avx2),
                    _ => None,
                }
            }
            fn wide_micro_kernel(level: SimdLevel) -> Option<MicroKernel<Self>> {
                match level.kind() {
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx512 => Some($avx512_wide),
                    _ => None,
                }
            }
        }
    };
}

impl_gemm_element!(
    f32,
    super::x86::AVX512_F32,
    super::x86::AVX512_F32_WIDE,
    super::x86::AVX2_F32
);
impl_gemm_element!(
    f64,
    super::x86::AVX512_F64,
    super::x86::AVX512_F64_WIDE,
    super::x86::AVX2_F64
);

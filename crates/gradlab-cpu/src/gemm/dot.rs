//! `C (+)= A·Bᵀ` when both `A` (`m×k`) and `B` (`n×k`) have contiguous rows:
//! every element of `C` is a dot product of two contiguous rows.
//!
//! This is the shape of a convolution's weight gradient (`dy · colᵀ`, both
//! running along output positions). The packed GEMM would have to transpose
//! `B` into panels first; here a tile of `MB×NB` dot products runs along `k`
//! in vectors of `L` lanes (`MB + NB` loads feed `MB·NB` FMAs) and each lane
//! vector is summed horizontally in a fixed order at the end, so results are
//! deterministic. Plain Rust over fixed-size arrays, compiled per SIMD level
//! with that level's target features.

use crate::simd::{SimdKind, SimdLevel};
use crate::Float;

/// Bounds of the depth of one pass, and the multiple it is rounded to.
const KB_RANGE: (usize, usize) = (256, 4096);
const KB_STEP: usize = 64;

/// Depth of one pass over `m` rows of A with tiles `nb` rows of B tall:
/// the `nb` B slices a column block reuses stay in (half of) L1, and the
/// slices of all `m` rows of A, which every column block passes over, in
/// (half of) L2.
fn pass_depth<E>(m: usize, nb: usize) -> usize {
    let caches = crate::cache::cache_sizes();
    let elem = std::mem::size_of::<E>();
    let l1 = caches.l1d / 2 / (nb * elem);
    let l2 = caches.l2 / 2 / (m.max(1) * elem);
    (l1.min(l2) / KB_STEP * KB_STEP).clamp(KB_RANGE.0, KB_RANGE.1)
}

/// The operands of `C (+)= A·Bᵀ`: `m` rows of `A` (`lda` apart) and `n`
/// rows of `B` (where [`BRows`] says), each `k` long.
#[derive(Clone, Copy)]
pub(crate) struct AbtProblem<'a, E> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: &'a [E],
    pub lda: usize,
    pub b: &'a [E],
    pub b_rows: BRows<'a>,
    /// Add into `C` instead of overwriting it.
    pub accumulate: bool,
}

/// `C = A·Bᵀ` (or `C += A·Bᵀ` when `p.accumulate`), `C` row-major with row stride `ldc`.
pub(crate) fn gemm_abt<E: DotElement>(
    level: SimdLevel,
    p: AbtProblem<'_, E>,
    c: &mut [E],
    ldc: usize,
) {
    let AbtProblem {
        m,
        n,
        k,
        a,
        lda,
        b,
        b_rows,
        accumulate,
    } = p;
    if m == 0 || n == 0 {
        return;
    }
    let b_fits = match b_rows {
        BRows::Strided(ldb) => b.len() >= (n - 1) * ldb + k,
        BRows::At(starts) => starts.len() >= n && starts[..n].iter().all(|&s| s + k <= b.len()),
    };
    assert!(
        a.len() >= (m - 1) * lda + k && b_fits && c.len() >= (m - 1) * ldc + n,
        "gemm_abt: operands too short for m={m} n={n} k={k}"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(E::ZERO);
            }
        }
        return;
    }
    E::dot_tiles(level, p, c, ldc);
}

/// Where row `j` of `B` starts.
#[derive(Clone, Copy)]
pub(crate) enum BRows<'a> {
    /// At `j * ldb`.
    Strided(usize),
    /// At `starts[j]` (rows may overlap: shifted windows of one image).
    At(&'a [usize]),
}

impl BRows<'_> {
    fn start(&self, j: usize) -> usize {
        match *self {
            BRows::Strided(ldb) => j * ldb,
            BRows::At(starts) => starts[j],
        }
    }
}

/// One tile of `MB×NB` dot products of length `kb` from row pointers.
///
/// # Safety
/// Every row pointer must have `kb` readable values, and the tile must come
/// from [`DotElement::dot_tiles`] for a [`SimdLevel`] (which proves that
/// the CPU runs its instructions).
type TileFn<E, const MB: usize, const NB: usize> =
    unsafe fn(&[*const E; MB], &[*const E; NB], usize) -> [[E; NB]; MB];

/// Element types with dot-product tile kernels.
pub(crate) trait DotElement: Float {
    /// Runs a checked, non-empty problem at `level`.
    fn dot_tiles(level: SimdLevel, p: AbtProblem<'_, Self>, c: &mut [Self], ldc: usize);
}

macro_rules! impl_dot_element {
    ($t:ty, $avx512:ident, $avx2:ident) => {
        impl DotElement for $t {
            fn dot_tiles(level: SimdLevel, p: AbtProblem<'_, Self>, c: &mut [Self], ldc: usize) {
                match level.kind() {
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx512 => blocked::<$t, 6, 4>(x86::$avx512, p, c, ldc),
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx2 => blocked::<$t, 4, 3>(x86::$avx2, p, c, ldc),
                    _ => blocked::<$t, 4, 4>(scalar_tile::<$t, 4, 4>, p, c, ldc),
                }
            }
        }
    };
}

impl_dot_element!(f32, avx512_f32, avx2_f32);
impl_dot_element!(f64, avx512_f64, avx2_f64);

fn blocked<E: Float, const MB: usize, const NB: usize>(
    tile: TileFn<E, MB, NB>,
    p: AbtProblem<'_, E>,
    c: &mut [E],
    ldc: usize,
) {
    let AbtProblem {
        m,
        n,
        k,
        a,
        lda,
        b,
        b_rows,
        accumulate,
    } = p;
    let depth = pass_depth::<E>(m, NB);
    for k0 in (0..k).step_by(depth) {
        let kb = depth.min(k - k0);
        let add = accumulate || k0 > 0;
        // Column blocks outside: one block of B rows stays in L1 while
        // every row block of A (in L2) passes over it.
        for j0 in (0..n).step_by(NB) {
            for i0 in (0..m).step_by(MB) {
                // Ragged tiles repeat the last row/column and drop the copies.
                let a_rows: [*const E; MB] =
                    std::array::from_fn(|i| a[(i0 + i).min(m - 1) * lda + k0..][..kb].as_ptr());
                let b_rows: [*const E; NB] = std::array::from_fn(|j| {
                    b[b_rows.start((j0 + j).min(n - 1)) + k0..][..kb].as_ptr()
                });
                // SAFETY: every row pointer has `kb` readable values (sliced
                // above); `tile` was chosen by `dot_tiles` for a proven level.
                let sums = unsafe { tile(&a_rows, &b_rows, kb) };
                for (i, row) in sums.iter().enumerate().take(m - i0) {
                    let dst = &mut c[(i0 + i) * ldc + j0..][..NB.min(n - j0)];
                    for (d, s) in dst.iter_mut().zip(row) {
                        *d = if add { *d + *s } else { *s };
                    }
                }
            }
        }
    }
}

/// The portable tile: the compiler may vectorise it for the baseline target.
///
/// # Safety
/// Every row pointer must have `kb` readable values.
unsafe fn scalar_tile<E: Float, const MB: usize, const NB: usize>(
    a_rows: &[*const E; MB],
    b_rows: &[*const E; NB],
    kb: usize,
) -> [[E; NB]; MB] {
    // SAFETY: the caller guarantees `kb` values behind every row pointer.
    let a: [&[E]; MB] =
        std::array::from_fn(|i| unsafe { std::slice::from_raw_parts(a_rows[i], kb) });
    // SAFETY: as above.
    let b: [&[E]; NB] =
        std::array::from_fn(|j| unsafe { std::slice::from_raw_parts(b_rows[j], kb) });
    let mut sums = [[E::ZERO; NB]; MB];
    for p in 0..kb {
        for (i, row) in sums.iter_mut().enumerate() {
            let av = a[i][p];
            for (j, s) in row.iter_mut().enumerate() {
                *s += av * b[j][p];
            }
        }
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Sum of the 8 lanes, in a fixed order.
    #[target_feature(enable = "avx2")]
    fn hsum256_ps(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// Sum of the 4 lanes, in a fixed order.
    #[target_feature(enable = "avx2")]
    fn hsum256_pd(v: __m256d) -> f64 {
        let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
        let s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
        _mm_cvtsd_f64(s)
    }

    macro_rules! dot_tile {
        ($name:ident, $feature:literal, $elem:ty, $mb:expr, $nb:expr, $lanes:expr,
         $zero:ident, $load:ident, $reduce:ident, $fma:ident) => {
            /// # Safety
            /// As [`TileFn`](super::TileFn): `kb` values behind every row
            /// pointer, and a CPU with the enabled features.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name(
                a: &[*const $elem; $mb],
                b: &[*const $elem; $nb],
                kb: usize,
            ) -> [[$elem; $nb]; $mb] {
                // SAFETY: all reads are at offsets below `kb` of a row
                // pointer, as the caller guarantees.
                unsafe {
                    const L: usize = $lanes;
                    let mut acc = [[$zero(); $nb]; $mb];
                    let body = kb / L * L;
                    let mut p = 0;
                    while p < body {
                        let mut bv = [$zero(); $nb];
                        for j in 0..$nb {
                            bv[j] = $load(b[j].add(p));
                        }
                        for i in 0..$mb {
                            let av = $load(a[i].add(p));
                            for j in 0..$nb {
                                acc[i][j] = $fma(av, bv[j], acc[i][j]);
                            }
                        }
                        p += L;
                    }
                    let mut sums = [[0.0; $nb]; $mb];
                    for i in 0..$mb {
                        for j in 0..$nb {
                            let mut s = $reduce(acc[i][j]);
                            for q in body..kb {
                                s += *a[i].add(q) * *b[j].add(q);
                            }
                            sums[i][j] = s;
                        }
                    }
                    sums
                }
            }
        };
    }

    dot_tile!(
        avx512_f32,
        "avx512f",
        f32,
        6,
        4,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_reduce_add_ps,
        _mm512_fmadd_ps
    );
    dot_tile!(
        avx512_f64,
        "avx512f",
        f64,
        6,
        4,
        8,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_reduce_add_pd,
        _mm512_fmadd_pd
    );
    dot_tile!(
        avx2_f32,
        "avx2,fma",
        f32,
        4,
        3,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        hsum256_ps,
        _mm256_fmadd_ps
    );
    dot_tile!(
        avx2_f64,
        "avx2,fma",
        f64,
        4,
        3,
        4,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        hsum256_pd,
        _mm256_fmadd_pd
    );
}

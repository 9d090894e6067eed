//! Register-blocked micro-kernels for x86-64 (AVX-512F and AVX2+FMA).
//!
//! One macro writes all six (two element types × two instruction sets, and
//! a wide AVX-512 tile) so that they cannot drift apart. The tile is `MR`
//! rows by `NV` vectors: each step of `k` loads `NV` vectors of `B`,
//! broadcasts `MR` values of `A` and issues `MR·NV` independent FMAs, enough
//! to hide the FMA latency on both pipes while keeping all accumulators in
//! registers (24 of 32 zmm, 12 of 16 ymm). AVX-512 has two tiles of 24
//! accumulators: 8 rows × 3 vectors (the main one) and 6 rows × 4 vectors
//! (the wide one), which the driver takes where C's width is a multiple of
//! 4 vectors but not of 3 (64 or 128 columns of f32: channel counts), as
//! the 3-vector tile would compute a third or a sixth of its lanes on
//! padding.
#![cfg(target_arch = "x86_64")]

use super::kernel::{MicroKernel, TileEpilogue};
use std::arch::x86_64::*;

macro_rules! x86_micro_kernel {
    (
        $name:ident, $feature:literal, $elem:ty, $mr:expr, $nv:expr, $lanes:expr,
        $zero:ident, $load:ident, $store:ident, $splat:ident, $fma:ident,
        $mul:ident, $add:ident, $max:ident
    ) => {
        /// # Safety
        /// The CPU must support the enabled features (the kernel is only
        /// reachable through `GemmElement::micro_kernel` with a level that
        /// proves it), and the pointers must satisfy the contract of
        /// [`MicroKernelFn`](super::kernel::MicroKernelFn).
        #[target_feature(enable = $feature)]
        unsafe fn $name(
            kc: usize,
            a: *const $elem,
            b: *const $elem,
            rsb: usize,
            c: *mut $elem,
            rsc: usize,
            epi: &TileEpilogue<$elem>,
        ) {
            // SAFETY: every read and write below stays inside the panels
            // (`kc` steps of `MR` values of A, of `NV·L` values `rsb` apart of B),
            // the tile of C (`MR` rows `rsc` apart, `NV·L` values each) and the
            // bias vectors, as the caller guarantees; the features are enabled.
            unsafe {
                const MR: usize = $mr;
                const NV: usize = $nv;
                const L: usize = $lanes;
                // C is read (or written) only after the k loop: start pulling
                // its lines in now so that the misses overlap the FMAs.
                for i in 0..MR {
                    for v in 0..NV {
                        _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc + v * L) as *const i8);
                    }
                }
                // The first step writes the accumulators instead of adding to
                // zeros: the zero-filled array would otherwise be kept in memory
                // (for a k loop that might not run) and cleared on every call.
                // The driver never calls with kc = 0.
                debug_assert!(kc > 0);
                let mut acc = [[$zero(); NV]; MR];
                {
                    let mut bv = [$zero(); NV];
                    for (v, bv) in bv.iter_mut().enumerate() {
                        *bv = $load(b.add(v * L));
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        let av = $splat(*a.add(i));
                        for (v, acc) in row.iter_mut().enumerate() {
                            *acc = $mul(av, bv[v]);
                        }
                    }
                }
                let (mut a, mut b) = (a.add(MR), b.add(rsb));
                for _ in 1..kc {
                    let mut bv = [$zero(); NV];
                    for (v, bv) in bv.iter_mut().enumerate() {
                        *bv = $load(b.add(v * L));
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        let av = $splat(*a.add(i));
                        for (v, acc) in row.iter_mut().enumerate() {
                            *acc = $fma(av, bv[v], *acc);
                        }
                    }
                    a = a.add(MR);
                    b = b.add(rsb);
                }
                let alpha = $splat(epi.alpha);
                let beta = $splat(epi.beta);
                let read_c = epi.beta != 0.0;
                for (i, row) in acc.iter().enumerate() {
                    let c_row = c.add(i * rsc);
                    let row_bias = if epi.row_bias.is_null() {
                        None
                    } else {
                        Some($splat(*epi.row_bias.add(i)))
                    };
                    for (v, acc) in row.iter().enumerate() {
                        let dst = c_row.add(v * L);
                        let mut r = $mul(*acc, alpha);
                        if read_c {
                            r = $fma($load(dst), beta, r);
                        }
                        if let Some(bias) = row_bias {
                            r = $add(r, bias);
                        }
                        if !epi.col_bias.is_null() {
                            r = $add(r, $load(epi.col_bias.add(v * L)));
                        }
                        if epi.relu {
                            // Operand order keeps NaN (maxps returns its second operand on NaN).
                            r = $max($zero(), r);
                        }
                        $store(dst, r);
                    }
                }
            }
        }
    };
}

x86_micro_kernel!(
    avx512_f32,
    "avx512f",
    f32,
    8,
    3,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_mul_ps,
    _mm512_add_ps,
    _mm512_max_ps
);
x86_micro_kernel!(
    avx512_f64,
    "avx512f",
    f64,
    8,
    3,
    8,
    _mm512_setzero_pd,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_set1_pd,
    _mm512_fmadd_pd,
    _mm512_mul_pd,
    _mm512_add_pd,
    _mm512_max_pd
);
x86_micro_kernel!(
    avx512_f32_wide,
    "avx512f",
    f32,
    6,
    4,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_mul_ps,
    _mm512_add_ps,
    _mm512_max_ps
);
x86_micro_kernel!(
    avx512_f64_wide,
    "avx512f",
    f64,
    6,
    4,
    8,
    _mm512_setzero_pd,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_set1_pd,
    _mm512_fmadd_pd,
    _mm512_mul_pd,
    _mm512_add_pd,
    _mm512_max_pd
);
x86_micro_kernel!(
    avx2_f32,
    "avx2,fma",
    f32,
    6,
    2,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_mul_ps,
    _mm256_add_ps,
    _mm256_max_ps
);
x86_micro_kernel!(
    avx2_f64,
    "avx2,fma",
    f64,
    6,
    2,
    4,
    _mm256_setzero_pd,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_set1_pd,
    _mm256_fmadd_pd,
    _mm256_mul_pd,
    _mm256_add_pd,
    _mm256_max_pd
);

pub(super) const AVX512_F32: MicroKernel<f32> = MicroKernel {
    mr: 8,
    nr: 48,
    run: avx512_f32,
};
pub(super) const AVX512_F64: MicroKernel<f64> = MicroKernel {
    mr: 8,
    nr: 24,
    run: avx512_f64,
};
pub(super) const AVX512_F32_WIDE: MicroKernel<f32> = MicroKernel {
    mr: 6,
    nr: 64,
    run: avx512_f32_wide,
};
pub(super) const AVX512_F64_WIDE: MicroKernel<f64> = MicroKernel {
    mr: 6,
    nr: 32,
    run: avx512_f64_wide,
};
pub(super) const AVX2_F32: MicroKernel<f32> = MicroKernel {
    mr: 6,
    nr: 16,
    run: avx2_f32,
};
pub(super) const AVX2_F64: MicroKernel<f64> = MicroKernel {
    mr: 6,
    nr: 8,
    run: avx2_f64,
};

//! The 2×2, stride-2, unpadded max-pool, whose windows tile the input
//! without overlapping: the shape of every pooling layer in LeNet and the
//! convnet.
//!
//! Forward: a row of windows reads two input rows. Split into their even
//! and odd columns, those give the four taps of 16 (AVX-512) or 8 (AVX2)
//! windows as four vectors, and the reference's scan (first maximum wins, a
//! NaN beats what came before it) becomes three compare-and-blend steps on
//! whole vectors. A row's last windows use masked loads and stores. On
//! AVX-512, planes whose rows hold fewer than 16 windows (LeNet's 14 and 5,
//! the convnet's 8 and 4) are instead taken 16 windows at a time in output
//! order, across rows, with each tap gathered: a 4-window row would fill a
//! quarter of a vector (the convnet's last pool: 1.04 -> 0.55-0.58 ms on one
//! thread, `gradlab bench maxpool`). The portable loop is the same scan on
//! one window at a time.

use crate::simd::{SimdKind, SimdLevel};
use crate::{Float, Pool2dShape, PoolIndex};

/// Whether every window of the shape is a full 2×2, stride-2 window inside
/// the input (no padding, dilation or ceil-mode overhang).
pub(super) fn applies(s: &Pool2dShape) -> bool {
    s.kernel == (2, 2)
        && s.stride == (2, 2)
        && s.padding == (0, 0)
        && s.dilation == (1, 1)
        && 2 * s.out_h() <= s.in_h
        && 2 * s.out_w() <= s.in_w
}

/// The top-left index of every window of a plane, in output order, for the
/// gathered kernel: when its rows hold fewer windows than an AVX-512 vector
/// of f32 and the indices are 8 bytes wide. Empty when that kernel does
/// not apply. The same for every plane, so it is made once per call.
pub(super) fn gather_table<T: 'static, I: 'static>(level: SimdLevel, s: &Pool2dShape) -> Vec<i32> {
    use std::any::TypeId;
    let f32_values = TypeId::of::<T>() == TypeId::of::<f32>();
    let wide_indices =
        TypeId::of::<I>() == TypeId::of::<i64>() || TypeId::of::<I>() == TypeId::of::<usize>();
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let suits = cfg!(target_arch = "x86_64")
        && level.kind() == SimdKind::Avx512
        && f32_values
        && wide_indices
        && applies(s)
        && out_w < 16
        && s.in_h * s.in_w <= i32::MAX as usize;
    if !suits {
        return Vec::new();
    }
    (0..out_h)
        .flat_map(|oh| (0..out_w).map(move |ow| (2 * oh * s.in_w + 2 * ow) as i32))
        .collect()
}

/// Pools one plane `x` into `out` and `argmax` (indices within the plane);
/// `lefts` is the shape's [`gather_table`].
pub(super) fn forward_plane<T: Float, I: PoolIndex>(
    level: SimdLevel,
    s: &Pool2dShape,
    lefts: &[i32],
    x: &[T],
    out: &mut [T],
    argmax: &mut [I],
) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    #[cfg(target_arch = "x86_64")]
    if let (Some(x), Some(out)) = (
        crate::gemm::cast_slice::<T, f32>(x),
        crate::gemm::cast_slice_mut::<T, f32>(out),
    ) {
        if !lefts.is_empty() {
            let n = out_h * out_w;
            // SAFETY: `gather_table` returns entries only for an AVX-512
            // level, which proves the instructions (see `crate::simd`), and
            // 8-byte index types (i64 or usize, whose indices below the
            // plane's length have the same bits); every window's taps lie in
            // the plane (`applies`), and `out` and `argmax` hold the plane's
            // `n` windows.
            unsafe {
                let argmax = std::slice::from_raw_parts_mut(argmax.as_mut_ptr().cast::<i64>(), n);
                x86::gathered_avx512(x, lefts, s.in_w, &mut out[..n], argmax);
            }
            return;
        }
        // Indices within a plane fit in i32 lanes.
        if s.in_h * s.in_w <= i32::MAX as usize {
            let row = match level.kind() {
                SimdKind::Avx512 => Some(x86::row_avx512 as x86::RowFn),
                SimdKind::Avx2 => Some(x86::row_avx2 as x86::RowFn),
                SimdKind::Scalar => None,
            };
            if let Some(row) = row {
                // Winners' indices are written as 8-byte integers straight
                // from the vector registers when the index type is one.
                let mut offsets = [0i64; x86::MAX_LANES];
                let wide = crate::gemm::cast_slice_mut::<I, i64>(argmax).is_some()
                    || crate::gemm::cast_slice_mut::<I, usize>(argmax).is_some();
                for oh in 0..out_h {
                    let top = 2 * oh * s.in_w;
                    let rows = (&x[top..top + 2 * out_w], &x[top + s.in_w..][..2 * out_w]);
                    let out = &mut out[oh * out_w..(oh + 1) * out_w];
                    let argmax = &mut argmax[oh * out_w..(oh + 1) * out_w];
                    let mut ow = 0;
                    while ow < out_w {
                        let n = (out_w - ow).min(x86::MAX_LANES);
                        let dst: &mut [i64] = if wide {
                            // SAFETY: `I` is i64 or usize (checked above):
                            // 8-byte integers, and every index written is
                            // below the plane's length, so the same bits
                            // as either type.
                            unsafe {
                                std::slice::from_raw_parts_mut(
                                    argmax[ow..ow + n].as_mut_ptr().cast::<i64>(),
                                    n,
                                )
                            }
                        } else {
                            &mut offsets[..n]
                        };
                        // SAFETY: `row` matches `level`'s kind, which proves
                        // the CPU runs its instructions (see `crate::simd`);
                        // the row slices hold `2 * out_w` values from column
                        // 0, and `dst` holds `n` indices (at least as many
                        // as one call writes).
                        let done = unsafe { row(rows, s.in_w, top, ow, out, dst) };
                        if !wide {
                            for (a, &i) in argmax[ow..ow + done].iter_mut().zip(&offsets) {
                                *a = I::from_index(i as usize);
                            }
                        }
                        ow += done;
                    }
                }
                return;
            }
        }
    }
    let _ = level;
    for oh in 0..out_h {
        let top = 2 * oh * s.in_w;
        let bottom = top + s.in_w;
        let (r0, r1) = (&x[top..top + 2 * out_w], &x[bottom..bottom + 2 * out_w]);
        let out = &mut out[oh * out_w..(oh + 1) * out_w];
        let argmax = &mut argmax[oh * out_w..(oh + 1) * out_w];
        for (ow, (o, a)) in out.iter_mut().zip(argmax.iter_mut()).enumerate() {
            let i = 2 * ow;
            let (v00, v01, v10, v11) = (r0[i], r0[i + 1], r1[i], r1[i + 1]);
            // The reference's scan, without branches (random data makes
            // every comparison unpredictable): `|` and `&` evaluate both sides.
            let take01 = (v01 > v00) | v01.is_nan();
            let (best, idx) = select(take01, (v01, top + i + 1), (v00, top + i));
            let take10 = (v10 > best) | v10.is_nan();
            let (best, idx) = select(take10, (v10, bottom + i), (best, idx));
            let take11 = (v11 > best) | v11.is_nan();
            let (value, idx) = select(take11, (v11, bottom + i + 1), (best, idx));
            (*o, *a) = (value, I::from_index(idx));
        }
    }
}

#[inline(always)]
fn select<T: Copy>(cond: bool, yes: (T, usize), no: (T, usize)) -> (T, usize) {
    if cond {
        yes
    } else {
        no
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Widest vector, in f32 lanes.
    pub(super) const MAX_LANES: usize = 16;

    /// Pools the windows of one window row from column `ow` on, as many as
    /// one vector holds (fewer at the end of the row): values into
    /// `out[ow..]`, each winner's index in the plane (`top`, the top row's
    /// start, plus its offset from there) into `argmax[..]`. Returns how
    /// many windows it did.
    ///
    /// # Safety
    /// The CPU must run the function's target features; both rows must hold
    /// `2 * out.len()` values, `2 * in_w` must fit in i32, and `argmax` must
    /// hold the windows done (`min(out.len() - ow, lanes)`).
    pub(super) type RowFn =
        unsafe fn((&[f32], &[f32]), usize, usize, usize, &mut [f32], &mut [i64]) -> usize;

    /// The reference's scan over the four taps of up to 16 windows (the
    /// first maximum wins, a NaN beats what came before it), storing the
    /// first `n` winners' values at `out` and their plane indices (`left`,
    /// the top-left tap's index, plus the winner's offset from it) as i64
    /// at `argmax`.
    ///
    /// # Safety
    /// AVX-512F; `out` and `argmax` must hold `n <= 16` values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn scan_store_avx512(
        [v00, v01, v10, v11]: [__m512; 4],
        left: __m512i,
        in_w: usize,
        n: usize,
        out: *mut f32,
        argmax: *mut i64,
    ) {
        let wins = |v: __m512, best: __m512| {
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
        };
        let w = in_w as i32;
        let take = wins(v01, v00);
        let best = _mm512_mask_blend_ps(take, v00, v01);
        let off = _mm512_maskz_mov_epi32(take, _mm512_set1_epi32(1));
        let take = wins(v10, best);
        let best = _mm512_mask_blend_ps(take, best, v10);
        let off = _mm512_mask_blend_epi32(take, off, _mm512_set1_epi32(w));
        let take = wins(v11, best);
        let best = _mm512_mask_blend_ps(take, best, v11);
        let off = _mm512_mask_blend_epi32(take, off, _mm512_set1_epi32(w + 1));
        let index = _mm512_add_epi32(left, off);
        // SAFETY: the masked stores write the first `n` lanes only, which
        // the caller guarantees room for.
        unsafe {
            _mm512_mask_storeu_ps(out, lane_bits(n), best);
            // Widened to i64, 8 at a time.
            let halves = [
                _mm512_castsi512_si256(index),
                _mm512_extracti64x4_epi64::<1>(index),
            ];
            for (h, half) in halves.into_iter().enumerate() {
                let keep = lane_bits(n.saturating_sub(8 * h).min(8)) as u8;
                let at = argmax.wrapping_add(8 * h).cast();
                _mm512_mask_storeu_epi64(at, keep, _mm512_cvtepi32_epi64(half));
            }
        }
    }

    /// A mask of the first `count` (at most 16) lanes.
    fn lane_bits(count: usize) -> u16 {
        if count >= 16 {
            u16::MAX
        } else {
            (1u16 << count) - 1
        }
    }

    /// Pools every window of a plane whose rows are narrower than a vector
    /// (`lefts[o]`: window `o`'s top-left index, in output order), 16
    /// windows at a time with their taps gathered: a row of 4 or 8 windows
    /// would fill a quarter or half of a vector.
    ///
    /// # Safety
    /// AVX-512F; every `lefts[o] + in_w + 1` must index `x`; `out` and
    /// `argmax` must hold `lefts.len()` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gathered_avx512(
        x: &[f32],
        lefts: &[i32],
        in_w: usize,
        out: &mut [f32],
        argmax: &mut [i64],
    ) {
        let w = in_w as i32;
        for o in (0..lefts.len()).step_by(16) {
            let n = (lefts.len() - o).min(16);
            let m = lane_bits(n);
            // SAFETY: masked lanes load and gather nothing; the others
            // read `lefts[o..o + n]` and positions of `x` (the caller's
            // contract); the stores write `n` values from `o`.
            unsafe {
                let left = _mm512_maskz_loadu_epi32(m, lefts.as_ptr().add(o));
                let tap = |offset: i32| {
                    let at = _mm512_add_epi32(left, _mm512_set1_epi32(offset));
                    _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, at, x.as_ptr())
                };
                let taps = [tap(0), tap(1), tap(w), tap(w + 1)];
                let (out, argmax) = (out.as_mut_ptr().add(o), argmax.as_mut_ptr().add(o));
                scan_store_avx512(taps, left, in_w, n, out, argmax);
            }
        }
    }

    /// # Safety
    /// As [`RowFn`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row_avx512(
        rows: (&[f32], &[f32]),
        in_w: usize,
        top: usize,
        ow: usize,
        out: &mut [f32],
        argmax: &mut [i64],
    ) -> usize {
        let n = (out.len() - ow).min(16);
        // Bits of the 2n input values: the first vector's and the second's.
        let (lo, hi) = (lane_bits(2 * n), lane_bits((2 * n).saturating_sub(16)));
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        // SAFETY: the masked loads touch only the 2n values from column
        // 2*ow, which the rows hold (the caller's contract); the masked
        // stores write the n outputs from `ow` and n indices into `argmax`,
        // which holds them (the caller's contract).
        unsafe {
            let split = |row: &[f32]| {
                let p = row.as_ptr().add(2 * ow);
                let a = _mm512_maskz_loadu_ps(lo, p);
                let b = _mm512_maskz_loadu_ps(hi, p.add(16));
                (
                    _mm512_permutex2var_ps(a, even, b),
                    _mm512_permutex2var_ps(a, odd, b),
                )
            };
            let (v00, v01) = split(rows.0);
            let (v10, v11) = split(rows.1);
            // Plane index of each window's top-left tap: top + 2*(ow + lane).
            let lanes =
                _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let left = _mm512_add_epi32(_mm512_set1_epi32((top + 2 * ow) as i32), lanes);
            let taps = [v00, v01, v10, v11];
            scan_store_avx512(
                taps,
                left,
                in_w,
                n,
                out.as_mut_ptr().add(ow),
                argmax.as_mut_ptr(),
            );
        }
        n
    }

    /// # Safety
    /// As [`RowFn`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row_avx2(
        rows: (&[f32], &[f32]),
        in_w: usize,
        top: usize,
        ow: usize,
        out: &mut [f32],
        argmax: &mut [i64],
    ) -> usize {
        let n = (out.len() - ow).min(8);
        // Lane masks (all bits set where a lane is read or written).
        let mask = |count: usize| {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), lanes)
        };
        let (lo, hi) = (mask(2 * n), mask((2 * n).saturating_sub(8)));
        // SAFETY: the masked loads touch only the 2n values from column
        // 2*ow, which the rows hold (the caller's contract); the masked
        // stores write the n outputs from `ow` and n indices into `argmax`,
        // which holds them (the caller's contract).
        unsafe {
            let split = |row: &[f32]| {
                let p = row.as_ptr().add(2 * ow);
                let a = _mm256_maskload_ps(p, lo);
                let b = _mm256_maskload_ps(p.add(8), hi);
                // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 | b0 b2 b4 b6].
                let order = |v: __m256| {
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
                };
                (
                    order(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)),
                    order(_mm256_shuffle_ps::<0b11_01_11_01>(a, b)),
                )
            };
            let (v00, v01) = split(rows.0);
            let (v10, v11) = split(rows.1);
            let wins = |v: __m256, best: __m256| {
                _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(v, best),
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
                )
            };
            let as_ps = _mm256_castsi256_ps;
            let w = in_w as i32;
            let take = wins(v01, v00);
            let best = _mm256_blendv_ps(v00, v01, take);
            let off = _mm256_and_ps(take, as_ps(_mm256_set1_epi32(1)));
            let take = wins(v10, best);
            let best = _mm256_blendv_ps(best, v10, take);
            let off = _mm256_blendv_ps(off, as_ps(_mm256_set1_epi32(w)), take);
            let take = wins(v11, best);
            let best = _mm256_blendv_ps(best, v11, take);
            let off = _mm256_blendv_ps(off, as_ps(_mm256_set1_epi32(w + 1)), take);
            let lanes = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
            let left = _mm256_add_epi32(_mm256_set1_epi32(2 * ow as i32), lanes);
            _mm256_maskstore_ps(out.as_mut_ptr().add(ow), mask(n), best);
            // Offsets widened to i64 and moved to the plane index, 4 at a time.
            let offsets = _mm256_add_epi32(left, _mm256_castps_si256(off));
            let top = _mm256_set1_epi64x(top as i64);
            let halves = [
                _mm256_castsi256_si128(offsets),
                _mm256_extracti128_si256::<1>(offsets),
            ];
            for (h, half) in halves.into_iter().enumerate() {
                let count = n.saturating_sub(4 * h).min(4);
                let index = _mm256_add_epi64(_mm256_cvtepi32_epi64(half), top);
                let lanes = _mm256_setr_epi64x(0, 1, 2, 3);
                let keep = _mm256_cmpgt_epi64(_mm256_set1_epi64x(count as i64), lanes);
                _mm256_maskstore_epi64(argmax.as_mut_ptr().wrapping_add(4 * h), keep, index);
            }
        }
        n
    }
}

//! Weight gradient as a packed GEMM over a channels-last column matrix, for
//! layers with many input channels per group (3×3, 64 → 64).
//!
//! `dW_g (OCg × K) = Σ_n dy_g (OCg × P) · colᵀ (P × K)`: the reduction runs
//! along output positions `P`. With the column matrix stored transposed,
//! one row per output position, the product is a plain GEMM whose `B`
//! operand has contiguous rows, which the blocked GEMM reads at full speed
//! (the dot-product formulation sums every element horizontally instead).
//!
//! Building those rows straight from NCHW would gather one value per input
//! channel from planes far apart. Each image is first transposed into a
//! zero-bordered channels-last copy (`[h][w][c]`), after which a row of the
//! column matrix is `KH·KW` contiguous runs of `ICg` channels, one block
//! copy each. The taps therefore come out in `(kh, kw, c)` order; the sums
//! are permuted back to PyTorch's `(c, kh, kw)` at the end.
//!
//! Positions are taken a few hundred at a time (as many as half of this
//! machine's L2 holds), so that the part of the column matrix in use stays
//! in L2 while the GEMM reads it.

use crate::gemm::{gemm_typed, GemmElement, MatMut, MatRef, Problem};
use crate::scratch::{PlainData, Scratch};
use crate::simd::SimdLevel;
use crate::Conv2dShape;
use std::ops::Range;

/// Fewest input channels per group for which this path is used: shorter
/// runs make the block copies too small to beat im2col.
pub(crate) const MIN_CHANNELS: usize = 16;

/// Channels moved together by the channels-last transposition.
const TRANSPOSE_BLOCK: usize = 8;

/// Overwrites `dw` (PyTorch's `[OC][ICg][KH][KW]` layout) with the weight
/// gradient summed over `images`, in a fixed order (image by image, then
/// position by position in chunks), so the result depends only on `images`.
pub(crate) fn accumulate<E: GemmElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    images: Range<usize>,
    dw: &mut [E],
) {
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let (kh_n, kw_n) = (s.kernel_h, s.kernel_w);
    let k = icg * kh_n * kw_n;
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let positions = out_h * out_w;
    let channels = s.in_channels;
    let (pad_h, pad_w) = (s.in_h + 2 * s.padding.0, s.in_w + 2 * s.padding.1);
    let plane = s.in_h * s.in_w;
    let in_image = channels * plane;
    let out_image = s.out_channels * positions;
    // With one group and no horizontal dilation, the runs of one kernel
    // row are contiguous in the channels-last image.
    let whole_rows = icg == channels && s.dilation.1 == 1;
    // The chunk of column matrix built per GEMM call stays in (half of)
    // L2 until the GEMM has packed it.
    let chunk_bytes = crate::cache::cache_sizes().l2 / 2;
    let chunk = (chunk_bytes / (k * std::mem::size_of::<E>()))
        .max(16)
        .min(positions);

    if images.is_empty() {
        dw.fill(E::ZERO);
        return;
    }
    let mut x_scratch = Scratch::take();
    let mut col_scratch = Scratch::take();
    let mut sum_scratch = Scratch::take();
    // The zero border is written once; each image overwrites the interior.
    let x_t = x_scratch.slice::<E>(pad_h * pad_w * channels);
    x_t.fill(E::ZERO);
    let col_t = col_scratch.slice::<E>(chunk * k);
    // Sums in (kh, kw, c) tap order, per group.
    let sums = sum_scratch.slice::<E>(s.groups * ocg * k);

    for (image_index, n) in images.enumerate() {
        let x = &input[n * in_image..][..in_image];
        // Row by row, so that the lines of one channels-last row (all
        // channels of `in_w` pixels) stay in L1 while every channel fills them.
        // Eight channels at a time: each pixel gets eight adjacent values
        // (one short vector store) from eight planes read side by side,
        // each front to back, which the prefetchers follow (all planes at
        // once would be more streams than they track).
        let blocks = channels / TRANSPOSE_BLOCK;
        for c0 in (0..blocks).map(|b| b * TRANSPOSE_BLOCK) {
            for h in 0..s.in_h {
                let rows: [&[E]; TRANSPOSE_BLOCK] =
                    std::array::from_fn(|j| &x[(c0 + j) * plane + h * s.in_w..][..s.in_w]);
                let at = ((h + s.padding.0) * pad_w + s.padding.1) * channels;
                let dst = &mut x_t[at..at + s.in_w * channels];
                for (w, pixel) in dst.chunks_exact_mut(channels).enumerate() {
                    let block: &mut [E; TRANSPOSE_BLOCK] = (&mut pixel[c0..c0 + TRANSPOSE_BLOCK])
                        .try_into()
                        .expect("block of channels");
                    *block = std::array::from_fn(|j| rows[j][w]);
                }
            }
        }
        for c in blocks * TRANSPOSE_BLOCK..channels {
            for h in 0..s.in_h {
                let row = &x[c * plane + h * s.in_w..][..s.in_w];
                let at = ((h + s.padding.0) * pad_w + s.padding.1) * channels;
                let dst = &mut x_t[at..at + s.in_w * channels];
                for (pixel, &v) in dst.chunks_exact_mut(channels).zip(row) {
                    pixel[c] = v;
                }
            }
        }
        for g in 0..s.groups {
            let dy_g = &grad_out[n * out_image + g * ocg * positions..][..ocg * positions];
            for p0 in (0..positions).step_by(chunk) {
                let rows = chunk.min(positions - p0);
                for (i, col_row) in col_t.chunks_exact_mut(k).take(rows).enumerate() {
                    let (oh, ow) = ((p0 + i) / out_w, (p0 + i) % out_w);
                    let iw0 = ow * s.stride.1;
                    for (kh, taps) in col_row.chunks_exact_mut(kw_n * icg).enumerate() {
                        let ih = oh * s.stride.0 + kh * s.dilation.0;
                        let from = (ih * pad_w + iw0) * channels + g * icg;
                        if whole_rows {
                            // The KW taps of one kernel row are adjacent pixels: one block.
                            taps.copy_from_slice(&x_t[from..from + kw_n * icg]);
                        } else {
                            for (kw, run) in taps.chunks_exact_mut(icg).enumerate() {
                                let at = from + kw * s.dilation.1 * channels;
                                run.copy_from_slice(&x_t[at..at + icg]);
                            }
                        }
                    }
                }
                let first = image_index == 0 && p0 == 0;
                let product = Problem {
                    beta: if first { E::ZERO } else { E::ONE },
                    parallel: false,
                    ..Problem::product(
                        ocg,
                        rows,
                        k,
                        MatRef::new(&dy_g[p0..], positions, 1),
                        MatRef::new(&col_t[..rows * k], k, 1),
                    )
                };
                let sums_g = MatMut::new(&mut sums[g * ocg * k..(g + 1) * ocg * k], k, 1);
                gemm_typed(level, product, sums_g, None);
            }
        }
    }
    // (kh, kw, c) → (c, kh, kw).
    for (dst, src) in dw.chunks_exact_mut(k).zip(sums.chunks_exact(k)) {
        for c in 0..icg {
            for t in 0..kh_n * kw_n {
                dst[c * kh_n * kw_n + t] = src[t * icg + c];
            }
        }
    }
}

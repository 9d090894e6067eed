//! Unfolding one image (one channel group) into the column matrix a
//! convolution multiplies by, and folding gradients back.
//!
//! Row `r = (c·KH + kh)·KW + kw` of the column matrix holds, for every output
//! position `(oh, ow)`, the input value that kernel tap `(c, kh, kw)` reads
//! there (zero in the padding). Each row is built from runs of one input row:
//! a run is a contiguous copy when the horizontal stride is 1.

use crate::{Conv2dShape, Float};

/// The output columns `ow` whose tap `kw` lands inside the input row, as a
/// range, with the input column of its first element.
#[inline]
fn valid_cols(s: &Conv2dShape, kw: usize, out_w: usize) -> (usize, usize) {
    let offset = (kw * s.dilation.1) as isize - s.padding.1 as isize;
    let stride = s.stride.1 as isize;
    // First ow with ow*stride + offset >= 0.
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset + stride - 1) / stride) as usize
    };
    // First ow with ow*stride + offset >= in_w.
    let limit = s.in_w as isize - offset;
    let hi = if limit <= 0 {
        0
    } else {
        ((limit + stride - 1) / stride) as usize
    };
    (lo.min(out_w), hi.min(out_w).max(lo.min(out_w)))
}

/// The input row that output row `oh`, tap `kh` reads (None in the padding).
#[inline]
fn input_row(s: &Conv2dShape, oh: usize, kh: usize) -> Option<usize> {
    let pos = (oh * s.stride.0 + kh * s.dilation.0) as isize - s.padding.0 as isize;
    (pos >= 0 && (pos as usize) < s.in_h).then_some(pos as usize)
}

/// Fills `col` (`in_per_group·KH·KW` rows of `out_h·out_w`, rows `ld`
/// apart) from `image`, the `in_per_group` channel planes of one group of
/// one image.
pub(crate) fn im2col<E: Float>(s: &Conv2dShape, image: &[E], col: &mut [E], ld: usize) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let plane = s.in_h * s.in_w;
    let (sw, dw) = (s.stride.1, s.dilation.1);
    let pw = s.padding.1 as isize;
    let mut r = 0;
    for c in 0..s.in_per_group() {
        let channel = &image[c * plane..(c + 1) * plane];
        for kh in 0..s.kernel_h {
            for kw in 0..s.kernel_w {
                let row = &mut col[r * ld..r * ld + out_h * out_w];
                r += 1;
                let (lo, hi) = valid_cols(s, kw, out_w);
                for (oh, dst) in row.chunks_exact_mut(out_w).enumerate() {
                    let Some(ih) = input_row(s, oh, kh) else {
                        dst.fill(E::ZERO);
                        continue;
                    };
                    dst[..lo].fill(E::ZERO);
                    dst[hi..].fill(E::ZERO);
                    if lo < hi {
                        let iw0 = (lo as isize * sw as isize + (kw * dw) as isize - pw) as usize;
                        let src = &channel[ih * s.in_w..(ih + 1) * s.in_w];
                        if sw == 1 {
                            // Runs are short (one output row): an inlined loop beats a memcpy call.
                            for (d, x) in dst[lo..hi].iter_mut().zip(&src[iw0..iw0 + (hi - lo)]) {
                                *d = *x;
                            }
                        } else {
                            for (d, x) in dst[lo..hi].iter_mut().zip(src[iw0..].iter().step_by(sw))
                            {
                                *d = *x;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds every entry of `col` back onto the input position it was read from
/// (the adjoint of [`im2col`]); `image` must be zeroed (or hold a partial sum).
pub(crate) fn col2im_add<E: Float>(s: &Conv2dShape, col: &[E], image: &mut [E]) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let plane = s.in_h * s.in_w;
    let (sw, dw) = (s.stride.1, s.dilation.1);
    let pw = s.padding.1 as isize;
    let mut rows = col.chunks_exact(out_h * out_w);
    for c in 0..s.in_per_group() {
        let channel = &mut image[c * plane..(c + 1) * plane];
        for kh in 0..s.kernel_h {
            for kw in 0..s.kernel_w {
                let row = rows.next().expect("col holds every tap");
                let (lo, hi) = valid_cols(s, kw, out_w);
                if lo >= hi {
                    continue;
                }
                let iw0 = (lo as isize * sw as isize + (kw * dw) as isize - pw) as usize;
                for (oh, src) in row.chunks_exact(out_w).enumerate() {
                    let Some(ih) = input_row(s, oh, kh) else {
                        continue;
                    };
                    let dst = &mut channel[ih * s.in_w..(ih + 1) * s.in_w];
                    for (d, x) in dst[iw0..].iter_mut().step_by(sw).zip(&src[lo..hi]) {
                        *d += *x;
                    }
                }
            }
        }
    }
}

//! Weight gradient of stride-1 convolutions on the zero-padded input grid,
//! without a column matrix.
//!
//! On the zero-padded input (rows `in_w + 2·pad` wide) tap `(c, kh, kw)`
//! reads one contiguous window shifted by `kh·pad_w + kw`, so `dW[oc, tap]`
//! is a dot product of the output gradient (laid out on the same grid, zero
//! past each row's end) with that window. It wastes the lanes past each
//! row; worth it when rows are mostly real and long enough for the dot
//! products to amortise their sums. The padded grid multiplies zeros by
//! input values, so an infinite or NaN input would leak NaN into sums it
//! does not belong to: the caller takes this path only for finite inputs.

use super::{taps, DOT_MIN_LEN};
use crate::gemm::{gemm_abt, AbtProblem, BRows, DotElement};
use crate::scratch::{PlainData, Scratch};
use crate::simd::SimdLevel;
use crate::Conv2dShape;
use std::ops::Range;

/// Whether this path suits `s` (stride 1, rows mostly real, long dot products).
pub(crate) fn suits(s: &Conv2dShape) -> bool {
    let pad_w = s.in_w + 2 * s.padding.1;
    s.stride == (1, 1) && 2 * s.out_w() >= pad_w && s.out_h() * pad_w >= DOT_MIN_LEN
}

/// Overwrites `dw` with the weight gradient of images `range`.
pub(crate) fn accumulate<E: DotElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    range: Range<usize>,
    dw: &mut [E],
) {
    let (in_image, out_image) = (
        s.in_channels * s.in_h * s.in_w,
        s.out_channels * s.out_h() * s.out_w(),
    );
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let (pad_h, pad_w) = (s.in_h + 2 * s.padding.0, s.in_w + 2 * s.padding.1);
    let plane = pad_h * pad_w;
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let span = out_h * pad_w;
    let mut x_scratch = Scratch::take();
    let mut dy_scratch = Scratch::take();
    let x_pad = x_scratch.slice::<E>(s.in_channels * plane + s.kernel_w * s.dilation.1);
    let dy_pad = dy_scratch.slice::<E>(s.out_channels * span);
    // The borders stay zero; every image overwrites the interiors.
    x_pad.fill(E::ZERO);
    dy_pad.fill(E::ZERO);
    // Where tap (c, kh, kw) of group-local channel c starts reading.
    let starts = super::tap_offsets(s, icg, plane, pad_w);
    for n in range.clone() {
        for c in 0..s.in_channels {
            for h in 0..s.in_h {
                let src = &input[n * in_image + (c * s.in_h + h) * s.in_w..][..s.in_w];
                let at = c * plane + (h + s.padding.0) * pad_w + s.padding.1;
                x_pad[at..at + s.in_w].copy_from_slice(src);
            }
        }
        for oc in 0..s.out_channels {
            for oh in 0..out_h {
                let src = &grad_out[n * out_image + (oc * out_h + oh) * out_w..][..out_w];
                dy_pad[oc * span + oh * pad_w..][..out_w].copy_from_slice(src);
            }
        }
        for g in 0..s.groups {
            let product = AbtProblem {
                m: ocg,
                n: k,
                k: span,
                a: &dy_pad[g * ocg * span..(g + 1) * ocg * span],
                lda: span,
                b: &x_pad[g * icg * plane..],
                b_rows: BRows::At(&starts),
                accumulate: n != range.start,
            };
            gemm_abt(level, product, &mut dw[g * ocg * k..(g + 1) * ocg * k], k);
        }
    }
}

//! The three passes as matrix products (the GEMM forms).
//!
//! Per image and channel group the convolution is one matrix product:
//! `out_g (OCg × P) = W_g (OCg × K) · col (K × P)` with `K = ICg·KH·KW` taps
//! and `P = OH·OW` positions. The gradients are the two other products of
//! the same three matrices: `dcol = W_gᵀ · dout_g` (folded back by col2im)
//! and `dW_g += dout_g · colᵀ`. Column matrices live in reused per-thread
//! scratch buffers, and a 1×1, stride-1, unpadded convolution skips them
//! (its column matrix is the input).

use super::im2col::{col2im_add, im2col};
use super::{is_pointwise, pack_weights_per_group, taps, DOT_MIN_LEN};
use crate::gemm::{
    gemm_abt, gemm_typed, AbtProblem, BRows, BiasAxis, DotElement, GemmElement, MatMut, MatRef,
    Problem,
};
use crate::parallel::for_each_chunk;
use crate::scratch::{PlainData, Scratch};
use crate::simd::SimdLevel;
use crate::Conv2dShape;
use std::ops::Range;

/// `out = W · im2col(input) + bias`, image by image (split over images
/// when `by_image`, otherwise inside each product).
pub(crate) fn forward<E: GemmElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
    by_image: bool,
) {
    let positions = s.out_h() * s.out_w();
    let (in_image, out_image) = (s.in_channels * s.in_h * s.in_w, s.out_channels * positions);
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let group_in = icg * s.in_h * s.in_w;
    let w_g = |g: usize| MatRef::new(&weight[g * ocg * k..(g + 1) * ocg * k], k, 1);
    let packed = pack_weights_per_group(level, s, (ocg, k, positions), w_g);
    let image = |n: usize, out_n: &mut [E]| {
        let mut scratch = Scratch::take();
        let col = scratch.slice::<E>(if is_pointwise(s) { 0 } else { k * positions });
        for g in 0..s.groups {
            let x = &input[n * in_image + g * group_in..];
            let cols: &[E] = if is_pointwise(s) {
                &x[..group_in]
            } else {
                im2col(s, &x[..group_in], col, positions);
                col
            };
            let out_g = &mut out_n[g * ocg * positions..(g + 1) * ocg * positions];
            let bias_g = bias.map(|b| (&b[g * ocg..(g + 1) * ocg], BiasAxis::Row));
            let product = Problem {
                bias: bias_g,
                parallel: !by_image,
                ..Problem::product(ocg, k, positions, w_g(g), MatRef::new(cols, positions, 1))
            };
            let out_g = MatMut::new(out_g, positions, 1);
            gemm_typed(level, product, out_g, packed[g].as_ref());
        }
    };
    for_each_chunk(&mut out[..s.batch * out_image], out_image, by_image, image);
}

/// `grad_input = col2im(Wᵀ · grad_out)`, image by image.
pub(crate) fn backward_data_col2im<E: GemmElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    grad_out: &[E],
    weight: &[E],
    grad_input: &mut [E],
    by_image: bool,
) {
    let positions = s.out_h() * s.out_w();
    let (in_image, out_image) = (s.in_channels * s.in_h * s.in_w, s.out_channels * positions);
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let group_in = icg * s.in_h * s.in_w;
    // W_gᵀ (K × OCg), read transposed in place; the same for every image.
    let w_t = |g: usize| MatRef::new(&weight[g * ocg * k..(g + 1) * ocg * k], 1, k);
    let packed = pack_weights_per_group(level, s, (k, ocg, positions), w_t);
    let image = |n: usize, dx_n: &mut [E]| {
        let mut scratch = Scratch::take();
        let pointwise = is_pointwise(s);
        let dcol = scratch.slice::<E>(if pointwise { 0 } else { k * positions });
        for g in 0..s.groups {
            let dy = &grad_out[n * out_image + g * ocg * positions..][..ocg * positions];
            let dx_g = &mut dx_n[g * group_in..(g + 1) * group_in];
            // dcol = W_gᵀ · dy.
            let target: &mut [E] = if pointwise { &mut *dx_g } else { &mut *dcol };
            let product = Problem {
                parallel: !by_image,
                ..Problem::product(k, ocg, positions, w_t(g), MatRef::new(dy, positions, 1))
            };
            let target = MatMut::new(target, positions, 1);
            gemm_typed(level, product, target, packed[g].as_ref());
            if !pointwise {
                // col2im adds every tap's share; positions no tap reads stay zero.
                dx_g.fill(E::ZERO);
                col2im_add(s, dcol, dx_g);
            }
        }
    };
    for_each_chunk(
        &mut grad_input[..s.batch * in_image],
        in_image,
        by_image,
        image,
    );
}

/// Overwrites `dw` with the weight gradient of images `range`, as
/// `dy · colᵀ` dot products over output positions (several small images
/// joined into one dot-product length).
pub(crate) fn weight_im2col<E: DotElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    range: Range<usize>,
    dw: &mut [E],
) {
    let positions = s.out_h() * s.out_w();
    let (in_image, out_image) = (s.in_channels * s.in_h * s.in_w, s.out_channels * positions);
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let group_in = icg * s.in_h * s.in_w;
    // Images whose positions are joined into one dot-product length, so
    // that small feature maps still give long dot products.
    let joined = DOT_MIN_LEN.div_ceil(positions).clamp(1, s.batch);
    let len = joined * positions;
    let mut col_scratch = Scratch::take();
    let mut dy_scratch = Scratch::take();
    let col = col_scratch.slice::<E>(k * len);
    let dy = dy_scratch.slice::<E>(ocg * len);
    let first = range.start;
    for start in range.clone().step_by(joined) {
        let images = start..(start + joined).min(range.end);
        let len = images.len() * positions;
        for g in 0..s.groups {
            for (t, n) in images.clone().enumerate() {
                let x = &input[n * in_image + g * group_in..][..group_in];
                im2col(s, x, &mut col[t * positions..], len);
                for oc in 0..ocg {
                    let src = &grad_out[n * out_image + (g * ocg + oc) * positions..][..positions];
                    dy[oc * len + t * positions..][..positions].copy_from_slice(src);
                }
            }
            // dW_g (+)= dy · colᵀ: both run along output positions.
            let product = AbtProblem {
                m: ocg,
                n: k,
                k: len,
                a: dy,
                lda: len,
                b: col,
                b_rows: BRows::Strided(len),
                accumulate: start != first,
            };
            gemm_abt(level, product, &mut dw[g * ocg * k..(g + 1) * ocg * k], k);
        }
    }
}

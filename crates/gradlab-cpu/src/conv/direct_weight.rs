//! Weight gradient of unpadded stride-1 convolutions without im2col, for
//! layers with enough output channels to fill a vector (LeNet's second layer).
//!
//! `dW[oc, c, kh, kw] = Σ dy[n, oc, oh, ow] · x[n, c, oh + kh, ow + kw]`.
//! Vectorised over output channels, every term is one FMA of the output
//! gradient at a position (all channels, one vector, from a transposed copy)
//! with one broadcast input value read straight from the image: no column
//! matrix is built, no lane is wasted past a row's end, and the sums stay
//! in vector lanes (no horizontal reductions). The `KW` taps of one kernel
//! row of one input channel are held in registers while a whole image
//! streams past them. (Blocks of several kernel rows would reuse each
//! gradient load more, but the compiler then stops keeping the sums in
//! registers.)

use crate::scratch::{PlainData, Scratch};
use crate::simd::{SimdKind, SimdLevel};
use crate::{Conv2dShape, Float};
use std::ops::Range;

/// Whether this path takes the weight gradient of `s` at `level`: stride 1,
/// no padding or dilation, one group, a kernel width it is compiled for,
/// and at least half of the output-channel lanes useful.
pub(crate) fn suits<E>(s: &Conv2dShape, level: SimdLevel) -> bool {
    let lanes = lanes::<E>(level);
    s.stride == (1, 1)
        && s.padding == (0, 0)
        && s.dilation == (1, 1)
        && s.groups == 1
        && matches!(s.kernel_w, 3 | 5 | 7)
        && s.out_h() > 0
        && s.out_w() > 0
        && 2 * s.out_channels >= s.out_channels.div_ceil(lanes) * lanes
}

/// Output channels per vector at `level`.
fn lanes<E>(level: SimdLevel) -> usize {
    let bytes = match level.kind() {
        SimdKind::Avx512 => 64,
        SimdKind::Avx2 => 32,
        SimdKind::Scalar => 16,
    };
    bytes / std::mem::size_of::<E>()
}

/// Overwrites `dw` with the weight gradient summed over `images`, for a
/// shape where [`suits`] holds.
pub(crate) fn accumulate<E: Float + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    images: Range<usize>,
    dw: &mut [E],
) {
    let wide = std::mem::size_of::<E>() == 4;
    macro_rules! by_width {
        ($l:literal) => {
            match s.kernel_w {
                3 => run::<E, $l, 3>(level, s, input, grad_out, images, dw),
                5 => run::<E, $l, 5>(level, s, input, grad_out, images, dw),
                _ => run::<E, $l, 7>(level, s, input, grad_out, images, dw),
            }
        };
    }
    match (level.kind(), wide) {
        (SimdKind::Avx512, true) => by_width!(16),
        (SimdKind::Avx512, false) | (SimdKind::Avx2, true) => by_width!(8),
        (SimdKind::Avx2, false) | (SimdKind::Scalar, true) => by_width!(4),
        (SimdKind::Scalar, false) => by_width!(2),
    }
}

fn run<E: Float + PlainData, const L: usize, const KW: usize>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    images: Range<usize>,
    dw: &mut [E],
) {
    debug_assert_eq!(s.kernel_w, KW);
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let positions = out_h * out_w;
    let plane = s.in_h * s.in_w;
    let in_image = s.in_channels * plane;
    let out_image = s.out_channels * positions;
    let oc_padded = s.out_channels.div_ceil(L) * L;
    let taps = s.in_channels * s.kernel_h * KW;
    let mut dy_scratch = Scratch::take();
    let mut acc_scratch = Scratch::take();
    // Output gradient of one image as [position][channel]; the padding
    // channels stay zero.
    let dy_t = dy_scratch.slice::<E>(positions * oc_padded);
    // Running sums as [tap][channel].
    let acc = acc_scratch.slice::<E>(taps * oc_padded);
    dy_t.fill(E::ZERO);
    acc.fill(E::ZERO);
    let geometry = Geometry {
        in_w: s.in_w,
        out_h,
        out_w,
        oc_padded,
    };
    for n in images {
        let dy = &grad_out[n * out_image..][..out_image];
        for (oc, channel) in dy.chunks_exact(positions).enumerate() {
            for (p, v) in channel.iter().enumerate() {
                dy_t[p * oc_padded + oc] = *v;
            }
        }
        for c in 0..s.in_channels {
            let x = &input[n * in_image + c * plane..][..plane];
            for kh in 0..s.kernel_h {
                for ob in (0..oc_padded).step_by(L) {
                    let first_tap = (c * s.kernel_h + kh) * KW;
                    let block = Block {
                        x: &x[kh * s.in_w..],
                        dy_t,
                        ob,
                        acc: &mut acc[first_tap * oc_padded..],
                    };
                    block_at::<E, L, KW>(level, &geometry, block)
                }
            }
        }
    }
    for (oc, dst) in dw.chunks_exact_mut(taps).take(s.out_channels).enumerate() {
        for (t, d) in dst.iter_mut().enumerate() {
            *d = acc[t * oc_padded + oc];
        }
    }
}

/// Sizes shared by every block of one problem.
struct Geometry {
    in_w: usize,
    out_h: usize,
    out_w: usize,
    oc_padded: usize,
}

/// One register block: input channel plane from the block's kernel row,
/// the transposed output gradient, the first channel of the block and the
/// running sums from the block's first tap.
struct Block<'a, E> {
    x: &'a [E],
    dy_t: &'a [E],
    ob: usize,
    acc: &'a mut [E],
}

/// One register block, compiled for `level`'s instructions.
fn block_at<E: Float, const L: usize, const KW: usize>(
    level: SimdLevel,
    g: &Geometry,
    b: Block<'_, E>,
) {
    match level.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a level of this kind proves AVX-512F (see `crate::simd`).
        SimdKind::Avx512 => unsafe { block_avx512::<E, L, KW>(g, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a level of this kind proves AVX2 and FMA.
        SimdKind::Avx2 => unsafe { block_avx2::<E, L, KW>(g, b) },
        _ => block::<E, L, KW, false>(g, b),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn block_avx512<E: Float, const L: usize, const KW: usize>(g: &Geometry, b: Block<'_, E>) {
    block::<E, L, KW, true>(g, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn block_avx2<E: Float, const L: usize, const KW: usize>(g: &Geometry, b: Block<'_, E>) {
    block::<E, L, KW, true>(g, b)
}

/// The loop nest every level shares; `FMA` says whether `mul_add` is a
/// hardware instruction here (without FMA it is a slow library call).
#[inline(always)]
fn block<E: Float, const L: usize, const KW: usize, const FMA: bool>(
    g: &Geometry,
    b: Block<'_, E>,
) {
    let ocp = g.oc_padded;
    let mut regs = [[E::ZERO; L]; KW];
    for (kw, lanes) in regs.iter_mut().enumerate() {
        lanes.copy_from_slice(&b.acc[kw * ocp + b.ob..][..L]);
    }
    for oh in 0..g.out_h {
        let x_row = &b.x[oh * g.in_w..][..g.out_w + KW - 1];
        let dy_row = &b.dy_t[oh * g.out_w * ocp..][..g.out_w * ocp];
        for ow in 0..g.out_w {
            let d: &[E; L] = dy_row[ow * ocp + b.ob..][..L].try_into().expect("L lanes");
            let xs: &[E; KW] = x_row[ow..ow + KW].try_into().expect("KW taps");
            for (lanes, &xv) in regs.iter_mut().zip(xs) {
                for (a, &dv) in lanes.iter_mut().zip(d) {
                    *a = if FMA {
                        xv.mul_add(dv, *a)
                    } else {
                        *a + xv * dv
                    };
                }
            }
        }
    }
    for (kw, lanes) in regs.iter().enumerate() {
        b.acc[kw * ocp + b.ob..][..L].copy_from_slice(lanes);
    }
}

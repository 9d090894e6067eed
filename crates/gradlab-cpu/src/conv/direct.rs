//! Direct convolution for stride-1 layers with few taps per output
//! (few input channels, small kernels: LeNet's first layer).
//!
//! There im2col would copy every input value `KH·KW` times to feed a GEMM
//! with only a handful of rows, so the copy costs as much as the arithmetic.
//! Instead each output row is computed in registers: a block of `OB` output
//! channels × `CW` consecutive columns is accumulated over all taps, reading
//! the input row at the tap's offset (from a zero-padded copy of the image,
//! so that the inner loop has no bounds to check) and broadcasting one
//! weight per output channel. The loop body is plain Rust over fixed-size
//! arrays; each SIMD level compiles it with its own target features and a
//! block size that keeps the accumulators in that level's registers.

use crate::parallel::for_each_chunk;
use crate::scratch::{PlainData, Scratch};
use crate::simd::{SimdKind, SimdLevel};
use crate::{Conv2dShape, Float};

/// Whether the direct path beats im2col + GEMM for this shape: stride 1,
/// few enough taps and channels to stay in registers, and most computed
/// lanes useful (the padded-grid columns past each output row, the last
/// partial block of lanes and the padding of the last channel block are
/// computed and dropped).
pub(crate) fn suits(s: &Conv2dShape, level: SimdLevel) -> bool {
    let (cw, ob) = (
        block_width(level),
        if level.kind() == SimdKind::Scalar {
            4
        } else {
            6
        },
    );
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let pw = s.in_w + 2 * s.padding.1;
    let span = out_h * pw;
    if s.stride != (1, 1) || s.dilation != (1, 1) || s.groups != 1 || span == 0 {
        return false;
    }
    let useful = (out_w * out_h * s.out_channels) as f64;
    let computed = (span.div_ceil(cw) * cw * s.out_channels.div_ceil(ob) * ob) as f64;
    s.in_channels * s.kernel_h * s.kernel_w <= 450
        && s.out_channels <= 32
        && useful >= 0.4 * computed
}

/// The lane multiply-adds the kernel computes per image, if it takes `s`
/// (lanes on the padded grid and padded output-channel blocks included).
pub(crate) fn computed_lanes(s: &Conv2dShape, level: SimdLevel) -> Option<f64> {
    if !suits(s, level) {
        return None;
    }
    let (cw, ob) = (
        block_width(level),
        if level.kind() == SimdKind::Scalar {
            4
        } else {
            6
        },
    );
    let span = s.out_h() * (s.in_w + 2 * s.padding.1);
    let taps = s.in_channels * s.kernel_h * s.kernel_w;
    Some((span.div_ceil(cw) * cw * s.out_channels.div_ceil(ob) * ob * taps) as f64)
}

/// Output columns per block at `level` (for f32; f64 blocks are half as wide).
fn block_width(level: SimdLevel) -> usize {
    match level.kind() {
        SimdKind::Avx512 => 32,
        SimdKind::Avx2 => 16,
        SimdKind::Scalar => 8,
    }
}

/// `out = conv(input, weight) + bias` for a shape where [`suits`] holds.
pub(crate) fn forward<E: Float + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
    parallel: bool,
) {
    let wide = std::mem::size_of::<E>() == 4;
    // Three output channels or fewer (LeNet's first input gradient): half as
    // many channel rows, twice as many lanes, the same accumulator count.
    let few = s.out_channels <= 3;
    match (level.kind(), wide, few) {
        #[cfg(target_arch = "x86_64")]
        (SimdKind::Avx512, true, false) => {
            run::<E, 6, 32>(level, s, input, weight, bias, out, parallel)
        }
        #[cfg(target_arch = "x86_64")]
        (SimdKind::Avx512, true, true) => {
            run::<E, 3, 64>(level, s, input, weight, bias, out, parallel)
        }
        #[cfg(target_arch = "x86_64")]
        (SimdKind::Avx512, false, false) | (SimdKind::Avx2, true, false) => {
            run::<E, 6, 16>(level, s, input, weight, bias, out, parallel)
        }
        #[cfg(target_arch = "x86_64")]
        (SimdKind::Avx512, false, true) | (SimdKind::Avx2, true, true) => {
            run::<E, 3, 32>(level, s, input, weight, bias, out, parallel)
        }
        #[cfg(target_arch = "x86_64")]
        (SimdKind::Avx2, false, false) => {
            run::<E, 6, 8>(level, s, input, weight, bias, out, parallel)
        }
        #[cfg(target_arch = "x86_64")]
        (SimdKind::Avx2, false, true) => {
            run::<E, 3, 16>(level, s, input, weight, bias, out, parallel)
        }
        _ => run::<E, 4, 8>(SimdLevel::SCALAR, s, input, weight, bias, out, parallel),
    }
}

/// Geometry shared by every row of one problem.
struct Plan {
    taps: usize,
    /// Output channels rounded up to whole blocks (weights are zero-padded).
    oc_padded: usize,
    padded_w: usize,
    padded_plane: usize,
    /// Padded image length plus slack for the last block's overhanging reads.
    padded_len: usize,
}

fn run<E: Float + PlainData, const OB: usize, const CW: usize>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
    parallel: bool,
) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let taps = s.in_channels * s.kernel_h * s.kernel_w;
    let oc_padded = s.out_channels.div_ceil(OB) * OB;
    let padded_w = s.in_w + 2 * s.padding.1;
    let padded_h = s.in_h + 2 * s.padding.0;
    let plan = Plan {
        taps,
        oc_padded,
        padded_w,
        padded_plane: padded_h * padded_w,
        padded_len: s.in_channels * padded_h * padded_w + CW + s.kernel_w,
    };
    // Weights as [tap][oc], so that one tap's OB weights are adjacent.
    let mut w_scratch = Scratch::take();
    let wt = w_scratch.slice::<E>(taps * oc_padded);
    wt.fill(E::ZERO);
    for oc in 0..s.out_channels {
        for t in 0..taps {
            wt[t * oc_padded + oc] = weight[oc * taps + t];
        }
    }
    let wt = &*wt;
    let in_image = s.in_channels * s.in_h * s.in_w;
    let pw = plan.padded_w;
    // Output positions are computed on the padded grid (row width `pw`), so
    // that a block of CW consecutive lanes may span several output rows and
    // every tap reads CW consecutive inputs; lanes past `out_w` are dropped.
    let span = out_h * pw;
    let out_image = s.out_channels * out_h * out_w;
    let image = |n: usize, out_n: &mut [E]| {
        let mut scratch = Scratch::take();
        let padded = scratch.slice::<E>(plan.padded_len);
        pad_image(
            s,
            &input[n * in_image..(n + 1) * in_image],
            padded,
            plan.padded_w,
        );
        for ob in (0..s.out_channels).step_by(OB) {
            for q0 in (0..span).step_by(CW) {
                let mut acc = [[E::ZERO; CW]; OB];
                accumulate_block::<E, OB, CW>(level, s, &plan, padded, &wt[ob..], q0, &mut acc);
                // Keep the lanes that land on real output columns.
                let q_end = (q0 + CW).min(span);
                let mut q = q0;
                while q < q_end {
                    let (oh, ow) = (q / pw, q % pw);
                    if ow < out_w {
                        let len = (q - ow + out_w).min(q_end) - q;
                        for (o, acc) in acc.iter().enumerate().take(s.out_channels - ob) {
                            let b = bias.map_or(E::ZERO, |b| b[ob + o]);
                            let dst = &mut out_n[((ob + o) * out_h + oh) * out_w + ow..][..len];
                            for (d, a) in dst.iter_mut().zip(&acc[q - q0..]) {
                                *d = *a + b;
                            }
                        }
                    }
                    q += pw - ow;
                }
            }
        }
    };
    for_each_chunk(&mut out[..s.batch * out_image], out_image, parallel, image);
}

/// Copies one image into a zero-bordered buffer with rows `padded_w` long.
fn pad_image<E: Float>(s: &Conv2dShape, image: &[E], padded: &mut [E], padded_w: usize) {
    padded.fill(E::ZERO);
    let padded_h = s.in_h + 2 * s.padding.0;
    for c in 0..s.in_channels {
        for h in 0..s.in_h {
            let src = &image[(c * s.in_h + h) * s.in_w..][..s.in_w];
            let at = (c * padded_h + h + s.padding.0) * padded_w + s.padding.1;
            padded[at..at + s.in_w].copy_from_slice(src);
        }
    }
}

/// Sums all taps into `acc` for output block starting at padded offset `origin`.
fn accumulate_block<E: Float, const OB: usize, const CW: usize>(
    level: SimdLevel,
    s: &Conv2dShape,
    plan: &Plan,
    padded: &[E],
    wt: &[E],
    origin: usize,
    acc: &mut [[E; CW]; OB],
) {
    match level.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a level of this kind proves AVX-512F (see `crate::simd`).
        SimdKind::Avx512 => unsafe {
            accumulate_avx512::<E, OB, CW>(s, plan, padded, wt, origin, acc)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a level of this kind proves AVX2 and FMA.
        SimdKind::Avx2 => unsafe { accumulate_avx2::<E, OB, CW>(s, plan, padded, wt, origin, acc) },
        _ => accumulate::<E, OB, CW, false>(s, plan, padded, wt, origin, acc),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn accumulate_avx512<E: Float, const OB: usize, const CW: usize>(
    s: &Conv2dShape,
    plan: &Plan,
    padded: &[E],
    wt: &[E],
    origin: usize,
    acc: &mut [[E; CW]; OB],
) {
    accumulate::<E, OB, CW, true>(s, plan, padded, wt, origin, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn accumulate_avx2<E: Float, const OB: usize, const CW: usize>(
    s: &Conv2dShape,
    plan: &Plan,
    padded: &[E],
    wt: &[E],
    origin: usize,
    acc: &mut [[E; CW]; OB],
) {
    accumulate::<E, OB, CW, true>(s, plan, padded, wt, origin, acc)
}

/// The loop nest every level shares; `FMA` says whether `mul_add` is a
/// hardware instruction here (without FMA it is a slow library call).
#[inline(always)]
fn accumulate<E: Float, const OB: usize, const CW: usize, const FMA: bool>(
    s: &Conv2dShape,
    plan: &Plan,
    padded: &[E],
    wt: &[E],
    origin: usize,
    acc: &mut [[E; CW]; OB],
) {
    let mut regs = *acc;
    let mut tap = 0;
    for c in 0..s.in_channels {
        for kh in 0..s.kernel_h {
            let row = origin + c * plan.padded_plane + kh * plan.padded_w;
            for kw in 0..s.kernel_w {
                let x: &[E; CW] = padded[row + kw..row + kw + CW]
                    .try_into()
                    .expect("CW values");
                let w: &[E] = &wt[tap * plan.oc_padded..tap * plan.oc_padded + OB];
                for (o, r) in regs.iter_mut().enumerate() {
                    let wo = w[o];
                    for (r, &xv) in r.iter_mut().zip(x) {
                        *r = if FMA {
                            wo.mul_add(xv, *r)
                        } else {
                            *r + wo * xv
                        };
                    }
                }
                tap += 1;
            }
        }
    }
    debug_assert_eq!(tap, plan.taps);
    *acc = regs;
}

//! Fast 2-D convolution (NCHW), forward and both gradients, as im2col + GEMM.
//!
//! Per image and channel group the convolution is one matrix product:
//! `out_g (OCg × P) = W_g (OCg × K) · col (K × P)` with `K = ICg·KH·KW` taps
//! and `P = OH·OW` positions. The gradients are the two other products of
//! the same three matrices:
//! `dcol = W_gᵀ · dout_g` (folded back by col2im) and `dW_g += dout_g · colᵀ`.
//! Column matrices live in reused per-thread scratch buffers, and a 1×1,
//! stride-1, unpadded convolution skips them (its column matrix is the input).
//!
//! Work is spread over images when the batch can feed every thread (the
//! GEMMs then run serially), otherwise inside each GEMM. The weight gradient
//! sums images in fixed chunks combined in a fixed order, so results do not
//! depend on the thread count. Reference twins: [`crate::reference`].

mod im2col;

use crate::gemm::{cast_slice, cast_slice_mut, gemm_typed, BiasAxis, GemmElement};
use crate::scratch::{PlainData, Scratch};
use crate::simd::{simd_level, SimdLevel};
use crate::{Conv2dShape, Float};
use im2col::{col2im_add, im2col};
use rayon::prelude::*;

/// Images per partial sum of the weight gradient (fixed, for determinism).
const WEIGHT_GRAD_CHUNK: usize = 4;

fn check_shape(op: &str, s: &Conv2dShape) {
    assert!(
        s.groups > 0
            && s.in_channels.is_multiple_of(s.groups)
            && s.out_channels.is_multiple_of(s.groups)
            && s.stride.0 > 0
            && s.stride.1 > 0
            && s.dilation.0 > 0
            && s.dilation.1 > 0
            && s.kernel_h > 0
            && s.kernel_w > 0,
        "{op}: invalid shape {s:?} (groups must divide both channel counts; strides, dilations and kernel sizes must be positive)"
    );
}

fn check_len(op: &str, what: &str, got: usize, want: usize, s: &Conv2dShape) {
    assert!(
        got >= want,
        "{op}: {what} has {got} elements, shape {s:?} needs {want}"
    );
}

/// Whether the column matrix of one group equals the group's input planes.
fn is_pointwise(s: &Conv2dShape) -> bool {
    s.kernel_h == 1
        && s.kernel_w == 1
        && s.stride == (1, 1)
        && s.padding == (0, 0)
        && s.out_h() == s.in_h
        && s.out_w() == s.in_w
}

/// Rows of the column matrix of one group.
fn taps(s: &Conv2dShape) -> usize {
    s.in_per_group() * s.kernel_h * s.kernel_w
}

/// Splits the batch over threads only when there are enough images.
fn batch_parallel(s: &Conv2dShape) -> bool {
    let threads = rayon::current_num_threads();
    threads > 1 && s.batch >= 2 * threads
}

macro_rules! dispatch_f32_f64 {
    ($generic:ident :: <$t:ty>, ($($arg:expr),*), [$($cast:ident),*], [$($cast_mut:ident),*], [$($opt:ident),*]) => {{
        fn typed<T: Float, E: GemmElement + PlainData>(level: SimdLevel, s: &Conv2dShape, $($cast: &[T],)* $($opt: Option<&[T]>,)* $($cast_mut: &mut [T],)*) -> Option<()> {
            $(let $cast = cast_slice::<T, E>($cast)?;)*
            $(let $opt = match $opt { Some(v) => Some(cast_slice::<T, E>(v)?), None => None };)*
            $(let $cast_mut = cast_slice_mut::<T, E>($cast_mut)?;)*
            $generic::<E>(level, s, $($cast,)* $($opt,)* $($cast_mut,)*);
            Some(())
        }
        let level = simd_level();
        typed::<$t, f32>(level, $($arg),*).or_else(|| typed::<$t, f64>(level, $($arg),*))
    }};
}

/// Convolution forward: `out[n, oc] = bias[oc] + Σ weight · input` (PyTorch
/// semantics for stride, padding, dilation and groups). Same contract as
/// [`crate::reference::conv2d_forward`].
///
/// # Panics
/// On an invalid shape or slices shorter than the shape needs.
pub fn conv2d_forward<T: Float>(
    s: &Conv2dShape,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let op = "conv2d_forward";
    check_shape(op, s);
    check_len(op, "input", input.len(), s.input_len(), s);
    check_len(op, "weight", weight.len(), s.weight_len(), s);
    check_len(op, "out", out.len(), s.output_len(), s);
    if let Some(b) = bias {
        check_len(op, "bias", b.len(), s.out_channels, s);
    }
    let done = dispatch_f32_f64!(
        forward::<T>,
        (s, input, weight, bias, out),
        [input, weight],
        [out],
        [bias]
    );
    if done.is_none() {
        crate::reference::conv2d_forward(s, input, weight, bias, out);
    }
}

fn forward<E: GemmElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
) {
    let positions = s.out_h() * s.out_w();
    let (in_image, out_image) = (s.in_channels * s.in_h * s.in_w, s.out_channels * positions);
    if positions == 0 || s.batch == 0 {
        return;
    }
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let group_in = icg * s.in_h * s.in_w;
    let by_image = batch_parallel(s);
    let image = |(n, out_n): (usize, &mut [E])| {
        let mut scratch = Scratch::take();
        let col = scratch.slice::<E>(if is_pointwise(s) { 0 } else { k * positions });
        for g in 0..s.groups {
            let x = &input[n * in_image + g * group_in..];
            let cols: &[E] = if is_pointwise(s) {
                &x[..group_in]
            } else {
                im2col(s, &x[..group_in], col);
                col
            };
            gemm_typed(
                level,
                ocg,
                k,
                positions,
                E::ONE,
                (&weight[g * ocg * k..(g + 1) * ocg * k], k, 1),
                (cols, positions, 1),
                E::ZERO,
                (
                    &mut out_n[g * ocg * positions..(g + 1) * ocg * positions],
                    positions,
                    1,
                ),
                bias.map(|b| (&b[g * ocg..(g + 1) * ocg], BiasAxis::Row)),
                false,
                !by_image,
            );
        }
    };
    let out = &mut out[..s.batch * out_image];
    if by_image {
        out.par_chunks_mut(out_image).enumerate().for_each(image);
    } else {
        out.chunks_mut(out_image).enumerate().for_each(image);
    }
}

/// Gradient with respect to the input (overwrites `grad_input`). Same
/// contract as [`crate::reference::conv2d_backward_data`].
///
/// # Panics
/// On an invalid shape or slices shorter than the shape needs.
pub fn conv2d_backward_data<T: Float>(
    s: &Conv2dShape,
    grad_out: &[T],
    weight: &[T],
    grad_input: &mut [T],
) {
    let op = "conv2d_backward_data";
    check_shape(op, s);
    check_len(op, "grad_out", grad_out.len(), s.output_len(), s);
    check_len(op, "weight", weight.len(), s.weight_len(), s);
    check_len(op, "grad_input", grad_input.len(), s.input_len(), s);
    let done = dispatch_f32_f64!(
        backward_data::<T>,
        (s, grad_out, weight, grad_input),
        [grad_out, weight],
        [grad_input],
        []
    );
    if done.is_none() {
        crate::reference::conv2d_backward_data(s, grad_out, weight, grad_input);
    }
}

fn backward_data<E: GemmElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    grad_out: &[E],
    weight: &[E],
    grad_input: &mut [E],
) {
    let positions = s.out_h() * s.out_w();
    let (in_image, out_image) = (s.in_channels * s.in_h * s.in_w, s.out_channels * positions);
    let grad_input = &mut grad_input[..s.batch * in_image];
    if positions == 0 || s.batch == 0 {
        grad_input.fill(E::ZERO);
        return;
    }
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let group_in = icg * s.in_h * s.in_w;
    let by_image = batch_parallel(s);
    let image = |(n, dx_n): (usize, &mut [E])| {
        let mut scratch = Scratch::take();
        let pointwise = is_pointwise(s);
        let dcol = scratch.slice::<E>(if pointwise { 0 } else { k * positions });
        for g in 0..s.groups {
            let dy = &grad_out[n * out_image + g * ocg * positions..][..ocg * positions];
            let w_g = &weight[g * ocg * k..(g + 1) * ocg * k];
            let dx_g = &mut dx_n[g * group_in..(g + 1) * group_in];
            // dcol = W_gᵀ · dy: W_gᵀ is K × OCg, read transposed in place.
            let target: &mut [E] = if pointwise { &mut *dx_g } else { &mut *dcol };
            gemm_typed(
                level,
                k,
                ocg,
                positions,
                E::ONE,
                (w_g, 1, k),
                (dy, positions, 1),
                E::ZERO,
                (target, positions, 1),
                None,
                false,
                !by_image,
            );
            if !pointwise {
                dx_g.fill(E::ZERO);
                col2im_add(s, dcol, dx_g);
            }
        }
    };
    if by_image {
        grad_input
            .par_chunks_mut(in_image)
            .enumerate()
            .for_each(image);
    } else {
        grad_input.chunks_mut(in_image).enumerate().for_each(image);
    }
}

/// Gradient with respect to the weight (overwrites `grad_weight`). Same
/// contract as [`crate::reference::conv2d_backward_weight`].
///
/// # Panics
/// On an invalid shape or slices shorter than the shape needs.
pub fn conv2d_backward_weight<T: Float>(
    s: &Conv2dShape,
    input: &[T],
    grad_out: &[T],
    grad_weight: &mut [T],
) {
    let op = "conv2d_backward_weight";
    check_shape(op, s);
    check_len(op, "input", input.len(), s.input_len(), s);
    check_len(op, "grad_out", grad_out.len(), s.output_len(), s);
    check_len(op, "grad_weight", grad_weight.len(), s.weight_len(), s);
    let done = dispatch_f32_f64!(
        backward_weight::<T>,
        (s, input, grad_out, grad_weight),
        [input, grad_out],
        [grad_weight],
        []
    );
    if done.is_none() {
        crate::reference::conv2d_backward_weight(s, input, grad_out, grad_weight);
    }
}

fn backward_weight<E: GemmElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    grad_weight: &mut [E],
) {
    let positions = s.out_h() * s.out_w();
    let (in_image, out_image) = (s.in_channels * s.in_h * s.in_w, s.out_channels * positions);
    let weight_len = s.weight_len();
    let grad_weight = &mut grad_weight[..weight_len];
    if positions == 0 || s.batch == 0 {
        grad_weight.fill(E::ZERO);
        return;
    }
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let group_in = icg * s.in_h * s.in_w;
    let chunks = s.batch.div_ceil(WEIGHT_GRAD_CHUNK);
    let by_chunk = chunks > 1 && rayon::current_num_threads() > 1;
    // Sums images first..last into `dw` (overwriting it).
    let accumulate = |images: std::ops::Range<usize>, dw: &mut [E]| {
        let mut scratch = Scratch::take();
        let pointwise = is_pointwise(s);
        let col = scratch.slice::<E>(if pointwise { 0 } else { k * positions });
        let first = images.start;
        for n in images {
            for g in 0..s.groups {
                let x = &input[n * in_image + g * group_in..][..group_in];
                let cols: &[E] = if pointwise {
                    x
                } else {
                    im2col(s, x, col);
                    col
                };
                let dy = &grad_out[n * out_image + g * ocg * positions..][..ocg * positions];
                // dW_g (+)= dy · colᵀ: colᵀ is P × K, read transposed in place.
                gemm_typed(
                    level,
                    ocg,
                    positions,
                    k,
                    E::ONE,
                    (dy, positions, 1),
                    (cols, 1, positions),
                    if n == first { E::ZERO } else { E::ONE },
                    (&mut dw[g * ocg * k..(g + 1) * ocg * k], k, 1),
                    None,
                    false,
                    !by_chunk,
                );
            }
        }
    };
    if chunks == 1 {
        return accumulate(0..s.batch, grad_weight);
    }
    let mut partial_scratch = Scratch::take();
    let partials = partial_scratch.slice::<E>(chunks * weight_len);
    let run_chunk = |(i, dw): (usize, &mut [E])| {
        let first = i * WEIGHT_GRAD_CHUNK;
        accumulate(first..(first + WEIGHT_GRAD_CHUNK).min(s.batch), dw);
    };
    if by_chunk {
        partials
            .par_chunks_mut(weight_len)
            .enumerate()
            .for_each(run_chunk);
    } else {
        partials
            .chunks_mut(weight_len)
            .enumerate()
            .for_each(run_chunk);
    }
    grad_weight.copy_from_slice(&partials[..weight_len]);
    for partial in partials.chunks(weight_len).skip(1) {
        for (d, p) in grad_weight.iter_mut().zip(partial) {
            *d += *p;
        }
    }
}

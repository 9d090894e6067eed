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

mod channels_last;
mod direct;
mod direct_weight;
mod im2col;

use crate::gemm::{
    cast_slice, cast_slice_mut, gemm_abt, gemm_typed, pack_a_typed, AbtProblem, BRows, BiasAxis,
    DotElement, GemmElement, MatMut, MatRef, PackedA, Problem,
};
use crate::parallel::for_each_chunk;
use crate::scratch::{PlainData, Scratch};
use crate::simd::{simd_level, SimdLevel};
use crate::{Conv2dShape, Float};
use im2col::{col2im_add, im2col};

/// Partial sums of the weight gradient, each over consecutive images,
/// added in order at the end. Fixed (not the thread count) so that results
/// do not depend on the number of threads.
const WEIGHT_GRAD_PARTIALS: usize = 8;
/// Shortest dot product worth a call of the dot-product kernel: its
/// horizontal sums and edge work are amortised over this many terms.
const DOT_MIN_LEN: usize = 384;

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

/// Each group's weights (`m×k`, as `weights(g)` gives them) packed once
/// for the per-image products with `n` columns: every image multiplies by
/// the same matrix. Nothing is packed for a single image (its one product
/// packs as it goes) or where the product would not use the packing.
fn pack_weights_per_group<'w, E: GemmElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    mkn: (usize, usize, usize),
    weights: impl Fn(usize) -> MatRef<'w, E>,
) -> Vec<Option<PackedA<E>>> {
    (0..s.groups)
        .map(|g| {
            if s.batch > 1 {
                pack_a_typed(level, mkn, weights(g))
            } else {
                None
            }
        })
        .collect()
}

/// Rows of the column matrix of one group.
fn taps(s: &Conv2dShape) -> usize {
    s.in_per_group() * s.kernel_h * s.kernel_w
}

/// Splits the batch over threads only when there are enough images.
fn batch_parallel(s: &Conv2dShape) -> bool {
    let threads = rayon::current_num_threads();
    crate::parallel::worth_parallel(s.flops()) && s.batch >= 2 * threads
}

macro_rules! dispatch_f32_f64 {
    ($generic:ident :: <$t:ty>, ($($arg:expr),*), [$($cast:ident),*], [$($cast_mut:ident),*], [$($opt:ident),*]) => {{
        fn typed<T: Float, E: GemmElement + DotElement + PlainData>(level: SimdLevel, s: &Conv2dShape, $($cast: &[T],)* $($opt: Option<&[T]>,)* $($cast_mut: &mut [T],)*) -> Option<()> {
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

fn forward<E: GemmElement + DotElement + PlainData>(
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
    let by_image = batch_parallel(s);
    if direct::suits(s, level) {
        return direct::forward(level, s, input, weight, bias, out, by_image);
    }
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

fn backward_data<E: GemmElement + DotElement + PlainData>(
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
    // Unless the direct kernel takes it, the transposed form pays for an
    // im2col of the padded output gradient: only worth it when that column
    // matrix is not much larger than the one col2im would fold back.
    let transposed = transposed_shape(s).filter(|t| {
        direct::suits(t, level) || 4 * taps(t) * t.out_h() * t.out_w() <= 5 * taps(s) * positions
    });
    if let Some(transposed) = transposed {
        // Stride 1: the input gradient is the forward convolution of the
        // output gradient with the flipped, channel-swapped kernel.
        let mut scratch = Scratch::take();
        let flipped = scratch.slice::<E>(s.weight_len());
        flip_weight(s, weight, flipped);
        return forward(level, &transposed, grad_out, flipped, None, grad_input);
    }
    let k = taps(s);
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let group_in = icg * s.in_h * s.in_w;
    let by_image = batch_parallel(s);
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
                dx_g.fill(E::ZERO);
                col2im_add(s, dcol, dx_g);
            }
        }
    };
    for_each_chunk(grad_input, in_image, by_image, image);
}

/// Whether the weight gradient of a stride-1 convolution is better taken
/// without im2col: on the zero-padded input grid (rows `in_w + 2·pad`
/// wide) tap `(c, kh, kw)` reads one contiguous window shifted by
/// `kh·pad_w + kw`, so `dW[oc, tap]` is a dot product of the output
/// gradient (laid out on the same grid, zero past each row's end) with that
/// window. It wastes the lanes past each row; worth it when rows are
/// mostly real and long enough for the dot products to amortise their sums.
fn padded_grid_weight_grad(s: &Conv2dShape) -> bool {
    let pad_w = s.in_w + 2 * s.padding.1;
    s.stride == (1, 1) && 2 * s.out_w() >= pad_w && s.out_h() * pad_w >= DOT_MIN_LEN
}

/// Whether the weight gradient is taken from a channels-last column matrix
/// (see [`channels_last`]): when each tap's channel run is long enough to
/// copy as a block.
fn channels_last_weight_grad(s: &Conv2dShape) -> bool {
    s.in_per_group() >= channels_last::MIN_CHANNELS
}

/// The shape of the forward convolution that computes a stride-1
/// convolution's input gradient (None when the stride is not 1 or the
/// padding exceeds the dilated kernel, where col2im is used instead).
fn transposed_shape(s: &Conv2dShape) -> Option<Conv2dShape> {
    let span_h = s.dilation.0 * (s.kernel_h - 1);
    let span_w = s.dilation.1 * (s.kernel_w - 1);
    (s.stride == (1, 1) && s.padding.0 <= span_h && s.padding.1 <= span_w).then(|| Conv2dShape {
        in_channels: s.out_channels,
        in_h: s.out_h(),
        in_w: s.out_w(),
        out_channels: s.in_channels,
        padding: (span_h - s.padding.0, span_w - s.padding.1),
        ..*s
    })
}

/// `flipped[g·ICg + ic][oc][kh][kw] = weight[g·OCg + oc][ic][KH-1-kh][KW-1-kw]`.
fn flip_weight<E: Float>(s: &Conv2dShape, weight: &[E], flipped: &mut [E]) {
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let (kh_n, kw_n) = (s.kernel_h, s.kernel_w);
    for g in 0..s.groups {
        for oc in 0..ocg {
            for ic in 0..icg {
                let src = &weight[((g * ocg + oc) * icg + ic) * kh_n * kw_n..][..kh_n * kw_n];
                let dst = &mut flipped[((g * icg + ic) * ocg + oc) * kh_n * kw_n..][..kh_n * kw_n];
                for (d, v) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *v;
                }
            }
        }
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

fn backward_weight<E: GemmElement + DotElement + PlainData>(
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
    // Images whose positions are joined into one dot-product length, so
    // that small feature maps still give long dot products.
    let joined = DOT_MIN_LEN.div_ceil(positions).clamp(1, s.batch);
    let len = joined * positions;
    // Sums images `range` into `dw` (overwriting it).
    let accumulate = |range: std::ops::Range<usize>, dw: &mut [E]| {
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
                        let src =
                            &grad_out[n * out_image + (g * ocg + oc) * positions..][..positions];
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
    };
    let direct = direct_weight::suits::<E>(s, level);
    // The padded grid multiplies zeros by input values: an infinite or NaN
    // input would leak NaN into the sums, so such inputs take im2col. (A
    // fold without early exit: the compiler vectorises it.)
    let grid = !direct
        && !channels_last_weight_grad(s)
        && padded_grid_weight_grad(s)
        && input.iter().fold(true, |ok, v| ok & v.is_finite());
    // Sums images `range` into `dw` on the padded grid (see `padded_grid_weight_grad`).
    let accumulate_on_grid = |range: std::ops::Range<usize>, dw: &mut [E]| {
        let (pad_h, pad_w) = (s.in_h + 2 * s.padding.0, s.in_w + 2 * s.padding.1);
        let plane = pad_h * pad_w;
        let (out_h, out_w) = (s.out_h(), s.out_w());
        let span = out_h * pad_w;
        let mut x_scratch = Scratch::take();
        let mut dy_scratch = Scratch::take();
        let x_pad = x_scratch.slice::<E>(s.in_channels * plane + s.kernel_w * s.dilation.1);
        let dy_pad = dy_scratch.slice::<E>(s.out_channels * span);
        x_pad.fill(E::ZERO);
        dy_pad.fill(E::ZERO);
        // Where tap (c, kh, kw) of group-local channel c starts reading.
        let starts: Vec<usize> = (0..icg)
            .flat_map(|c| {
                (0..s.kernel_h).flat_map(move |kh| {
                    (0..s.kernel_w)
                        .map(move |kw| c * plane + kh * s.dilation.0 * pad_w + kw * s.dilation.1)
                })
            })
            .collect();
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
    };
    let channels_last = !direct && channels_last_weight_grad(s);
    let accumulate = |range: std::ops::Range<usize>, dw: &mut [E]| {
        if direct {
            direct_weight::accumulate(level, s, input, grad_out, range, dw)
        } else if channels_last {
            channels_last::accumulate(level, s, input, grad_out, range, dw)
        } else if grid {
            accumulate_on_grid(range, dw)
        } else {
            accumulate(range, dw)
        }
    };
    let per_partial = s.batch.div_ceil(WEIGHT_GRAD_PARTIALS);
    let partial_count = s.batch.div_ceil(per_partial);
    if partial_count == 1 {
        return accumulate(0..s.batch, grad_weight);
    }
    let mut partial_scratch = Scratch::take();
    let partials = partial_scratch.slice::<E>(partial_count * weight_len);
    let run_partial = |i: usize, dw: &mut [E]| {
        let first = i * per_partial;
        accumulate(first..(first + per_partial).min(s.batch), dw);
    };
    let parallel = crate::parallel::worth_parallel(s.flops());
    for_each_chunk(partials, weight_len, parallel, run_partial);
    grad_weight.copy_from_slice(&partials[..weight_len]);
    for partial in partials.chunks(weight_len).skip(1) {
        for (d, p) in grad_weight.iter_mut().zip(partial) {
            *d += *p;
        }
    }
}

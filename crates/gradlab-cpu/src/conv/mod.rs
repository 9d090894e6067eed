//! Fast 2-D convolution (NCHW), forward and both gradients.
//!
//! Each pass has several methods ([`algo::Method`]): direct loops over the
//! taps (modules `direct`, `direct_weight`, `padded_grid`, and
//! `batch_lanes` with the images of the batch in the lanes), the GEMM forms
//! over a column matrix (`gemm_form`, `channels_last`) and, for 3×3
//! stride-1 layers, Winograd's `F(2×2, 3×3)` and `F(4×4, 3×3)` (`winograd`,
//! twin [`crate::reference::winograd`]). The [`ConvAlgo`] setting chooses
//! among those that apply to a shape, by name or by timing them ([`algo`]).
//!
//! Work is spread over images when the batch can feed every thread (the
//! GEMMs then run serially), otherwise inside each GEMM. The weight gradient
//! sums images in fixed chunks combined in a fixed order, so no method's
//! results depend on the thread count. Reference twins: [`crate::reference`].

pub mod algo;
mod batch_lanes;
mod channel_lanes;
mod channels_last;
mod direct;
mod direct_weight;
mod gemm_form;
mod im2col;
mod padded_grid;
mod winograd;

pub use crate::reference::winograd::WinogradTile;
pub use algo::{
    auto_picks, clear_auto_picks, conv_algo, set_conv_algo, with_conv_algo, AutoPick, ConvAlgo,
    Method, Pass, ShapeClass, UnknownConvAlgo,
};

use crate::gemm::{
    cast_slice, cast_slice_mut, pack_a_typed, DotElement, GemmElement, MatRef, PackedA,
};
use crate::parallel::for_each_chunk;
use crate::scratch::{PlainData, Scratch};
use crate::simd::{simd_level, SimdLevel};
use crate::{Conv2dShape, Float};
use batch_lanes::BatchLaneElement;
use channel_lanes::LaneElement;
use std::ops::Range;

/// Most partial sums of the weight gradient, each over consecutive images,
/// added in order at the end. Fixed by the batch (not the thread count) so
/// that results do not depend on the number of threads.
const WEIGHT_GRAD_PARTIALS: usize = 8;
/// Fewest images in a partial sum (unless the batch has fewer).
///
/// A partial costs its images plus a fixed part (writing its sums, for
/// the Winograd form an `α²`-times-larger matrix per partial), so a fixed
/// number of partials would make the batch's first quarter, on which
/// `auto` times the candidates, cost more than a quarter: on the convnet's
/// 8×8 layer it ranked the Winograd weight gradient 5x slower per image
/// than it runs on the batch.
const MIN_PARTIAL_IMAGES: usize = 8;

/// Images per partial sum and the number of partials for `batch` images:
/// [`WEIGHT_GRAD_PARTIALS`] of them, or fewer of [`MIN_PARTIAL_IMAGES`].
fn weight_grad_partials(batch: usize) -> (usize, usize) {
    let per_partial = batch
        .div_ceil(WEIGHT_GRAD_PARTIALS)
        .max(MIN_PARTIAL_IMAGES.min(batch))
        .max(1);
    (per_partial, batch.div_ceil(per_partial))
}
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

/// Where each tap `(c, kh, kw)` of `channels` input channels reads (in
/// PyTorch's tap order), relative to where an output position's first tap
/// reads, in a layout of channel planes `plane` values apart with rows
/// `row` values long; dilation included.
fn tap_offsets(s: &Conv2dShape, channels: usize, plane: usize, row: usize) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(channels * s.kernel_h * s.kernel_w);
    for c in 0..channels {
        for kh in 0..s.kernel_h {
            for kw in 0..s.kernel_w {
                offsets.push(c * plane + kh * s.dilation.0 * row + kw * s.dilation.1);
            }
        }
    }
    offsets
}

/// Splits the batch over threads only when there are enough images.
fn batch_parallel(s: &Conv2dShape) -> bool {
    let threads = rayon::current_num_threads();
    crate::parallel::worth_parallel(s.flops()) && s.batch >= 2 * threads
}

macro_rules! dispatch_f32_f64 {
    ($generic:ident :: <$t:ty>, ($($arg:expr),*), [$($cast:ident),*], [$($cast_mut:ident),*], [$($opt:ident),*]) => {{
        fn typed<T: Float, E: GemmElement + DotElement + LaneElement + BatchLaneElement + PlainData>(level: SimdLevel, s: &Conv2dShape, $($cast: &[T],)* $($opt: Option<&[T]>,)* $($cast_mut: &mut [T],)*) -> Option<()> {
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

/// The methods that compute `pass` of `s` in `T` at the current SIMD
/// level, the baseline (what a named algorithm that does not apply falls
/// back to) first: `auto` chooses among these. (The weight gradient's
/// direct method on the padded grid also needs a finite input.)
pub fn methods<T: Float>(pass: Pass, s: &Conv2dShape) -> Vec<Method> {
    let level = simd_level();
    match pass {
        Pass::Forward => forward_methods::<T>(s, level),
        Pass::BackwardData => backward_data_methods::<T>(s, level)
            .into_iter()
            .map(|(m, _)| m)
            .collect(),
        Pass::BackwardWeight => {
            let finite = || true;
            backward_weight_methods::<T>(s, level, finite)
                .into_iter()
                .map(|(m, _)| m)
                .collect()
        }
    }
}

/// Which direct forward kernel computes `s` in `E`, if one does: the one
/// that computes fewer lanes (output positions in the lanes, or output
/// channels in the lanes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirectForward {
    Positions,
    Channels,
}

fn direct_forward<E>(s: &Conv2dShape, level: SimdLevel) -> Option<DirectForward> {
    let positions = direct::computed_lanes(s, level);
    let channels = channel_lanes::forward_lanes::<E>(s, level);
    match (positions, channels) {
        (Some(p), Some(c)) if c < p => Some(DirectForward::Channels),
        (Some(_), _) => Some(DirectForward::Positions),
        (None, Some(_)) => Some(DirectForward::Channels),
        (None, None) => None,
    }
}

/// The forward methods that apply to `s`, baseline first.
fn forward_methods<E>(s: &Conv2dShape, level: SimdLevel) -> Vec<Method> {
    let mut methods = if direct_forward::<E>(s, level).is_some() {
        vec![Method::Direct, Method::Im2col]
    } else {
        vec![Method::Im2col]
    };
    if batch_lanes::suits(s) {
        methods.push(Method::BatchLanes);
    }
    if winograd::applies(s) {
        methods.extend(WinogradTile::ALL.map(Method::Winograd));
    }
    methods
}

fn forward<E: GemmElement + DotElement + LaneElement + BatchLaneElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
) {
    if s.out_h() * s.out_w() == 0 || s.batch == 0 {
        return;
    }
    let methods = forward_methods::<E>(s, level);
    algo::run_chosen(
        Pass::Forward,
        E::NAME,
        s,
        level,
        &methods,
        |method, images| {
            // The first `images` images (all but in `auto`'s trials).
            let s = &s.with_batch(images);
            let (input, out) = (&input[..s.input_len()], &mut out[..s.output_len()]);
            forward_by(method, level, s, input, weight, bias, out)
        },
    );
}

/// The forward pass by `method`, which applies to `s`.
fn forward_by<E: GemmElement + DotElement + LaneElement + BatchLaneElement + PlainData>(
    method: Method,
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
) {
    let by_image = batch_parallel(s);
    let parallel = crate::parallel::worth_parallel(s.flops());
    match method {
        Method::Direct => match direct_forward::<E>(s, level) {
            Some(DirectForward::Channels) => {
                channel_lanes::forward(level, s, input, weight, bias, out, by_image)
            }
            _ => direct::forward(level, s, input, weight, bias, out, by_image),
        },
        Method::Im2col => gemm_form::forward(level, s, input, weight, bias, out, by_image),
        Method::BatchLanes => batch_lanes::forward(level, s, input, weight, bias, out, parallel),
        Method::Winograd(tile) => {
            winograd::forward(level, tile, s, input, weight, bias, out, parallel)
        }
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

/// How the input gradient is computed: as the forward convolution of the
/// output gradient with the flipped kernel (stride 1), by col2im, or
/// directly with the output channels in the lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataForm {
    /// Forward on the transposed shape, by the given forward method.
    Transposed(Method),
    Col2im,
    ChannelLanes,
}

/// The input-gradient methods that apply to `s`, baseline first, each with
/// how it runs.
fn backward_data_methods<E>(s: &Conv2dShape, level: SimdLevel) -> Vec<(Method, DataForm)> {
    let positions = s.out_h() * s.out_w();
    let mut methods = Vec::new();
    let transposed = transposed_shape(s);
    // Of the two direct kernels, the one that computes fewer lanes (the
    // transposed form computes on the zeros of the padded output gradient).
    let on_transposed = transposed.and_then(|t| match direct_forward::<E>(&t, level)? {
        DirectForward::Positions => direct::computed_lanes(&t, level),
        DirectForward::Channels => channel_lanes::forward_lanes::<E>(&t, level),
    });
    let channels = channel_lanes::backward_data_lanes::<E>(s, level);
    match (on_transposed, channels) {
        (Some(t), Some(c)) if c < t => methods.push((Method::Direct, DataForm::ChannelLanes)),
        (Some(_), _) => methods.push((Method::Direct, DataForm::Transposed(Method::Direct))),
        (None, Some(_)) => methods.push((Method::Direct, DataForm::ChannelLanes)),
        (None, None) => {}
    }
    // The transposed form pays for an im2col of the padded output
    // gradient: only worth it when that column matrix is not much larger
    // than the one col2im would fold back.
    let im2col_form = match transposed {
        Some(t) if 4 * taps(&t) * t.out_h() * t.out_w() <= 5 * taps(s) * positions => {
            DataForm::Transposed(Method::Im2col)
        }
        _ => DataForm::Col2im,
    };
    methods.push((Method::Im2col, im2col_form));
    if transposed.filter(batch_lanes::suits).is_some() {
        let m = Method::BatchLanes;
        methods.push((m, DataForm::Transposed(m)));
    }
    if transposed.filter(winograd::applies).is_some() {
        methods.extend(WinogradTile::ALL.map(|tile| {
            let m = Method::Winograd(tile);
            (m, DataForm::Transposed(m))
        }));
    }
    methods
}

fn backward_data<E: GemmElement + DotElement + LaneElement + BatchLaneElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    grad_out: &[E],
    weight: &[E],
    grad_input: &mut [E],
) {
    let grad_input = &mut grad_input[..s.input_len()];
    if s.out_h() * s.out_w() == 0 || s.batch == 0 {
        grad_input.fill(E::ZERO);
        return;
    }
    let forms = backward_data_methods::<E>(s, level);
    // Stride 1: the input gradient is the forward convolution of the output
    // gradient with the flipped, channel-swapped kernel.
    let transposed = transposed_shape(s);
    let mut scratch = Scratch::take();
    let flipped = scratch.slice::<E>(if transposed.is_some() {
        s.weight_len()
    } else {
        0
    });
    if transposed.is_some() {
        flip_weight(s, weight, flipped);
    }
    let flipped = &*flipped;
    let methods: Vec<Method> = forms.iter().map(|&(m, _)| m).collect();
    algo::run_chosen(
        Pass::BackwardData,
        E::NAME,
        s,
        level,
        &methods,
        |method, images| {
            // The first `images` images (all but in `auto`'s trials).
            let s = &s.with_batch(images);
            let grad_out = &grad_out[..s.output_len()];
            let grad_input = &mut grad_input[..s.input_len()];
            let form = forms.iter().find(|&&(m, _)| m == method).map(|&(_, f)| f);
            let by_image = batch_parallel(s);
            match (form, transposed_shape(s)) {
                (Some(DataForm::ChannelLanes), _) => {
                    channel_lanes::backward_data(level, s, grad_out, weight, grad_input, by_image)
                }
                (Some(DataForm::Transposed(m)), Some(t)) => {
                    forward_by(m, level, &t, grad_out, flipped, None, grad_input)
                }
                _ => gemm_form::backward_data_col2im(
                    level, s, grad_out, weight, grad_input, by_image,
                ),
            }
        },
    );
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

/// Whether the weight gradient is taken from a channels-last column matrix
/// (see [`channels_last`]): when each tap's channel run is long enough to
/// copy as a block.
fn channels_last_weight_grad(s: &Conv2dShape) -> bool {
    s.in_per_group() >= channels_last::MIN_CHANNELS
}

/// How a weight-gradient method runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightForm {
    Direct,
    PaddedGrid,
    ChannelsLast,
    Im2colDot,
    BatchLanes,
    Winograd(WinogradTile),
}

/// The weight-gradient methods that apply to `s`, baseline first, each
/// with how it runs. The padded grid needs finite inputs (see
/// [`padded_grid`]), hence `finite`.
fn backward_weight_methods<E>(
    s: &Conv2dShape,
    level: SimdLevel,
    finite: impl FnOnce() -> bool,
) -> Vec<(Method, WeightForm)> {
    let direct = if direct_weight::suits::<E>(s, level) {
        Some(WeightForm::Direct)
    } else if padded_grid::suits(s) && finite() {
        Some(WeightForm::PaddedGrid)
    } else {
        None
    };
    let gemm = if channels_last_weight_grad(s) {
        WeightForm::ChannelsLast
    } else {
        WeightForm::Im2colDot
    };
    // The baseline: the direct kernel, else the channels-last GEMM, else the
    // padded grid, else the im2col dot products.
    let direct_first = match direct {
        Some(WeightForm::Direct) => true,
        Some(_) => gemm == WeightForm::Im2colDot,
        None => false,
    };
    let mut methods = vec![(Method::Im2col, gemm)];
    if let Some(form) = direct {
        let entry = (Method::Direct, form);
        if direct_first {
            methods.insert(0, entry);
        } else {
            methods.push(entry);
        }
    }
    if batch_lanes::suits(s) {
        methods.push((Method::BatchLanes, WeightForm::BatchLanes));
    }
    if winograd::applies(s) {
        methods.extend(
            WinogradTile::ALL.map(|tile| (Method::Winograd(tile), WeightForm::Winograd(tile))),
        );
    }
    methods
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

fn backward_weight<E: GemmElement + DotElement + LaneElement + BatchLaneElement + PlainData>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    grad_weight: &mut [E],
) {
    let weight_len = s.weight_len();
    let grad_weight = &mut grad_weight[..weight_len];
    if s.out_h() * s.out_w() == 0 || s.batch == 0 {
        grad_weight.fill(E::ZERO);
        return;
    }
    // (A fold without early exit: the compiler vectorises it.)
    let finite = || input.iter().fold(true, |ok, v| ok & v.is_finite());
    let forms = backward_weight_methods::<E>(s, level, finite);
    let methods: Vec<Method> = forms.iter().map(|&(m, _)| m).collect();
    algo::run_chosen(
        Pass::BackwardWeight,
        E::NAME,
        s,
        level,
        &methods,
        |method, images| {
            // The first `images` images (all but in `auto`'s trials).
            let s = &s.with_batch(images);
            let parallel = crate::parallel::worth_parallel(s.flops());
            let form = forms
                .iter()
                .find(|&&(m, _)| m == method)
                .map_or(WeightForm::Im2colDot, |&(_, f)| f);
            let batch = s.batch;
            match form {
                WeightForm::Direct => {
                    sum_in_partials(batch, parallel, grad_weight, &|range, dw| {
                        direct_weight::accumulate(level, s, input, grad_out, range, dw)
                    })
                }
                WeightForm::PaddedGrid => {
                    sum_in_partials(batch, parallel, grad_weight, &|range, dw| {
                        padded_grid::accumulate(level, s, input, grad_out, range, dw)
                    })
                }
                WeightForm::ChannelsLast => {
                    sum_in_partials(batch, parallel, grad_weight, &|range, dw| {
                        channels_last::accumulate(level, s, input, grad_out, range, dw)
                    })
                }
                WeightForm::Im2colDot => {
                    sum_in_partials(batch, parallel, grad_weight, &|range, dw| {
                        gemm_form::weight_im2col(level, s, input, grad_out, range, dw)
                    })
                }
                // These sum the whole batch themselves.
                WeightForm::BatchLanes => {
                    batch_lanes::backward_weight(level, s, input, grad_out, grad_weight, parallel)
                }
                WeightForm::Winograd(tile) => winograd::weight_grad(
                    level,
                    tile,
                    s,
                    input,
                    grad_out,
                    weight_grad_partials(s.batch).0,
                    parallel,
                    grad_weight,
                ),
            }
        },
    );
}

/// Overwrites `dw` with the sum over `batch` images that `accumulate`
/// computes (overwriting its second argument with the sum over a range of
/// images): over the fixed ranges of consecutive images
/// [`weight_grad_partials`] gives, in parallel when `parallel`, added in
/// order at the end.
fn sum_in_partials<E: PlainData + Float>(
    batch: usize,
    parallel: bool,
    dw: &mut [E],
    accumulate: &(dyn Fn(Range<usize>, &mut [E]) + Sync),
) {
    let (per_partial, partial_count) = weight_grad_partials(batch);
    if partial_count == 1 {
        return accumulate(0..batch, dw);
    }
    let len = dw.len();
    let mut partial_scratch = Scratch::take();
    let partials = partial_scratch.slice::<E>(partial_count * len);
    let run_partial = |i: usize, part: &mut [E]| {
        let first = i * per_partial;
        accumulate(first..(first + per_partial).min(batch), part);
    };
    for_each_chunk(partials, len, parallel, run_partial);
    dw.copy_from_slice(&partials[..len]);
    for partial in partials.chunks(len).skip(1) {
        for (d, p) in dw.iter_mut().zip(partial) {
            *d += *p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::weight_grad_partials;

    #[test]
    fn partial_sums_hold_at_least_eight_images_and_at_most_eight_partials() {
        // (images per partial, partials)
        assert_eq!(weight_grad_partials(64), (8, 8));
        // `auto`'s trial on 32 of them: the same images per partial.
        assert_eq!(weight_grad_partials(32), (8, 4));
        assert_eq!(weight_grad_partials(256), (32, 8));
        assert_eq!(weight_grad_partials(20), (8, 3));
        assert_eq!(weight_grad_partials(5), (5, 1));
        assert_eq!(weight_grad_partials(1), (1, 1));
        assert_eq!(weight_grad_partials(0), (1, 0));
    }
}

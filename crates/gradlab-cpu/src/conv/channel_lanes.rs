//! Direct convolution with the output channels in the vector lanes, for
//! stride-1 layers whose output channels fill whole vectors (LeNet's second
//! layer: 16 channels, one AVX-512 vector of f32).
//!
//! The row-vectorised kernel ([`super::direct`]) puts output *positions* in
//! the lanes on the padded grid, and a 10-wide output row on a 14-wide grid
//! leaves 4 of every 14 lanes idle. Here every lane is an output channel:
//!
//! * forward: a block of `R×P` output positions keeps one accumulator
//!   vector (all channels) per position; each tap loads the tap's weights
//!   (one vector per `L` channels) and adds them times one broadcast input
//!   value per position. Only real positions are computed (the block is
//!   cut to the row), and each image's results are transposed from
//!   position-major to NCHW at the end;
//! * input gradient: `dx[c, ih, iw] = Σ_{kh,kw} Σ_oc w[oc, c, kh, kw] ·
//!   dy[oc, ih + p - kh, iw + p - kw]` is a dot product over output
//!   channels, so the lanes hold partial sums over channels (the output
//!   gradient transposed to channels-last), taps that fall outside the
//!   output gradient's rows are skipped, and each sum is reduced across
//!   its lanes once, in a fixed pairwise order.
//!
//! The loops are plain Rust over fixed-size arrays, compiled once per SIMD
//! level with that level's target features (register blocks sized to its
//! registers).

use crate::parallel::for_each_chunk;
use crate::scratch::{PlainData, Scratch};
use crate::simd::{SimdKind, SimdLevel};
use crate::{Conv2dShape, Float};

/// Accumulator vectors a register block may hold at `level`: most of the
/// 32 AVX-512 registers, half of the 16 AVX2 ones (the rest hold operands).
fn accumulator_budget(level: SimdLevel) -> usize {
    match level.kind() {
        SimdKind::Avx512 => 25,
        _ => 12,
    }
}

/// Lanes of one vector of `E` at `level` (the scalar level models four).
fn lanes<E>(level: SimdLevel) -> usize {
    match level.kind() {
        SimdKind::Avx512 => 64 / std::mem::size_of::<E>(),
        SimdKind::Avx2 => 32 / std::mem::size_of::<E>(),
        SimdKind::Scalar => 4,
    }
}

/// Whether the channel count fills vectors well enough (three quarters of
/// the lanes or more), in at most two vectors.
fn channels_fill<E>(channels: usize, level: SimdLevel) -> bool {
    let l = lanes::<E>(level);
    let vectors = channels.div_ceil(l);
    (1..=2).contains(&vectors) && 4 * channels >= 3 * vectors * l
}

fn plain_stride_one(s: &Conv2dShape) -> bool {
    s.stride == (1, 1) && s.dilation == (1, 1) && s.groups == 1 && s.out_h() > 0 && s.out_w() > 0
}

/// The lane multiply-adds the forward pass computes per image, if this
/// kernel takes `s` (the positions of a row are cut into `P`-wide blocks;
/// the last may be partial, and is computed whole).
pub(crate) fn forward_lanes<E>(s: &Conv2dShape, level: SimdLevel) -> Option<f64> {
    if !plain_stride_one(s) || !channels_fill::<E>(s.out_channels, level) {
        return None;
    }
    let l = lanes::<E>(level);
    let vectors = s.out_channels.div_ceil(l);
    let p = forward_block(accumulator_budget(level), vectors, s.out_w());
    let cols = s.out_w().div_ceil(p) * p;
    let taps = s.in_channels * s.kernel_h * s.kernel_w;
    Some((vectors * l * cols * s.out_h() * taps) as f64)
}

/// The block widths (output positions of one row) the forward kernel is
/// compiled for.
const FORWARD_WIDTHS: [usize; 9] = [4, 5, 6, 7, 8, 10, 12, 14, 16];

/// Output positions of a forward block (one row's worth) for `vectors`
/// accumulators per position: the compiled width, within the `budget` of
/// accumulator vectors, that wastes the fewest positions of an `out_w`
/// row (ties: the wider).
fn forward_block(budget: usize, vectors: usize, out_w: usize) -> usize {
    FORWARD_WIDTHS
        .into_iter()
        .filter(|&p| p * vectors <= budget)
        .min_by_key(|&p| (out_w.div_ceil(p) * p - out_w, std::cmp::Reverse(p)))
        .unwrap_or(4)
}

/// `out = conv(input, weight) + bias`, for a shape where
/// [`forward_lanes`] is `Some`.
pub(crate) fn forward<E: LaneElement>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
    parallel: bool,
) {
    let vectors = s.out_channels.div_ceil(lanes::<E>(level));
    let p = forward_block(accumulator_budget(level), vectors, s.out_w());
    E::forward(
        level,
        (vectors, p),
        Layer { s, parallel },
        (input, weight, bias, out),
    );
}

/// The shape and whether to split images over the pool.
#[derive(Clone, Copy)]
pub(crate) struct Layer<'a> {
    s: &'a Conv2dShape,
    parallel: bool,
}

/// Element types with channel-lane kernels, each compiled for the vector
/// widths of that type at every SIMD level (f64 never runs 16 lanes).
pub(crate) trait LaneElement: Float + PlainData {
    /// Runs the forward pass with `vectors` vectors per position, `p`-wide blocks.
    fn forward(
        level: SimdLevel,
        block: (usize, usize),
        pass: Layer<'_>,
        data: ForwardData<'_, Self>,
    );
    /// Runs the input gradient with `vectors` vectors per sum, blocks of
    /// `cb` channels by `p` positions.
    fn backward_data(
        level: SimdLevel,
        block: (usize, usize, usize),
        pass: Layer<'_>,
        data: (&[Self], &[Self], &mut [Self]),
    );
}

/// The instruction set one compiled copy of the kernels runs: each lane
/// count belongs to one SIMD level, so only that level's copy is built.
pub(crate) trait Isa {
    /// One image's forward pass.
    fn forward<E: Float, const L: usize, const V: usize, const P: usize>(
        level: SimdLevel,
        g: &Geometry<'_>,
        job: ImageJob<'_, E>,
    );
    /// One image's input gradient.
    fn data<E: Float, const L: usize, const V: usize, const CB: usize, const P: usize>(
        level: SimdLevel,
        g: &DataGeometry,
        buffers: DataBuffers<'_, E>,
    );
}

/// The input, weights, bias and output of a forward call.
type ForwardData<'a, E> = (&'a [E], &'a [E], Option<&'a [E]>, &'a mut [E]);
/// The output gradient, weights and input gradient of an input-gradient call.
type DataArgs<'a, E> = (&'a [E], &'a [E], &'a mut [E]);

/// The output gradient, its channels-last scratch, the weights and the input gradient of one image.
type DataBuffers<'a, E> = (&'a [E], &'a mut [E], &'a [E], &'a mut [E]);

/// Plain Rust for the baseline target.
pub(crate) struct Portable;
/// AVX-512F.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx512;
/// AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

impl Isa for Portable {
    fn forward<E: Float, const L: usize, const V: usize, const P: usize>(
        _: SimdLevel,
        g: &Geometry<'_>,
        job: ImageJob<'_, E>,
    ) {
        forward_one::<E, L, V, P, false>(g, job, transpose)
    }
    fn data<E: Float, const L: usize, const V: usize, const CB: usize, const P: usize>(
        _: SimdLevel,
        g: &DataGeometry,
        (dy, dy_t, wt, dx): DataBuffers<'_, E>,
    ) {
        data_one::<E, L, V, CB, P, false>(g, (dy, dy_t, wt, dx), reduce_group::<E, L>)
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx512 {
    fn forward<E: Float, const L: usize, const V: usize, const P: usize>(
        level: SimdLevel,
        g: &Geometry<'_>,
        job: ImageJob<'_, E>,
    ) {
        assert_eq!(level.kind(), SimdKind::Avx512);
        // SAFETY: a level of this kind proves AVX-512F (see `crate::simd`).
        unsafe { forward_avx512::<E, L, V, P>(g, job) }
    }
    fn data<E: Float, const L: usize, const V: usize, const CB: usize, const P: usize>(
        level: SimdLevel,
        g: &DataGeometry,
        buffers: DataBuffers<'_, E>,
    ) {
        assert_eq!(level.kind(), SimdKind::Avx512);
        // SAFETY: a level of this kind proves AVX-512F (see `crate::simd`).
        unsafe { data_avx512::<E, L, V, CB, P>(g, buffers) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    fn forward<E: Float, const L: usize, const V: usize, const P: usize>(
        level: SimdLevel,
        g: &Geometry<'_>,
        job: ImageJob<'_, E>,
    ) {
        assert!(level.kind() >= SimdKind::Avx2);
        // SAFETY: a level of this kind (or AVX-512's, which includes it)
        // proves AVX2 and FMA.
        unsafe { forward_avx2::<E, L, V, P>(g, job) }
    }
    fn data<E: Float, const L: usize, const V: usize, const CB: usize, const P: usize>(
        level: SimdLevel,
        g: &DataGeometry,
        buffers: DataBuffers<'_, E>,
    ) {
        assert!(level.kind() >= SimdKind::Avx2);
        // SAFETY: as for `forward`.
        unsafe { data_avx2::<E, L, V, CB, P>(g, buffers) }
    }
}

macro_rules! forward_widths {
    ($e:ty, $i:ty, $l:literal, $v:literal, $p:expr, $pass:expr, $data:expr) => {
        match $p {
            4 => run_forward::<$e, $i, $l, $v, 4>($pass, $data),
            5 => run_forward::<$e, $i, $l, $v, 5>($pass, $data),
            6 => run_forward::<$e, $i, $l, $v, 6>($pass, $data),
            7 => run_forward::<$e, $i, $l, $v, 7>($pass, $data),
            8 => run_forward::<$e, $i, $l, $v, 8>($pass, $data),
            10 => run_forward::<$e, $i, $l, $v, 10>($pass, $data),
            12 => run_forward::<$e, $i, $l, $v, 12>($pass, $data),
            14 => run_forward::<$e, $i, $l, $v, 14>($pass, $data),
            _ => run_forward::<$e, $i, $l, $v, 16>($pass, $data),
        }
    };
}

macro_rules! data_blocks_of {
    ($e:ty, $i:ty, $l:literal, $v:literal, $cb:expr, $p:expr, $pass:expr, $data:expr) => {
        match ($cb, $p) {
            (1, 4) => run_data::<$e, $i, $l, $v, 1, 4>($pass, $data),
            (1, 5) => run_data::<$e, $i, $l, $v, 1, 5>($pass, $data),
            (1, 6) => run_data::<$e, $i, $l, $v, 1, 6>($pass, $data),
            (1, 7) => run_data::<$e, $i, $l, $v, 1, 7>($pass, $data),
            (1, 8) => run_data::<$e, $i, $l, $v, 1, 8>($pass, $data),
            (2, 4) => run_data::<$e, $i, $l, $v, 2, 4>($pass, $data),
            (2, 5) => run_data::<$e, $i, $l, $v, 2, 5>($pass, $data),
            (2, 6) => run_data::<$e, $i, $l, $v, 2, 6>($pass, $data),
            (2, 7) => run_data::<$e, $i, $l, $v, 2, 7>($pass, $data),
            _ => run_data::<$e, $i, $l, $v, 2, 8>($pass, $data),
        }
    };
}

macro_rules! impl_lane_element {
    ($e:ty, $avx512:literal, $avx2:literal) => {
        impl LaneElement for $e {
            fn forward(
                level: SimdLevel,
                (vectors, p): (usize, usize),
                pass: Layer<'_>,
                data: (&[Self], &[Self], Option<&[Self]>, &mut [Self]),
            ) {
                let d = (level, data);
                match (level.kind(), vectors) {
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx512, 1) => forward_widths!($e, Avx512, $avx512, 1, p, pass, d),
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx512, _) => forward_widths!($e, Avx512, $avx512, 2, p, pass, d),
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx2, 1) => forward_widths!($e, Avx2, $avx2, 1, p, pass, d),
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx2, _) => forward_widths!($e, Avx2, $avx2, 2, p, pass, d),
                    (_, 1) => forward_widths!($e, Portable, 4, 1, p, pass, d),
                    _ => forward_widths!($e, Portable, 4, 2, p, pass, d),
                }
            }

            fn backward_data(
                level: SimdLevel,
                (vectors, cb, p): (usize, usize, usize),
                pass: Layer<'_>,
                data: (&[Self], &[Self], &mut [Self]),
            ) {
                let d = (level, data);
                match (level.kind(), vectors) {
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx512, 1) => data_blocks_of!($e, Avx512, $avx512, 1, cb, p, pass, d),
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx512, _) => data_blocks_of!($e, Avx512, $avx512, 2, cb, p, pass, d),
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx2, 1) => data_blocks_of!($e, Avx2, $avx2, 1, cb, p, pass, d),
                    #[cfg(target_arch = "x86_64")]
                    (SimdKind::Avx2, _) => data_blocks_of!($e, Avx2, $avx2, 2, cb, p, pass, d),
                    (_, 1) => data_blocks_of!($e, Portable, 4, 1, cb, p, pass, d),
                    _ => data_blocks_of!($e, Portable, 4, 2, cb, p, pass, d),
                }
            }
        }
    };
}

impl_lane_element!(f32, 16, 8);
impl_lane_element!(f64, 8, 4);

/// Sizes shared by the blocks of one forward call.
pub(crate) struct Geometry<'a> {
    s: &'a Conv2dShape,
    /// Padded input: rows of `pw` values, planes of `plane` values.
    pw: usize,
    plane: usize,
    out_h: usize,
    out_w: usize,
    /// Output channels rounded up to whole vectors.
    ocp: usize,
    /// Where each tap `(c, kh, kw)` reads, from a block's first position.
    tap_offsets: Vec<usize>,
}

fn run_forward<E: Float + PlainData, I: Isa, const L: usize, const V: usize, const P: usize>(
    Layer { s, parallel }: Layer<'_>,
    (level, (input, weight, bias, out)): (SimdLevel, ForwardData<'_, E>),
) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let taps = s.in_channels * s.kernel_h * s.kernel_w;
    let ocp = V * L;
    // Blocks may run past the last column: the padded image has room for
    // them (their results are dropped).
    let pw = (out_w.div_ceil(P) * P).max(out_w) + s.kernel_w - 1;
    let ph = out_h + s.kernel_h - 1;
    let plane = ph * pw;
    let tap_offsets = super::tap_offsets(s, s.in_channels, plane, pw);
    let g = Geometry {
        s,
        pw,
        plane,
        out_h,
        out_w,
        ocp,
        tap_offsets,
    };
    // Weights as [tap][channel], padded to whole vectors with zeros.
    let mut w_scratch = Scratch::take();
    let wt = w_scratch.slice::<E>(taps * ocp);
    wt.fill(E::ZERO);
    for oc in 0..s.out_channels {
        for t in 0..taps {
            wt[t * ocp + oc] = weight[oc * taps + t];
        }
    }
    let wt = &*wt;
    let in_image = s.in_channels * s.in_h * s.in_w;
    let positions = out_h * out_w;
    let out_image = s.out_channels * positions;
    let image = |n: usize, out: &mut [E]| {
        let mut x_scratch = Scratch::take();
        let mut y_scratch = Scratch::take();
        let job = ImageJob {
            image: &input[n * in_image..][..in_image],
            xpad: x_scratch.slice::<E>(s.in_channels * g.plane),
            wt,
            ybuf: y_scratch.slice::<E>(positions * ocp),
            bias,
            out,
        };
        I::forward::<E, L, V, P>(level, &g, job);
    };
    for_each_chunk(&mut out[..s.batch * out_image], out_image, parallel, image);
}

/// One image's forward pass: its input, scratch for the padded input and
/// the position-major results, the weights, the bias and its output.
pub(crate) struct ImageJob<'a, E> {
    image: &'a [E],
    xpad: &'a mut [E],
    wt: &'a [E],
    ybuf: &'a mut [E],
    bias: Option<&'a [E]>,
    out: &'a mut [E],
}

/// The image's channels, zero-padded (`padding` before, zeros after) into
/// planes of `ph` rows of `pw` values.
#[inline(always)]
fn pad_planes<E: Float>(g: &Geometry<'_>, image: &[E], xpad: &mut [E]) {
    let s = g.s;
    let (pad_h, pad_w) = s.padding;
    let len = s.in_w.min(g.pw.saturating_sub(pad_w));
    for (c, plane) in xpad
        .chunks_exact_mut(g.plane)
        .take(s.in_channels)
        .enumerate()
    {
        for (r, row) in plane.chunks_exact_mut(g.pw).enumerate() {
            match (r.checked_sub(pad_h)).filter(|&h| h < s.in_h) {
                Some(h) => {
                    let src = &image[(c * s.in_h + h) * s.in_w..][..len];
                    row[..pad_w.min(g.pw)].fill(E::ZERO);
                    for (d, &x) in row[pad_w..pad_w + len].iter_mut().zip(src) {
                        *d = x;
                    }
                    row[pad_w + len..].fill(E::ZERO);
                }
                None => row.fill(E::ZERO),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn forward_avx512<E: Float, const L: usize, const V: usize, const P: usize>(
    g: &Geometry<'_>,
    job: ImageJob<'_, E>,
) {
    // SAFETY: this function runs only where AVX-512F is proven (its callers
    // hold a level of that kind).
    forward_one::<E, L, V, P, true>(g, job, |rows| unsafe { transpose_avx512(rows) })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2<E: Float, const L: usize, const V: usize, const P: usize>(
    g: &Geometry<'_>,
    job: ImageJob<'_, E>,
) {
    forward_one::<E, L, V, P, true>(g, job, transpose)
}

/// Pads the image, runs every block, and writes the results in NCHW.
#[inline(always)]
fn forward_one<E: Float, const L: usize, const V: usize, const P: usize, const FMA: bool>(
    g: &Geometry<'_>,
    job: ImageJob<'_, E>,
    transpose: impl Fn([[E; L]; L]) -> [[E; L]; L],
) {
    let ImageJob {
        image,
        xpad,
        wt,
        ybuf,
        bias,
        out,
    } = job;
    pad_planes(g, image, xpad);
    forward_blocks::<E, L, V, P, FMA>(g, xpad, wt, ybuf);
    to_nchw::<E, L, V>(ybuf, g.s.out_channels, bias, out, transpose);
}

/// `out[oc][pos] = ybuf[pos][oc] + bias[oc]`: square blocks of `L`
/// positions by `L` channels (one vector of each position's row) are
/// transposed by `transpose`, so that each channel's `L` positions are
/// stored as one vector; the positions after the last whole block one by
/// one.
#[inline(always)]
fn to_nchw<E: Float, const L: usize, const V: usize>(
    ybuf: &[E],
    channels: usize,
    bias: Option<&[E]>,
    out: &mut [E],
    transpose: impl Fn([[E; L]; L]) -> [[E; L]; L],
) {
    let positions = out.len() / channels;
    let whole = positions / L * L;
    for p0 in (0..whole).step_by(L) {
        for v in 0..V {
            let rows: [[E; L]; L] = std::array::from_fn(|p| {
                ybuf[((p0 + p) * V + v) * L..][..L]
                    .try_into()
                    .expect("L lanes")
            });
            let columns = transpose(rows);
            for (l, column) in columns.iter().enumerate() {
                let oc = v * L + l;
                if oc < channels {
                    let b = bias.map_or(E::ZERO, |b| b[oc]);
                    let dst = &mut out[oc * positions + p0..][..L];
                    for (d, &c) in dst.iter_mut().zip(column) {
                        *d = c + b;
                    }
                }
            }
        }
    }
    for p in whole..positions {
        for oc in 0..channels {
            let b = bias.map_or(E::ZERO, |b| b[oc]);
            out[oc * positions + p] = ybuf[p * V * L + oc] + b;
        }
    }
}

/// The transpose of a square block (the plain version).
#[inline(always)]
pub(super) fn transpose<E: Float, const L: usize>(rows: [[E; L]; L]) -> [[E; L]; L] {
    std::array::from_fn(|c| std::array::from_fn(|p| rows[p][c]))
}

/// The loop nest every level shares; `FMA` says whether `mul_add` is a
/// hardware instruction here (without FMA it is a slow library call).
#[inline(always)]
fn forward_blocks<E: Float, const L: usize, const V: usize, const P: usize, const FMA: bool>(
    g: &Geometry<'_>,
    xpad: &[E],
    wt: &[E],
    ybuf: &mut [E],
) {
    // One output row per block: more rows would share each weight load
    // between more FMAs, but every FMA already loads its own input value.
    const R: usize = 1;
    let last_tap = g.tap_offsets.iter().copied().max().unwrap_or(0);
    for oh0 in (0..g.out_h).step_by(R) {
        for ow0 in (0..g.out_w).step_by(P) {
            let mut acc = [[[[E::ZERO; L]; V]; P]; R];
            let base = oh0 * g.pw + ow0;
            // Every read below is at `base + tap + r·pw + j` with r < R, j < P:
            // checked once here instead of once per tap.
            assert!(base + last_tap + (R - 1) * g.pw + P <= xpad.len());
            let x = xpad[base..].as_ptr();
            for (&tap, w) in g.tap_offsets.iter().zip(wt.chunks_exact(V * L)) {
                let w: [[E; L]; V] =
                    std::array::from_fn(|v| w[v * L..][..L].try_into().expect("L lanes"));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    for (j, acc_p) in acc_r.iter_mut().enumerate() {
                        // SAFETY: in bounds by the assertion above.
                        let x = unsafe { *x.add(tap + r * g.pw + j) };
                        for (acc_v, w_v) in acc_p.iter_mut().zip(&w) {
                            for (a, &wl) in acc_v.iter_mut().zip(w_v) {
                                *a = if FMA { x.mul_add(wl, *a) } else { *a + x * wl };
                            }
                        }
                    }
                }
            }
            // Keep the positions inside the output.
            for (r, acc_r) in acc.iter().enumerate().take(g.out_h - oh0) {
                for (j, acc_p) in acc_r.iter().enumerate().take(g.out_w - ow0) {
                    let at = ((oh0 + r) * g.out_w + ow0 + j) * g.ocp;
                    for (v, acc_v) in acc_p.iter().enumerate() {
                        ybuf[at + v * L..][..L].copy_from_slice(acc_v);
                    }
                }
            }
        }
    }
}

/// The lane multiply-adds the input gradient computes per image, if this
/// kernel takes `s`: taps whose output-gradient row is outside the image
/// are skipped, those whose column is outside are computed on zeros.
pub(crate) fn backward_data_lanes<E>(s: &Conv2dShape, level: SimdLevel) -> Option<f64> {
    if !plain_stride_one(s) || !channels_fill::<E>(s.out_channels, level) {
        return None;
    }
    let l = lanes::<E>(level);
    let vectors = s.out_channels.div_ceil(l);
    let (cb, p) = data_block(accumulator_budget(level), vectors, s.in_channels, s.in_w);
    let rows: usize = (0..s.in_h)
        .map(|ih| valid_taps(ih, s.padding.0, s.kernel_h, s.out_h()).len())
        .sum();
    let cols = s.in_w.div_ceil(p) * p;
    let channels = s.in_channels.div_ceil(cb) * cb;
    Some((channels * rows * s.kernel_w * cols * vectors * l) as f64)
}

/// The taps `kh` for which input row `ih` meets a row of the output
/// gradient: `0 <= ih + pad - kh < out_h`.
fn valid_taps(ih: usize, pad: usize, kernel: usize, out_h: usize) -> std::ops::Range<usize> {
    let lo = (ih + pad + 1).saturating_sub(out_h);
    let hi = (ih + pad + 1).min(kernel);
    lo.min(hi)..hi
}

/// Input channels and positions of an input-gradient block: `cb·p`
/// accumulators (two thirds of the accumulator budget, which leaves
/// registers for the `cb` weight vectors and the output gradient; more
/// spill), channels and positions dividing the layer's evenly when they can.
fn data_block(budget: usize, vectors: usize, channels: usize, in_w: usize) -> (usize, usize) {
    let budget = 2 * budget / 3 / vectors;
    (1..=2)
        .flat_map(|cb| (4..=8).map(move |p| (cb, p)))
        .filter(|&(cb, p)| cb * p <= budget.max(4))
        .min_by_key(|&(cb, p)| {
            let computed = channels.div_ceil(cb) * cb * in_w.div_ceil(p) * p;
            // Least waste first, then the most accumulators.
            (computed, std::cmp::Reverse(cb * p))
        })
        .unwrap_or((1, 4))
}

/// `grad_input`, for a shape where [`backward_data_lanes`] is `Some`.
pub(crate) fn backward_data<E: LaneElement>(
    level: SimdLevel,
    s: &Conv2dShape,
    grad_out: &[E],
    weight: &[E],
    grad_input: &mut [E],
    parallel: bool,
) {
    let vectors = s.out_channels.div_ceil(lanes::<E>(level));
    let (cb, p) = data_block(accumulator_budget(level), vectors, s.in_channels, s.in_w);
    E::backward_data(
        level,
        (vectors, cb, p),
        Layer { s, parallel },
        (grad_out, weight, grad_input),
    );
}

/// Sizes shared by the blocks of one input-gradient call.
pub(crate) struct DataGeometry {
    channels: usize,
    in_h: usize,
    in_w: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    out_h: usize,
    out_w: usize,
    /// The output gradient channels-last, zero-padded: `gh` rows of `gw`
    /// pixels of `ocp` values; input column `iw`, tap `kw` reads pixel
    /// `iw + pad_w + (kw_n - 1) - kw` of the row.
    gw: usize,
    pad_w: usize,
    ocp: usize,
}

fn run_data<
    E: Float + PlainData,
    I: Isa,
    const L: usize,
    const V: usize,
    const CB: usize,
    const P: usize,
>(
    Layer { s, parallel }: Layer<'_>,
    (level, (grad_out, weight, grad_input)): (SimdLevel, DataArgs<'_, E>),
) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let (kh_n, kw_n) = (s.kernel_h, s.kernel_w);
    let ocp = V * L;
    // Columns: KW-1 zeros before, enough after for the last block to run
    // past the row.
    let cols = s.in_w.div_ceil(P) * P;
    let gw = (cols + s.padding.1 + kw_n).max(out_w + kw_n - 1);
    let g = DataGeometry {
        channels: s.in_channels,
        in_h: s.in_h,
        in_w: s.in_w,
        kh: kh_n,
        kw: kw_n,
        pad: s.padding.0,
        out_h,
        out_w,
        gw,
        pad_w: s.padding.1,
        ocp,
    };
    // Weights as [input channel][kh][kw][output channel], padded to whole vectors.
    let taps = kh_n * kw_n;
    let channels_p = s.in_channels.div_ceil(CB) * CB;
    let mut w_scratch = Scratch::take();
    let wt = w_scratch.slice::<E>(channels_p * taps * ocp);
    wt.fill(E::ZERO);
    for oc in 0..s.out_channels {
        for c in 0..s.in_channels {
            for t in 0..taps {
                wt[(c * taps + t) * ocp + oc] = weight[(oc * s.in_channels + c) * taps + t];
            }
        }
    }
    let wt = &*wt;
    let positions = out_h * out_w;
    let (in_image, out_image) = (s.in_channels * s.in_h * s.in_w, s.out_channels * positions);
    let image = |n: usize, dx_n: &mut [E]| {
        let mut scratch = Scratch::take();
        let dy_t = scratch.slice::<E>(out_h * gw * ocp);
        let dy = &grad_out[n * out_image..][..out_image];
        I::data::<E, L, V, CB, P>(level, &g, (dy, dy_t, wt, dx_n));
    };
    for_each_chunk(
        &mut grad_input[..s.batch * in_image],
        in_image,
        parallel,
        image,
    );
}

/// Transposes the output gradient to channels-last rows (`KW - 1` zero
/// pixels before each row's values, zeros after), then runs every block.
#[inline(always)]
fn data_one<
    E: Float,
    const L: usize,
    const V: usize,
    const CB: usize,
    const P: usize,
    const FMA: bool,
>(
    g: &DataGeometry,
    (dy, dy_t, wt, dx): DataBuffers<'_, E>,
    reduce: impl Fn([[E; L]; L]) -> [E; L],
) {
    const B: usize = 8;
    let channels = dy.len() / (g.out_h * g.out_w);
    let positions = g.out_h * g.out_w;
    dy_t.fill(E::ZERO);
    for oh in 0..g.out_h {
        for ow0 in (0..g.out_w).step_by(B) {
            let n = B.min(g.out_w - ow0);
            // Eight positions of every channel, then one pixel at a time.
            let mut tile = [[[E::ZERO; B]; L]; V];
            for oc in 0..channels {
                let src = &dy[oc * positions + oh * g.out_w + ow0..][..n];
                for (t, &x) in tile[oc / L][oc % L].iter_mut().zip(src) {
                    *t = x;
                }
            }
            for j in 0..n {
                let px = &mut dy_t[(oh * g.gw + ow0 + j + g.kw - 1) * V * L..][..V * L];
                for (v, lanes) in px.chunks_exact_mut(L).enumerate() {
                    for (l, d) in lanes.iter_mut().enumerate() {
                        *d = tile[v][l][j];
                    }
                }
            }
        }
    }
    data_blocks::<E, L, V, CB, P, FMA>(g, dy_t, wt, dx, reduce)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn data_avx512<E: Float, const L: usize, const V: usize, const CB: usize, const P: usize>(
    g: &DataGeometry,
    buffers: DataBuffers<'_, E>,
) {
    // SAFETY: this function runs only where AVX-512F is proven (its callers
    // hold a level of that kind).
    data_one::<E, L, V, CB, P, true>(g, buffers, |vs| unsafe { reduce_group_avx512(vs) })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn data_avx2<E: Float, const L: usize, const V: usize, const CB: usize, const P: usize>(
    g: &DataGeometry,
    buffers: DataBuffers<'_, E>,
) {
    // SAFETY: this function runs only where AVX2 is proven (its callers
    // hold a level of that kind or above).
    data_one::<E, L, V, CB, P, true>(g, buffers, |vs| unsafe { reduce_group_avx2(vs) })
}

/// The loop nest every level shares (see [`forward_blocks`] for `FMA`).
#[inline(always)]
fn data_blocks<
    E: Float,
    const L: usize,
    const V: usize,
    const CB: usize,
    const P: usize,
    const FMA: bool,
>(
    g: &DataGeometry,
    dy_t: &[E],
    wt: &[E],
    dx: &mut [E],
    reduce: impl Fn([[E; L]; L]) -> [E; L],
) {
    let taps = g.kh * g.kw;
    let plane = g.in_h * g.in_w;
    for c0 in (0..g.channels).step_by(CB) {
        for ih in 0..g.in_h {
            let khs = valid_taps(ih, g.pad, g.kh, g.out_h);
            for iw0 in (0..g.in_w).step_by(P) {
                let mut acc = [[[[E::ZERO; L]; V]; P]; CB];
                // Reads: pixels `pixel0 - kw + j` of rows `oh` (j < P, kw < KW)
                // of the output gradient, and the block's channels' weights.
                let pixel0 = iw0 + g.pad_w + g.kw - 1;
                assert!(
                    (pixel0 + P) * g.ocp <= g.gw * g.ocp && g.out_h * g.gw * g.ocp <= dy_t.len()
                );
                assert!((c0 + CB) * taps * g.ocp <= wt.len() && g.ocp == V * L);
                for kh in khs.clone() {
                    let oh = ih + g.pad - kh;
                    for kw in 0..g.kw {
                        // SAFETY: oh < out_h (valid_taps) and the pixels are in
                        // the row (asserted above).
                        let d = unsafe { dy_t.as_ptr().add((oh * g.gw + pixel0 - kw) * g.ocp) };
                        let w: [[[E; L]; V]; CB] = std::array::from_fn(|cb| {
                            let at = ((c0 + cb) * taps + kh * g.kw + kw) * g.ocp;
                            // SAFETY: within the block's weights (asserted above).
                            let w = unsafe { wt.as_ptr().add(at) };
                            // SAFETY: as above, V·L values from `w`.
                            std::array::from_fn(|v| {
                                // SAFETY: as above, V·L values from `w`.
                                std::array::from_fn(|l| unsafe { *w.add(v * L + l) })
                            })
                        });
                        for j in 0..P {
                            // SAFETY: pixel pixel0 - kw + j of row oh (asserted above).
                            let d: [[E; L]; V] = std::array::from_fn(|v| {
                                // SAFETY: as above.
                                std::array::from_fn(|l| unsafe { *d.add(j * V * L + v * L + l) })
                            });
                            for (acc_c, w_c) in acc.iter_mut().zip(&w) {
                                for ((a_v, w_v), d_v) in acc_c[j].iter_mut().zip(w_c).zip(&d) {
                                    for ((a, &wl), &dl) in a_v.iter_mut().zip(w_v).zip(d_v) {
                                        *a = if FMA {
                                            wl.mul_add(dl, *a)
                                        } else {
                                            *a + wl * dl
                                        };
                                    }
                                }
                            }
                        }
                    }
                }
                // Reduce the block's sums L at a time, across vectors.
                for first in (0..CB * P).step_by(L) {
                    let group: [[E; L]; L] = std::array::from_fn(|i| {
                        let k = first + i;
                        if k < CB * P {
                            fold_vectors(&acc[k / P][k % P])
                        } else {
                            [E::ZERO; L]
                        }
                    });
                    let sums = reduce(group);
                    for (i, &sum) in sums.iter().enumerate().take(CB * P - first) {
                        let (cb, j) = ((first + i) / P, (first + i) % P);
                        let c = c0 + cb;
                        if c < g.channels && iw0 + j < g.in_w {
                            dx[c * plane + ih * g.in_w + iw0 + j] = sum;
                        }
                    }
                }
            }
        }
    }
}

/// The `V` vectors of one sum added lane by lane.
#[inline(always)]
fn fold_vectors<E: Float, const L: usize, const V: usize>(acc: &[[E; L]; V]) -> [E; L] {
    let mut v = acc[0];
    for other in &acc[1..] {
        for (a, b) in v.iter_mut().zip(other) {
            *a += *b;
        }
    }
    v
}

/// The lane sums of `L` vectors, as one vector (`sums[k]` = the sum of
/// vector `k`'s lanes). Pairs of vectors are halved together: at each step
/// every segment of partial sums (`w` lanes, one per output) is folded to
/// `w / 2` lanes and two vectors' folded segments share one vector, so
/// that `log2(L)` steps of whole-vector shuffles and adds replace `L`
/// separate horizontal sums. The order of the additions is fixed.
#[inline(always)]
fn reduce_group<E: Float, const L: usize>(mut vs: [[E; L]; L]) -> [E; L] {
    let (mut count, mut width) = (L, L);
    while count > 1 {
        let half = width / 2;
        for m in 0..count / 2 {
            let (a, b) = (vs[2 * m], vs[2 * m + 1]);
            vs[m] = std::array::from_fn(|i| {
                let src = if i < L / 2 { &a } else { &b };
                let i = i % (L / 2);
                let (segment, offset) = (i / half, i % half);
                src[segment * width + offset] + src[segment * width + offset + half]
            });
        }
        count /= 2;
        width = half;
    }
    vs[0]
}

/// The word indices (32-bit lanes) of each halving step of
/// [`reduce_group`] for vectors of `L` elements of `E`: at step `k`
/// (segments `L >> k` elements wide), result word `j` adds word `LO[k][j]`
/// and word `HI[k][j]` of the pair's first vector (`j` in the low half of
/// the vector) or of its second (the high half, whose words a two-source
/// permute numbers from `SECOND` on). Constants, so that the permutes take
/// their indices from memory.
#[cfg(target_arch = "x86_64")]
struct StepWords<E, const L: usize, const SECOND: u32>(std::marker::PhantomData<E>);

#[cfg(target_arch = "x86_64")]
impl<E, const L: usize, const SECOND: u32> StepWords<E, L, SECOND> {
    const LO: [[u32; 16]; 4] = step_words(std::mem::size_of::<E>() / 4, L, 0, SECOND);
    const HI: [[u32; 16]; 4] = step_words(std::mem::size_of::<E>() / 4, L, 1, SECOND);
}

/// See [`StepWords`]: `upper` 0 for the first addend, 1 for the second.
#[cfg(target_arch = "x86_64")]
const fn step_words(per: usize, lanes: usize, upper: usize, second: u32) -> [[u32; 16]; 4] {
    let words = lanes * per;
    let mut table = [[0u32; 16]; 4];
    let mut step = 0;
    while step < 4 && (lanes >> step) >= 2 {
        let width = lanes >> step;
        let half = width / 2;
        let mut j = 0;
        while j < words {
            let (i, part) = (j / per, j % per);
            let i = i % (lanes / 2);
            let (segment, at) = (i / half, i % half);
            let word = ((segment * width + at + upper * half) * per + part) as u32;
            table[step][j] = word + if j < words / 2 { 0 } else { second };
            j += 1;
        }
        step += 1;
    }
    table
}

/// [`reduce_group`] on AVX-512 registers: each step is two two-source
/// permutes and one add per pair of vectors, in the same order of
/// additions (so the same sums, bit for bit).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn reduce_group_avx512<E: Float, const L: usize>(vs: [[E; L]; L]) -> [E; L] {
    use std::arch::x86_64::*;
    assert_eq!(L * std::mem::size_of::<E>(), 64, "one vector of 16 words");
    let wide = std::mem::size_of::<E>() == 8;
    // SAFETY: each [E; L] is 64 bytes (asserted), the width of one load.
    let mut v: [__m512; L] =
        std::array::from_fn(|k| unsafe { _mm512_loadu_ps(vs[k].as_ptr().cast()) });
    let (mut count, mut step) = (L, 0);
    while count > 1 {
        let (lo, hi) = (
            &StepWords::<E, L, 16>::LO[step],
            &StepWords::<E, L, 16>::HI[step],
        );
        // SAFETY: 16 words each.
        let (lo, hi) = unsafe {
            (
                _mm512_loadu_si512(lo.as_ptr().cast()),
                _mm512_loadu_si512(hi.as_ptr().cast()),
            )
        };
        for m in 0..count / 2 {
            let (a, b) = (v[2 * m], v[2 * m + 1]);
            let (x, y) = (
                _mm512_permutex2var_ps(a, lo, b),
                _mm512_permutex2var_ps(a, hi, b),
            );
            v[m] = if wide {
                _mm512_castpd_ps(_mm512_add_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)))
            } else {
                _mm512_add_ps(x, y)
            };
        }
        count /= 2;
        step += 1;
    }
    let mut sums = [E::ZERO; L];
    // SAFETY: 64 bytes into an [E; L] of 64 bytes.
    unsafe { _mm512_storeu_ps(sums.as_mut_ptr().cast(), v[0]) };
    sums
}

/// [`reduce_group`] on AVX2 registers: one-source permutes of each vector
/// of a pair, blended (the first's words in the low half), then one add;
/// the same order of additions as the plain version.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn reduce_group_avx2<E: Float, const L: usize>(vs: [[E; L]; L]) -> [E; L] {
    use std::arch::x86_64::*;
    assert_eq!(L * std::mem::size_of::<E>(), 32, "one vector of 8 words");
    let wide = std::mem::size_of::<E>() == 8;
    // SAFETY: each [E; L] is 32 bytes (asserted), the width of one load.
    let mut v: [__m256; L] =
        std::array::from_fn(|k| unsafe { _mm256_loadu_ps(vs[k].as_ptr().cast()) });
    let (mut count, mut step) = (L, 0);
    while count > 1 {
        let (lo, hi) = (
            &StepWords::<E, L, 0>::LO[step],
            &StepWords::<E, L, 0>::HI[step],
        );
        // SAFETY: the first 8 words of each.
        let (lo, hi) = unsafe {
            (
                _mm256_loadu_si256(lo.as_ptr().cast()),
                _mm256_loadu_si256(hi.as_ptr().cast()),
            )
        };
        for m in 0..count / 2 {
            let (a, b) = (v[2 * m], v[2 * m + 1]);
            let pick = |idx| {
                _mm256_blend_ps::<0xF0>(
                    _mm256_permutevar8x32_ps(a, idx),
                    _mm256_permutevar8x32_ps(b, idx),
                )
            };
            let (x, y) = (pick(lo), pick(hi));
            v[m] = if wide {
                _mm256_castpd_ps(_mm256_add_pd(_mm256_castps_pd(x), _mm256_castps_pd(y)))
            } else {
                _mm256_add_ps(x, y)
            };
        }
        count /= 2;
        step += 1;
    }
    let mut sums = [E::ZERO; L];
    // SAFETY: 32 bytes into an [E; L] of 32 bytes.
    unsafe { _mm256_storeu_ps(sums.as_mut_ptr().cast(), v[0]) };
    sums
}

/// The word indices of each stage of [`transpose_avx512`] (see
/// [`transpose_words`]).
#[cfg(target_arch = "x86_64")]
struct TransposeWords<E, const L: usize>(std::marker::PhantomData<E>);

#[cfg(target_arch = "x86_64")]
impl<E, const L: usize> TransposeWords<E, L> {
    const LO: [[u32; 16]; 4] = transpose_words(std::mem::size_of::<E>() / 4, L, 0);
    const HI: [[u32; 16]; 4] = transpose_words(std::mem::size_of::<E>() / 4, L, 1);
}

/// Stage `k` of a square transpose of `L` vectors pairs row `i` with row
/// `i + b` (`b = L >> (k + 1)`, `i / b` even) and, in every segment of
/// `2b` lanes, puts the first's `b` lanes before the second's: from the
/// segment's first half (`upper` 0, row `i`'s new value) or its second
/// (`upper` 1, row `i + b`'s). Words of the second row are numbered from
/// 16, as a two-source permute numbers them.
#[cfg(target_arch = "x86_64")]
const fn transpose_words(per: usize, lanes: usize, upper: usize) -> [[u32; 16]; 4] {
    let mut table = [[0u32; 16]; 4];
    let mut stage = 0;
    while stage < 4 && (lanes >> (stage + 1)) >= 1 {
        let b = lanes >> (stage + 1);
        let mut j = 0;
        while j < lanes * per {
            let (lane, part) = (j / per, j % per);
            let (segment, within) = (lane / (2 * b), lane % (2 * b));
            let (from_second, at) = if within < b {
                (0, segment * 2 * b + upper * b + within)
            } else {
                (16, segment * 2 * b + upper * b + within - b)
            };
            table[stage][j] = (at * per + part) as u32 + from_second;
            j += 1;
        }
        stage += 1;
    }
    table
}

/// [`transpose`] on AVX-512 registers: `log2(L)` stages of two two-source
/// permutes per pair of rows.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose_avx512<E: Float, const L: usize>(rows: [[E; L]; L]) -> [[E; L]; L] {
    use std::arch::x86_64::*;
    assert_eq!(L * std::mem::size_of::<E>(), 64, "one vector of 16 words");
    // SAFETY: each [E; L] is 64 bytes (asserted), the width of one load.
    let mut r: [__m512; L] =
        std::array::from_fn(|k| unsafe { _mm512_loadu_ps(rows[k].as_ptr().cast()) });
    let mut stage = 0;
    while (L >> (stage + 1)) >= 1 {
        let b = L >> (stage + 1);
        let (lo, hi) = (
            &TransposeWords::<E, L>::LO[stage],
            &TransposeWords::<E, L>::HI[stage],
        );
        // SAFETY: 16 words each.
        let (lo, hi) = unsafe {
            (
                _mm512_loadu_si512(lo.as_ptr().cast()),
                _mm512_loadu_si512(hi.as_ptr().cast()),
            )
        };
        for i in (0..L).filter(|i| (i / b).is_multiple_of(2)) {
            let (a, c) = (r[i], r[i + b]);
            r[i] = _mm512_permutex2var_ps(a, lo, c);
            r[i + b] = _mm512_permutex2var_ps(a, hi, c);
        }
        stage += 1;
    }
    let mut columns = [[E::ZERO; L]; L];
    for (column, v) in columns.iter_mut().zip(&r) {
        // SAFETY: 64 bytes into an [E; L] of 64 bytes.
        unsafe { _mm512_storeu_ps(column.as_mut_ptr().cast(), *v) };
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    fn group<E: Float, const L: usize>(rng: &mut Rng) -> [[E; L]; L] {
        std::array::from_fn(|_| std::array::from_fn(|_| E::from_f64(rng.uniform(-1.0, 1.0))))
    }

    /// The plain reduction sums each vector's lanes (against a sum in f64),
    /// and the vector reductions give its sums bit for bit.
    fn check<E: Float, const L: usize>(seed: u64) {
        let mut rng = Rng::new(seed);
        for _ in 0..20 {
            let vs = group::<E, L>(&mut rng);
            let plain = reduce_group(vs);
            for (k, (&sum, v)) in plain.iter().zip(&vs).enumerate() {
                let want: f64 = v.iter().map(|x| x.to_f64()).sum();
                assert!((sum.to_f64() - want).abs() < 1e-5, "lane sum {k}");
            }
            #[cfg(target_arch = "x86_64")]
            {
                let bits = |v: [E; L]| v.map(|x| x.to_f64().to_bits());
                if L * std::mem::size_of::<E>() == 64 && SimdLevel::new(SimdKind::Avx512).is_ok() {
                    // SAFETY: AVX-512F was just detected.
                    assert_eq!(bits(unsafe { reduce_group_avx512(vs) }), bits(plain));
                }
                if L * std::mem::size_of::<E>() == 32 && SimdLevel::new(SimdKind::Avx2).is_ok() {
                    // SAFETY: AVX2 was just detected.
                    assert_eq!(bits(unsafe { reduce_group_avx2(vs) }), bits(plain));
                }
            }
        }
    }

    #[test]
    fn vector_reductions_match_the_plain_one() {
        check::<f32, 16>(1);
        check::<f64, 8>(2);
        check::<f32, 8>(3);
        check::<f64, 4>(4);
        check::<f32, 4>(5);
    }

    fn check_transpose<E: Float, const L: usize>(seed: u64) {
        let mut rng = Rng::new(seed);
        let rows = group::<E, L>(&mut rng);
        let columns = transpose(rows);
        for (p, row) in rows.iter().enumerate() {
            for (c, &x) in row.iter().enumerate() {
                assert_eq!(columns[c][p], x);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if L * std::mem::size_of::<E>() == 64 && SimdLevel::new(SimdKind::Avx512).is_ok() {
            // SAFETY: AVX-512F was just detected.
            let fast = unsafe { transpose_avx512(rows) };
            assert!(fast
                .iter()
                .flatten()
                .zip(columns.iter().flatten())
                .all(|(a, b)| a == b));
        }
    }

    #[test]
    fn transposes_match_the_plain_one() {
        check_transpose::<f32, 16>(6);
        check_transpose::<f64, 8>(7);
        check_transpose::<f32, 8>(8);
    }

    #[test]
    fn input_rows_meet_the_output_rows_they_should() {
        // 14 input rows, a 5-row kernel, 10 output rows, no padding.
        let counts: Vec<usize> = (0..14).map(|ih| valid_taps(ih, 0, 5, 10).len()).collect();
        assert_eq!(counts, [1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 4, 3, 2, 1]);
    }
}

//! Direct convolution with the images of the batch in the vector lanes,
//! for stride-1 layers with few channels on both sides (LeNet's two
//! layers).
//!
//! Putting output positions in the lanes leaves lanes idle on narrow rows
//! (a 10-wide row in 16 lanes), and putting channels there leaves them idle
//! when a layer has 6 of them; both need one load per FMA, because each
//! FMA reads its own input value. Here images are taken `L` at a time and
//! each block is transposed once into `[channel][row][column][lane]` (lane
//! `l` holds image `l` of the block, zero-padded in space and past the end
//! of the batch). Every lane then does the same work on its own image, so
//! no lane idles whatever the rows or channels, and the register block can
//! be shaped for reuse:
//!
//! * forward: a block of `C` output channels by `R` adjacent output
//!   positions keeps `C·R` accumulator vectors; each tap loads the `R`
//!   input vectors it reads and broadcasts `C` weights for `C·R` FMAs
//!   (with `C = 6, R = 4`: 10 loads feed 24 FMAs). Results are transposed
//!   back to NCHW block by block;
//! * input gradient: the forward pass on the zero-padded output gradient
//!   with the flipped, channel-swapped kernel (stride 1), as the other
//!   direct kernels do it;
//! * weight gradient: `C` output channels by `T` taps of accumulators, each
//!   summing `dy · x` over the positions and the images of its lanes; each
//!   position loads `C + T` vectors for `C·T` FMAs. Each sum's lanes are
//!   added at the end in a fixed order, and each weight is summed by one
//!   task, so results do not depend on the thread count.
//!
//! The loops are plain Rust compiled once per SIMD level with that level's
//! target features, the accumulators arrays of that level's registers
//! ([`Lanes`]); tiles are sized to its register count.

use super::channel_lanes::transpose;
#[cfg(target_arch = "x86_64")]
use super::channel_lanes::transpose_avx512;
use super::tap_offsets;
use crate::parallel::{for_each_chunk, map_indices};
use crate::scratch::{PlainData, Scratch};
use crate::simd::{SimdKind, SimdLevel};
use crate::{Conv2dShape, Float};
use std::cmp::Reverse;
use std::ops::Range;

/// Most channels a layer may have on either side: with more, the other
/// kernels have enough rows and columns to fill their vectors and run
/// faster (a 3 -> 64 layer on 32x32 images measured 1.5-2x slower here
/// than direct and im2col), and `auto` would only spend time timing this one.
const MAX_CHANNELS: usize = 16;

/// Whether this kernel computes `s` (every pass: stride 1, no dilation,
/// one group, padding inside the kernel, and few channels on both sides).
pub(crate) fn suits(s: &Conv2dShape) -> bool {
    s.stride == (1, 1)
        && s.dilation == (1, 1)
        && s.groups == 1
        && s.padding.0 < s.kernel_h
        && s.padding.1 < s.kernel_w
        && s.out_h() > 0
        && s.out_w() > 0
        && s.in_channels.max(s.out_channels) <= MAX_CHANNELS
}

/// Accumulator vectors a register block may hold at `level` (the other
/// registers hold the loaded and broadcast operands).
fn accumulator_budget(level: SimdLevel) -> usize {
    match level.kind() {
        SimdKind::Avx512 => 24,
        _ => 12,
    }
}

/// Forward tiles `(C, R)`: output channels by adjacent output positions.
const FORWARD_TILES: [(usize, usize); 9] = [
    (6, 4),
    (4, 5),
    (4, 4),
    (3, 8),
    (3, 7),
    (2, 8),
    (3, 4),
    (2, 6),
    (2, 5),
];

/// Weight-gradient tiles `(C, T)`: output channels by taps.
const WEIGHT_TILES: [(usize, usize); 6] = [(4, 5), (4, 4), (3, 5), (4, 3), (3, 4), (2, 5)];

/// The tile within `level`'s register budget that computes the fewest
/// padded values of an `a × b` problem (ties: the larger tile).
fn pick_tile(tiles: &[(usize, usize)], level: SimdLevel, a: usize, b: usize) -> (usize, usize) {
    let budget = accumulator_budget(level);
    tiles
        .iter()
        .copied()
        .filter(|&(c, r)| c * r <= budget)
        .min_by_key(|&(c, r)| (a.div_ceil(c) * c * b.div_ceil(r) * r, Reverse(c * r)))
        .unwrap_or((2, 5))
}

/// Where a block of images lies in the zero-padded, lane-interleaved
/// layout: planes of `ph` rows of `pw` positions, each position `L` values.
#[derive(Clone, Copy)]
pub(crate) struct Planes {
    channels: usize,
    h: usize,
    w: usize,
    /// Zero rows above and columns left of the image.
    top: usize,
    left: usize,
    ph: usize,
    pw: usize,
}

impl Planes {
    fn positions(&self) -> usize {
        self.channels * self.ph * self.pw
    }
}

/// Images `images` of `src` (NCHW with `p.channels` planes of `h×w`) into
/// `dst` (`p.positions()` vectors of `L`): lane `l` holds image
/// `images.start + l`; borders and lanes past the images are zero. Each
/// plane is read `L` positions at a time from `L` images and transposed.
#[inline(always)]
fn to_lanes<E: Float, const L: usize>(
    src: &[E],
    images: Range<usize>,
    p: Planes,
    dst: &mut [E],
    transpose: &impl Fn([[E; L]; L]) -> [[E; L]; L],
) {
    let dst = &mut dst[..p.positions() * L];
    dst.fill(E::ZERO);
    let plane = p.h * p.w;
    let image_len = p.channels * plane;
    let n = images.len().min(L);
    let at = |c: usize, q: usize| ((c * p.ph + q / p.w + p.top) * p.pw + p.left + q % p.w) * L;
    for c in 0..p.channels {
        let row = |l: usize| (images.start + l) * image_len + c * plane;
        let whole = plane / L * L;
        for q0 in (0..whole).step_by(L) {
            let rows: [[E; L]; L] = std::array::from_fn(|l| {
                if l < n {
                    src[row(l) + q0..][..L].try_into().expect("L values")
                } else {
                    [E::ZERO; L]
                }
            });
            for (i, column) in transpose(rows).iter().enumerate() {
                dst[at(c, q0 + i)..][..L].copy_from_slice(column);
            }
        }
        for q in whole..plane {
            let to = at(c, q);
            for l in 0..n {
                dst[to + l] = src[row(l) + q];
            }
        }
    }
}

/// The inverse for outputs: `out` (NCHW, the block's `images` only) from
/// `src` (`channels` planes of `positions` vectors), plus the bias.
#[inline(always)]
fn from_lanes<E: Float, const L: usize>(
    src: &[E],
    (channels, positions): (usize, usize),
    bias: Option<&[E]>,
    out: &mut [E],
    transpose: &impl Fn([[E; L]; L]) -> [[E; L]; L],
) {
    let image_len = channels * positions;
    let n = out.len() / image_len;
    let whole = positions / L * L;
    for c in 0..channels {
        let b = bias.map_or(E::ZERO, |b| b[c]);
        let plane = &src[c * positions * L..][..positions * L];
        for q0 in (0..whole).step_by(L) {
            let rows: [[E; L]; L] =
                std::array::from_fn(|i| plane[(q0 + i) * L..][..L].try_into().expect("L lanes"));
            for (l, column) in transpose(rows).iter().enumerate().take(n) {
                let dst = &mut out[l * image_len + c * positions + q0..][..L];
                for (d, &v) in dst.iter_mut().zip(column) {
                    *d = v + b;
                }
            }
        }
        for q in whole..positions {
            for l in 0..n {
                out[l * image_len + c * positions + q] = plane[q * L + l] + b;
            }
        }
    }
}

/// Sizes shared by the blocks of one forward call.
pub(crate) struct ForwardGeometry {
    input: Planes,
    out_channels: usize,
    out_h: usize,
    out_w: usize,
    /// Output channels rounded up to whole tiles (the weights are padded with zeros).
    ocp: usize,
    /// Where tap `(c, kh, kw)` reads, in positions from a block's first.
    taps: Vec<usize>,
}

/// `out = conv(input, weight) + bias` for a shape that [`suits`].
pub(crate) fn forward<E: BatchLaneElement>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
    parallel: bool,
) {
    let (c, r) = pick_tile(&FORWARD_TILES, level, s.out_channels, s.out_w());
    E::forward(level, (c, r), (s, parallel), (input, weight, bias, out));
}

/// The weight gradient (overwriting `dw`) for a shape that [`suits`].
pub(crate) fn backward_weight<E: BatchLaneElement>(
    level: SimdLevel,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    dw: &mut [E],
    parallel: bool,
) {
    let taps = s.in_channels * s.kernel_h * s.kernel_w;
    let (c, t) = pick_tile(&WEIGHT_TILES, level, s.out_channels, taps);
    E::backward_weight(level, (c, t), (s, parallel), (input, grad_out, dw));
}

/// A forward call's input, weights, bias and output.
type ForwardData<'a, E> = (&'a [E], &'a [E], Option<&'a [E]>, &'a mut [E]);
/// A weight-gradient call's input, output gradient and weight gradient.
type WeightData<'a, E> = (&'a [E], &'a [E], &'a mut [E]);

/// Element types with batch-lane kernels, each compiled for the lane
/// count of that type at every SIMD level.
pub(crate) trait BatchLaneElement: Float + PlainData {
    /// The forward pass with `(C, R)` tiles.
    fn forward(
        level: SimdLevel,
        tile: (usize, usize),
        call: (&Conv2dShape, bool),
        data: ForwardData<'_, Self>,
    );
    /// The weight gradient with `(C, T)` tiles.
    fn backward_weight(
        level: SimdLevel,
        tile: (usize, usize),
        call: (&Conv2dShape, bool),
        data: WeightData<'_, Self>,
    );
}

/// The instruction set one compiled copy of the kernels runs (each lane
/// count belongs to one SIMD level, so only that level's copy is built).
pub(crate) trait Isa {
    /// One block of images of the forward pass.
    fn forward<E: Float, V: Lanes<E>, const L: usize, const C: usize, const R: usize>(
        level: SimdLevel,
        block: ForwardBlock<'_, E>,
    );
    /// One block of images into lanes (see [`to_lanes`]).
    fn to_lanes<E: Float, const L: usize>(
        level: SimdLevel,
        src: &[E],
        images: Range<usize>,
        planes: Planes,
        dst: &mut [E],
    );
    /// One tile of weight-gradient sums.
    fn weight_tile<E: Float, V: Lanes<E>, const L: usize, const C: usize, const T: usize>(
        level: SimdLevel,
        args: TileArgs<'_, E>,
    ) -> [[E; T]; C];
}

/// Plain Rust for the baseline target.
pub(crate) struct Portable;
/// AVX-512F.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx512;
/// AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

impl Isa for Portable {
    fn forward<E: Float, V: Lanes<E>, const L: usize, const C: usize, const R: usize>(
        _: SimdLevel,
        block: ForwardBlock<'_, E>,
    ) {
        forward_block::<E, V, L, C, R>(block, &transpose)
    }
    fn to_lanes<E: Float, const L: usize>(
        _: SimdLevel,
        src: &[E],
        images: Range<usize>,
        planes: Planes,
        dst: &mut [E],
    ) {
        to_lanes::<E, L>(src, images, planes, dst, &transpose)
    }
    fn weight_tile<E: Float, V: Lanes<E>, const L: usize, const C: usize, const T: usize>(
        _: SimdLevel,
        args: TileArgs<'_, E>,
    ) -> [[E; T]; C] {
        weight_tile::<E, V, L, C, T>(args)
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx512 {
    fn forward<E: Float, V: Lanes<E>, const L: usize, const C: usize, const R: usize>(
        level: SimdLevel,
        block: ForwardBlock<'_, E>,
    ) {
        assert_eq!(level.kind(), SimdKind::Avx512);
        #[target_feature(enable = "avx512f")]
        fn run<E: Float, V: Lanes<E>, const L: usize, const C: usize, const R: usize>(
            block: ForwardBlock<'_, E>,
        ) {
            // SAFETY: this copy runs only where AVX-512F is proven.
            forward_block::<E, V, L, C, R>(block, &|rows| unsafe { transpose_avx512(rows) })
        }
        // SAFETY: a level of this kind proves AVX-512F (see `crate::simd`).
        unsafe { run::<E, V, L, C, R>(block) }
    }
    fn to_lanes<E: Float, const L: usize>(
        level: SimdLevel,
        src: &[E],
        images: Range<usize>,
        planes: Planes,
        dst: &mut [E],
    ) {
        assert_eq!(level.kind(), SimdKind::Avx512);
        #[target_feature(enable = "avx512f")]
        fn run<E: Float, const L: usize>(
            src: &[E],
            images: Range<usize>,
            planes: Planes,
            dst: &mut [E],
        ) {
            // SAFETY: this copy runs only where AVX-512F is proven.
            to_lanes::<E, L>(src, images, planes, dst, &|rows| unsafe {
                transpose_avx512(rows)
            })
        }
        // SAFETY: as for `forward`.
        unsafe { run::<E, L>(src, images, planes, dst) }
    }
    fn weight_tile<E: Float, V: Lanes<E>, const L: usize, const C: usize, const T: usize>(
        level: SimdLevel,
        args: TileArgs<'_, E>,
    ) -> [[E; T]; C] {
        assert_eq!(level.kind(), SimdKind::Avx512);
        #[target_feature(enable = "avx512f")]
        fn run<E: Float, V: Lanes<E>, const L: usize, const C: usize, const T: usize>(
            args: TileArgs<'_, E>,
        ) -> [[E; T]; C] {
            weight_tile::<E, V, L, C, T>(args)
        }
        // SAFETY: as for `forward`.
        unsafe { run::<E, V, L, C, T>(args) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    fn forward<E: Float, V: Lanes<E>, const L: usize, const C: usize, const R: usize>(
        level: SimdLevel,
        block: ForwardBlock<'_, E>,
    ) {
        assert!(level.kind() >= SimdKind::Avx2);
        #[target_feature(enable = "avx2,fma")]
        fn run<E: Float, V: Lanes<E>, const L: usize, const C: usize, const R: usize>(
            block: ForwardBlock<'_, E>,
        ) {
            forward_block::<E, V, L, C, R>(block, &transpose)
        }
        // SAFETY: a level of this kind (or AVX-512's, which includes it)
        // proves AVX2 and FMA.
        unsafe { run::<E, V, L, C, R>(block) }
    }
    fn to_lanes<E: Float, const L: usize>(
        level: SimdLevel,
        src: &[E],
        images: Range<usize>,
        planes: Planes,
        dst: &mut [E],
    ) {
        assert!(level.kind() >= SimdKind::Avx2);
        #[target_feature(enable = "avx2,fma")]
        fn run<E: Float, const L: usize>(
            src: &[E],
            images: Range<usize>,
            planes: Planes,
            dst: &mut [E],
        ) {
            to_lanes::<E, L>(src, images, planes, dst, &transpose)
        }
        // SAFETY: as for `forward`.
        unsafe { run::<E, L>(src, images, planes, dst) }
    }
    fn weight_tile<E: Float, V: Lanes<E>, const L: usize, const C: usize, const T: usize>(
        level: SimdLevel,
        args: TileArgs<'_, E>,
    ) -> [[E; T]; C] {
        assert!(level.kind() >= SimdKind::Avx2);
        #[target_feature(enable = "avx2,fma")]
        fn run<E: Float, V: Lanes<E>, const L: usize, const C: usize, const T: usize>(
            args: TileArgs<'_, E>,
        ) -> [[E; T]; C] {
            weight_tile::<E, V, L, C, T>(args)
        }
        // SAFETY: as for `forward`.
        unsafe { run::<E, V, L, C, T>(args) }
    }
}

macro_rules! forward_tiles {
    ($e:ty, $i:ty, $v:ty, $l:literal, $tile:expr, $args:expr) => {
        match $tile {
            (6, 4) => run_forward::<$e, $i, $v, $l, 6, 4>($args),
            (4, 5) => run_forward::<$e, $i, $v, $l, 4, 5>($args),
            (4, 4) => run_forward::<$e, $i, $v, $l, 4, 4>($args),
            (3, 8) => run_forward::<$e, $i, $v, $l, 3, 8>($args),
            (3, 7) => run_forward::<$e, $i, $v, $l, 3, 7>($args),
            (2, 8) => run_forward::<$e, $i, $v, $l, 2, 8>($args),
            (3, 4) => run_forward::<$e, $i, $v, $l, 3, 4>($args),
            (2, 6) => run_forward::<$e, $i, $v, $l, 2, 6>($args),
            (2, 5) => run_forward::<$e, $i, $v, $l, 2, 5>($args),
            tile => unreachable!("forward tile {tile:?} is not compiled"),
        }
    };
}

macro_rules! weight_tiles {
    ($e:ty, $i:ty, $v:ty, $l:literal, $tile:expr, $args:expr) => {
        match $tile {
            (3, 5) => run_weight::<$e, $i, $v, $l, 3, 5>($args),
            (4, 5) => run_weight::<$e, $i, $v, $l, 4, 5>($args),
            (4, 4) => run_weight::<$e, $i, $v, $l, 4, 4>($args),
            (3, 4) => run_weight::<$e, $i, $v, $l, 3, 4>($args),
            (4, 3) => run_weight::<$e, $i, $v, $l, 4, 3>($args),
            (2, 5) => run_weight::<$e, $i, $v, $l, 2, 5>($args),
            tile => unreachable!("weight-gradient tile {tile:?} is not compiled"),
        }
    };
}

macro_rules! impl_batch_lane_element {
    ($e:ty, $avx512_v:ty, $avx512:literal, $avx2_v:ty, $avx2:literal) => {
        impl BatchLaneElement for $e {
            fn forward(
                level: SimdLevel,
                tile: (usize, usize),
                call: (&Conv2dShape, bool),
                data: ForwardData<'_, Self>,
            ) {
                let args = (level, call, data);
                match level.kind() {
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx512 => forward_tiles!($e, Avx512, $avx512_v, $avx512, tile, args),
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx2 => forward_tiles!($e, Avx2, $avx2_v, $avx2, tile, args),
                    _ => forward_tiles!($e, Portable, [$e; 4], 4, tile, args),
                }
            }

            fn backward_weight(
                level: SimdLevel,
                tile: (usize, usize),
                call: (&Conv2dShape, bool),
                data: WeightData<'_, Self>,
            ) {
                let args = (level, call, data);
                match level.kind() {
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx512 => weight_tiles!($e, Avx512, $avx512_v, $avx512, tile, args),
                    #[cfg(target_arch = "x86_64")]
                    SimdKind::Avx2 => weight_tiles!($e, Avx2, $avx2_v, $avx2, tile, args),
                    _ => weight_tiles!($e, Portable, [$e; 4], 4, tile, args),
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
impl_batch_lane_element!(f32, x86::F32x16, 16, x86::F32x8, 8);
#[cfg(target_arch = "x86_64")]
impl_batch_lane_element!(f64, x86::F64x8, 8, x86::F64x4, 4);
#[cfg(not(target_arch = "x86_64"))]
impl_batch_lane_element!(f32, [f32; 4], 4, [f32; 4], 4);
#[cfg(not(target_arch = "x86_64"))]
impl_batch_lane_element!(f64, [f64; 4], 4, [f64; 4], 4);

/// One vector of lanes: a SIMD register of a level (the intrinsics of
/// that level), or a plain array for the portable build. The kernels keep
/// their accumulators in arrays of these, which the compiler keeps in
/// registers whatever the tile's shape (plain arrays of lanes are
/// vectorised for some tile shapes and left scalar for others).
pub(crate) trait Lanes<E: Float>: Copy {
    /// All lanes zero.
    ///
    /// # Safety
    /// For this and every other method: the CPU has the features of the
    /// type's level.
    unsafe fn zero() -> Self;
    /// The lanes from `p`.
    ///
    /// # Safety
    /// As for [`Lanes::zero`], and `p` must have one vector's values readable.
    unsafe fn load(p: *const E) -> Self;
    /// Every lane `x`.
    ///
    /// # Safety
    /// As for [`Lanes::zero`].
    unsafe fn splat(x: E) -> Self;
    /// `self · b + acc` per lane (fused where the level has FMA).
    ///
    /// # Safety
    /// As for [`Lanes::zero`].
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self;
    /// The lanes in order (`L` of them).
    ///
    /// # Safety
    /// As for [`Lanes::zero`]; `L` must be this type's lane count.
    unsafe fn to_array<const L: usize>(self) -> [E; L];
}

impl<E: Float> Lanes<E> for [E; 4] {
    unsafe fn zero() -> Self {
        [E::ZERO; 4]
    }
    unsafe fn load(p: *const E) -> Self {
        // SAFETY: the caller guarantees four readable values at `p`.
        unsafe { std::ptr::read_unaligned(p.cast::<[E; 4]>()) }
    }
    unsafe fn splat(x: E) -> Self {
        [x; 4]
    }
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
        // A separate multiply and add: without FMA hardware `mul_add` is a
        // slow library call.
        std::array::from_fn(|l| acc[l] + self[l] * b[l])
    }
    unsafe fn to_array<const L: usize>(self) -> [E; L] {
        std::array::from_fn(|l| self[l])
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    macro_rules! lanes_type {
        ($name:ident, $e:ty, $l:literal, $v:ty,
         $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident) => {
            /// One register of this level.
            #[derive(Clone, Copy)]
            pub(crate) struct $name($v);

            impl Lanes<$e> for $name {
                #[inline(always)]
                unsafe fn zero() -> Self {
                    // SAFETY: the caller guarantees the level's features.
                    $name(unsafe { $zero() })
                }
                #[inline(always)]
                unsafe fn load(p: *const $e) -> Self {
                    // SAFETY: the caller guarantees the features and the values.
                    $name(unsafe { $load(p) })
                }
                #[inline(always)]
                unsafe fn splat(x: $e) -> Self {
                    // SAFETY: the caller guarantees the level's features.
                    $name(unsafe { $set1(x) })
                }
                #[inline(always)]
                unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
                    // SAFETY: the caller guarantees the level's features.
                    $name(unsafe { $fma(self.0, b.0, acc.0) })
                }
                #[inline(always)]
                unsafe fn to_array<const L: usize>(self) -> [$e; L] {
                    assert_eq!(L, $l, "lanes of one register");
                    let mut lanes = [0.0; L];
                    // SAFETY: `L` values of room (asserted); the caller
                    // guarantees the level's features.
                    unsafe { $store(lanes.as_mut_ptr(), self.0) };
                    lanes
                }
            }
        };
    }

    lanes_type!(
        F32x16,
        f32,
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );
    lanes_type!(
        F64x8,
        f64,
        8,
        __m512d,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_storeu_pd
    );
    lanes_type!(
        F32x8,
        f32,
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_storeu_ps
    );
    lanes_type!(
        F64x4,
        f64,
        4,
        __m256d,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_set1_pd,
        _mm256_fmadd_pd,
        _mm256_storeu_pd
    );
}

fn run_forward<
    E: Float + PlainData,
    I: Isa,
    V: Lanes<E>,
    const L: usize,
    const C: usize,
    const R: usize,
>(
    (level, (s, parallel), (input, weight, bias, out)): (
        SimdLevel,
        (&Conv2dShape, bool),
        ForwardData<'_, E>,
    ),
) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    // Blocks of R positions may run past a row's end (their extra results
    // are dropped): the padded rows have room for them.
    let pw = (s.in_w + 2 * s.padding.1).max(out_w.div_ceil(R) * R + s.kernel_w - 1);
    let input_planes = Planes {
        channels: s.in_channels,
        h: s.in_h,
        w: s.in_w,
        top: s.padding.0,
        left: s.padding.1,
        ph: s.in_h + 2 * s.padding.0,
        pw,
    };
    let taps = tap_offsets(s, s.in_channels, input_planes.ph * pw, pw);
    let ocp = s.out_channels.div_ceil(C) * C;
    // Weights as [tap][channel], padded to whole tiles with zeros.
    let mut w_scratch = Scratch::take();
    let wt = w_scratch.slice::<E>(taps.len() * ocp);
    wt.fill(E::ZERO);
    for oc in 0..s.out_channels {
        for t in 0..taps.len() {
            wt[t * ocp + oc] = weight[oc * taps.len() + t];
        }
    }
    let g = ForwardGeometry {
        input: input_planes,
        out_channels: s.out_channels,
        out_h,
        out_w,
        ocp,
        taps,
    };
    let (g, wt) = (&g, &*wt);
    let in_image = s.in_channels * s.in_h * s.in_w;
    let out_image = s.out_channels * out_h * out_w;
    let batch = s.batch;
    let block = |b: usize, out: &mut [E]| {
        let first = b * L;
        let images = first..(first + L).min(batch);
        let mut x_scratch = Scratch::take();
        let mut y_scratch = Scratch::take();
        let job = ForwardBlock {
            g,
            input: &input[..batch * in_image],
            images,
            x_lanes: x_scratch.slice::<E>(g.input.positions() * L),
            y_lanes: y_scratch.slice::<E>(ocp * out_h * out_w * L),
            weights: wt,
            bias,
            out,
        };
        I::forward::<E, V, L, C, R>(level, job);
    };
    for_each_chunk(
        &mut out[..batch * out_image],
        L * out_image,
        parallel,
        block,
    );
}

/// One block of images of a forward call.
pub(crate) struct ForwardBlock<'a, E> {
    g: &'a ForwardGeometry,
    /// The whole input, and the images of this block.
    input: &'a [E],
    images: Range<usize>,
    /// Scratch for the block's input and output in lanes.
    x_lanes: &'a mut [E],
    y_lanes: &'a mut [E],
    /// The weights as `[tap][channel]`, padded to whole tiles.
    weights: &'a [E],
    bias: Option<&'a [E]>,
    /// The block's images of the output (NCHW).
    out: &'a mut [E],
}

/// One block of images: into lanes, every `C×R` tile, back to NCHW.
#[inline(always)]
fn forward_block<E: Float, V: Lanes<E>, const L: usize, const C: usize, const R: usize>(
    block: ForwardBlock<'_, E>,
    transpose: &impl Fn([[E; L]; L]) -> [[E; L]; L],
) {
    let ForwardBlock {
        g,
        input,
        images,
        x_lanes: xl,
        y_lanes: yl,
        weights: wt,
        bias,
        out,
    } = block;
    to_lanes::<E, L>(input, images, g.input, xl, transpose);
    let positions = g.out_h * g.out_w;
    let pw = g.input.pw;
    let last_tap = g.taps.iter().copied().max().unwrap_or(0);
    let xl = &*xl;
    for oc0 in (0..g.ocp).step_by(C) {
        for oh in 0..g.out_h {
            for ow0 in (0..g.out_w).step_by(R) {
                let base = oh * pw + ow0;
                // Every read below is at `(base + tap + r)·L + l`, r < R, l < L:
                // checked once here, so that the compiler can drop the checks.
                assert!((base + last_tap + R) * L <= xl.len());
                let x = xl.as_ptr();
                // SAFETY: the caller's level has the features of `V` (so
                // for every vector operation below).
                let mut acc = [[unsafe { V::zero() }; R]; C];
                for (t, &tap) in g.taps.iter().enumerate() {
                    let w: &[E; C] = wt[t * g.ocp + oc0..][..C].try_into().expect("C weights");
                    // SAFETY: in bounds by the assertion above.
                    let xs: [V; R] =
                        std::array::from_fn(|r| unsafe { V::load(x.add((base + tap + r) * L)) });
                    for (acc_c, &wc) in acc.iter_mut().zip(w) {
                        // SAFETY: the level has the features of `V`.
                        let wv = unsafe { V::splat(wc) };
                        for (a, &xv) in acc_c.iter_mut().zip(&xs) {
                            // SAFETY: as above.
                            *a = unsafe { xv.mul_add(wv, *a) };
                        }
                    }
                }
                for (c, acc_c) in acc.iter().enumerate() {
                    let oc = oc0 + c;
                    if oc >= g.out_channels {
                        break;
                    }
                    for (r, acc_r) in acc_c.iter().enumerate().take(g.out_w - ow0) {
                        let at = (oc * positions + oh * g.out_w + ow0 + r) * L;
                        let dst: &mut [E; L] = (&mut yl[at..at + L]).try_into().expect("L lanes");
                        // SAFETY: the level has the features of `V`, of `L` lanes.
                        *dst = unsafe { acc_r.to_array() };
                    }
                }
            }
        }
    }
    from_lanes::<E, L>(yl, (g.out_channels, positions), bias, out, transpose);
}

fn run_weight<
    E: Float + PlainData,
    I: Isa,
    V: Lanes<E>,
    const L: usize,
    const C: usize,
    const T: usize,
>(
    (level, (s, parallel), (input, grad_out, dw)): (
        SimdLevel,
        (&Conv2dShape, bool),
        WeightData<'_, E>,
    ),
) {
    let (out_h, out_w) = (s.out_h(), s.out_w());
    let positions = out_h * out_w;
    let x_planes = Planes {
        channels: s.in_channels,
        h: s.in_h,
        w: s.in_w,
        top: s.padding.0,
        left: s.padding.1,
        ph: s.in_h + 2 * s.padding.0,
        pw: s.in_w + 2 * s.padding.1,
    };
    let dy_planes = Planes {
        channels: s.out_channels,
        h: out_h,
        w: out_w,
        top: 0,
        left: 0,
        ph: out_h,
        pw: out_w,
    };
    let (x_len, dy_len) = (x_planes.positions() * L, dy_planes.positions() * L);
    let blocks = s.batch.div_ceil(L);
    let in_image = s.in_channels * s.in_h * s.in_w;
    let out_image = s.out_channels * positions;
    // Every block of images in lanes: its input, then its output gradient.
    let mut lane_scratch = Scratch::take();
    let lanes = lane_scratch.slice::<E>(blocks * (x_len + dy_len));
    let (input, grad_out) = (
        &input[..s.batch * in_image],
        &grad_out[..s.batch * out_image],
    );
    let batch = s.batch;
    for_each_chunk(lanes, x_len + dy_len, parallel, |b, chunk| {
        let images = b * L..(b * L + L).min(batch);
        let (xl, dyl) = chunk.split_at_mut(x_len);
        I::to_lanes::<E, L>(level, input, images.clone(), x_planes, xl);
        I::to_lanes::<E, L>(level, grad_out, images, dy_planes, dyl);
    });
    let lanes = &*lanes;
    let taps = tap_offsets(s, s.in_channels, x_planes.ph * x_planes.pw, x_planes.pw);
    let tap_blocks = taps.len().div_ceil(T);
    let channel_blocks = s.out_channels.div_ceil(C);
    let geometry = WeightGeometry {
        blocks,
        block_len: x_len + dy_len,
        x_len,
        out_channels: s.out_channels,
        out_h,
        out_w,
        pw: x_planes.pw,
        taps: &taps,
    };
    let g = &geometry;
    let sums = map_indices(channel_blocks * tap_blocks, parallel, |item| {
        let (oc0, t0) = ((item / tap_blocks) * C, (item % tap_blocks) * T);
        I::weight_tile::<E, V, L, C, T>(level, (g, lanes, oc0, t0))
    });
    let k = taps.len();
    for (item, tile) in sums.iter().enumerate() {
        let (oc0, t0) = ((item / tap_blocks) * C, (item % tap_blocks) * T);
        for (c, row) in tile.iter().enumerate().take(s.out_channels - oc0) {
            for (t, &v) in row.iter().enumerate().take(k - t0) {
                dw[(oc0 + c) * k + t0 + t] = v;
            }
        }
    }
}

/// A weight tile's geometry, the lanes of every image block, and its first
/// output channel and tap.
pub(crate) type TileArgs<'a, E> = (&'a WeightGeometry<'a>, &'a [E], usize, usize);

/// Sizes shared by the tiles of one weight-gradient call.
pub(crate) struct WeightGeometry<'a> {
    blocks: usize,
    /// Values per image block (its input, then its output gradient) and of its input.
    block_len: usize,
    x_len: usize,
    out_channels: usize,
    out_h: usize,
    out_w: usize,
    pw: usize,
    taps: &'a [usize],
}

/// The sums of one `C×T` tile of the weight gradient (output channels
/// from `oc0`, taps from `t0`; rows and taps past the end repeat the last
/// one and are dropped by the caller).
#[inline(always)]
fn weight_tile<E: Float, V: Lanes<E>, const L: usize, const C: usize, const T: usize>(
    (g, lanes, oc0, t0): TileArgs<'_, E>,
) -> [[E; T]; C] {
    let positions = g.out_h * g.out_w;
    let channels: [usize; C] = std::array::from_fn(|c| (oc0 + c).min(g.out_channels - 1));
    let taps: [usize; T] = std::array::from_fn(|t| g.taps[(t0 + t).min(g.taps.len() - 1)]);
    let last_tap = taps.iter().copied().max().unwrap_or(0);
    // SAFETY: the caller's level has the features of `V` (so for every
    // vector operation below).
    let mut acc = [[unsafe { V::zero() }; T]; C];
    for b in 0..g.blocks {
        let block = &lanes[b * g.block_len..][..g.block_len];
        let (xl, dyl) = block.split_at(g.x_len);
        // Every read below: x at `(q + tap)·L + l` with q at most
        // `(out_h - 1)·pw + out_w - 1`, dy at `(c·positions + p)·L + l`.
        assert!(((g.out_h - 1) * g.pw + g.out_w + last_tap) * L <= xl.len());
        assert!(g.out_channels * positions * L <= dyl.len());
        let (x, dy) = (xl.as_ptr(), dyl.as_ptr());
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let (p, q) = (oh * g.out_w + ow, oh * g.pw + ow);
                // SAFETY: in bounds by the assertions above.
                let xs: [V; T] =
                    std::array::from_fn(|t| unsafe { V::load(x.add((q + taps[t]) * L)) });
                // SAFETY: as above.
                let dys: [V; C] = std::array::from_fn(|c| unsafe {
                    V::load(dy.add((channels[c] * positions + p) * L))
                });
                for (acc_c, &d) in acc.iter_mut().zip(&dys) {
                    for (a, &xv) in acc_c.iter_mut().zip(&xs) {
                        // SAFETY: the level has the features of `V`.
                        *a = unsafe { d.mul_add(xv, *a) };
                    }
                }
            }
        }
    }
    // The lanes of each sum, added in lane order.
    acc.map(|row| {
        row.map(|v| {
            // SAFETY: the level has the features of `V`, of `L` lanes.
            unsafe { v.to_array::<L>() }
                .iter()
                .fold(E::ZERO, |s, &x| s + x)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{reference, Rng};

    fn random<E: Float>(rng: &mut Rng, n: usize) -> Vec<E> {
        (0..n)
            .map(|_| E::from_f64(rng.uniform(-1.0, 1.0)))
            .collect()
    }

    /// `got` against `want`, each value within `rel` of the sum of the
    /// absolute values of its terms (`scale`, plus one).
    fn assert_close<E: Float>(got: &[E], want: &[E], scale: &[E], rel: f64, what: &str) {
        for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
            let (g, w, s) = (g.to_f64(), w.to_f64(), s.to_f64());
            assert!(
                (g - w).abs() <= rel * (1.0 + s),
                "{what}: value {i}: {g} vs {w}"
            );
        }
    }

    /// Every compiled tile, at every SIMD level, against the reference:
    /// `pick_tile` takes only some of them for a given shape, so the
    /// proptests over shapes would leave the others unchecked. The shape
    /// leaves partial tiles for all of them (7 output channels, 13-wide
    /// output rows, 18 taps) and a partial block of images at every lane
    /// count (19 images).
    fn every_tile<E: BatchLaneElement>(rel: f64) {
        let s = Conv2dShape {
            batch: 19,
            in_channels: 2,
            in_h: 11,
            in_w: 11,
            out_channels: 7,
            kernel_h: 3,
            kernel_w: 3,
            stride: (1, 1),
            padding: (1, 2),
            dilation: (1, 1),
            groups: 1,
        };
        let mut rng = Rng::new(11);
        let x: Vec<E> = random(&mut rng, s.input_len());
        let w: Vec<E> = random(&mut rng, s.weight_len());
        let dy: Vec<E> = random(&mut rng, s.output_len());
        let bias: Vec<E> = random(&mut rng, s.out_channels);
        let abs = |v: &[E]| v.iter().map(|x| x.abs()).collect::<Vec<E>>();
        let mut want_y = vec![E::ZERO; s.output_len()];
        reference::conv2d_forward(&s, &x, &w, Some(&bias), &mut want_y);
        let mut scale_y = vec![E::ZERO; s.output_len()];
        reference::conv2d_forward(&s, &abs(&x), &abs(&w), Some(&abs(&bias)), &mut scale_y);
        let mut want_dw = vec![E::ZERO; s.weight_len()];
        reference::conv2d_backward_weight(&s, &x, &dy, &mut want_dw);
        let mut scale_dw = vec![E::ZERO; s.weight_len()];
        reference::conv2d_backward_weight(&s, &abs(&x), &abs(&dy), &mut scale_dw);
        for level in SimdLevel::supported() {
            for tile in FORWARD_TILES {
                let mut y = vec![E::from_f64(f64::NAN); s.output_len()];
                E::forward(level, tile, (&s, false), (&x, &w, Some(&bias), &mut y));
                let what = format!("{} forward {level} {tile:?}", E::NAME);
                assert_close(&y, &want_y, &scale_y, rel, &what);
            }
            for tile in WEIGHT_TILES {
                let mut dw = vec![E::from_f64(f64::NAN); s.weight_len()];
                E::backward_weight(level, tile, (&s, true), (&x, &dy, &mut dw));
                let what = format!("{} weight gradient {level} {tile:?}", E::NAME);
                assert_close(&dw, &want_dw, &scale_dw, rel, &what);
            }
        }
    }

    #[test]
    fn every_tile_matches_the_reference() {
        every_tile::<f32>(1e-5);
        every_tile::<f64>(1e-13);
    }

    #[test]
    fn tiles_are_picked_within_the_register_budget_for_the_fewest_padded_values() {
        let avx512 = SimdLevel::new(SimdKind::Avx512);
        let scalar = SimdLevel::SCALAR;
        // LeNet's second layer: 16 channels, 10-wide rows; its 150 taps.
        if let Ok(avx512) = avx512 {
            assert_eq!(pick_tile(&FORWARD_TILES, avx512, 16, 10), (4, 5));
            assert_eq!(pick_tile(&WEIGHT_TILES, avx512, 16, 150), (4, 5));
            // Its input gradient: 6 channels on 14-wide rows.
            assert_eq!(pick_tile(&FORWARD_TILES, avx512, 6, 14), (3, 7));
        }
        // Twelve accumulators at most without AVX-512.
        assert_eq!(pick_tile(&FORWARD_TILES, scalar, 16, 10), (2, 5));
        for tile in FORWARD_TILES.into_iter().chain(WEIGHT_TILES) {
            let (c, r) = pick_tile(&FORWARD_TILES, scalar, tile.0, tile.1);
            assert!(c * r <= 12);
        }
    }
}

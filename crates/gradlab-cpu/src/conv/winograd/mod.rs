//! Winograd convolution `F(m×m, 3×3)` for 3×3, stride-1 layers (the twin
//! is [`crate::reference::winograd`], which states the formula).
//!
//! The output is cut into `m×m` tiles; a *band* is one row of tiles of one
//! image. Bands are processed in blocks small enough that a block's
//! transformed input `V` and products `M` stay in L2. Both passes transform
//! each tile's `(m+2)²` input patch into `V = Bᵀ d B` (one value per
//! position `ξ` of the patch) and multiply by the packed GEMM, `(m+2)²`
//! products per block, with the transformed weights `U = G g Gᵀ` computed
//! once per call in f64 (a vector of output channels at a time):
//!
//! * the forward ([`forward`], and so the input gradient, the forward
//!   convolution of the output gradient with flipped kernels) has two
//!   forms. With *channels* in the vector lanes (the `channels`
//!   submodule): `V[ξ][tile][channel]`, products `M[ξ] = V[ξ] · U[ξ]`
//!   (tiles × input channels times input channels × output channels), and
//!   `Y = Aᵀ M A` plus the bias on vectors of output channels; every step
//!   is a whole vector however narrow the image. With *tiles* in the lanes
//!   (the `tiles` submodule): `V[ξ][channel][tile]` gathered from the
//!   input's rows split into phases, products `U[ξ] · V[ξ]` on `U` packed
//!   once and `V` read in place; cheaper where a row of tiles fills a
//!   vector. [`forward`] picks by the image's width;
//! * the weight gradient ([`weight_grad`]) uses the channels form's
//!   transforms: `V[ξ][tile][channel]` and the output gradient's
//!   `dM = A dY Aᵀ` as `dM[ξ][tile][channel]`, then
//!   `dU[ξ] = Σ dM[ξ]ᵀ · V[ξ]` over the tiles (the GEMM packs both
//!   operands with plain copies) and `Gᵀ dU G` per kernel, from partial
//!   sums over fixed runs of images added in f64. Measured on a 2-core
//!   AVX-512 Xeon (2 threads, batch 64) it beats the im2col weight
//!   gradient on the convnet's layers: `F(4×4)` 8.7-10.5 ms against
//!   13.9-14.7 on 64→128 16×16, `F(2×2)` 9.1-12.1 against 15.1-16.3 on
//!   128→256 8×8.
//!
//! The transforms are plain Rust on fixed-size arrays of `LANES` values,
//! compiled once per SIMD level with that level's target features.
//!
//! Blocks run in parallel; the split into blocks depends only on the shape
//! and the machine's caches, and every output value is one product sum in
//! a fixed order, so results do not depend on the number of threads.
//!
//! # Rounding error
//! Measured against an f64 direct convolution of the same values (the test
//! `winograd_error_stays_within_its_documented_bound` prints this table
//! with `--nocapture`): the worst error of an output, relative to the
//! largest sum of absolute terms among the outputs of its tile, over inputs
//! of magnitude 1e-3, 1 and 1e3 (the error is relative, so the magnitude
//! does not change it), and the RMS error relative to the RMS output.
//!
//! | layer | im2col f32 | F(2×2) f32 | F(4×4) f32 | F(4×4) f64 |
//! | --- | --- | --- | --- | --- |
//! | 3×3 64→64, 16×16, pad 1 | 1.1e-7 (rms 2.7e-7) | 8.4e-8 (rms 2.6e-7) | 1.4e-6 (rms 1.8e-6) | 2.6e-15 |
//! | 3×3 3→16, 32×32, pad 1 | 2.0e-7 (rms 9.3e-8) | 1.5e-7 (rms 1.1e-7) | 2.1e-6 (rms 7.5e-7) | 4.8e-15 |
//! | 3×3 128→128, 8×8, pad 1 | 6.3e-8 (rms 2.7e-7) | 6.5e-8 (rms 3.7e-7) | 1.1e-6 (rms 2.5e-6) | 2.5e-15 |
//!
//! `F(2×2)` rounds as the GEMM form does. `F(4×4)` loses about 10 times
//! more in f32 (about 1e-6 relative, 20 bits kept of 24: well inside what
//! training tolerates, but more than a gradient check in f32 should be
//! asked to absorb); in f64 it stays near 1e-15, so gradcheck in f64 sees
//! no difference. The tests bound the errors at 8ε (`F(2×2)`) and 160ε
//! (`F(4×4)`). `auto` picks by speed alone; name `winograd-2x2` or
//! `im2col` (`--conv-algo`) where the last bits of f32 matter.
//!
//! The weight gradient in f32, worst error relative to the largest sum of
//! absolute terms of any weight (`winograd_weight_gradient_on_larger_shapes`
//! prints it): 3×3 64→64 on 16×16, batch 16: im2col 2.6e-8, `F(2×2)`
//! 3.4e-8, `F(4×4)` 2.1e-7; 128→128 on 8×8: 2.8e-8, 3.9e-8, 3.3e-7.

use crate::gemm::{GemmElement, PanelLayout};
use crate::reference::winograd::WinogradTile;
use crate::scratch::{PlainData, Scratch};
use crate::simd::{per_simd_level, SimdLevel};
use crate::{Conv2dShape, Float};
use rayon::prelude::*;
use std::ops::Range;

/// Fewest tiles per block: below this the products are too narrow for
/// the GEMM's micro-tiles (two of the widest).
const MIN_BLOCK_TILES: usize = 96;
/// Most tiles per block, which bounds the scratch memory.
const MAX_BLOCK_TILES: usize = 512;

/// Sizes shared by every block of one call.
#[derive(Clone, Copy, Debug)]
struct Plan {
    tile: WinogradTile,
    m: usize,
    alpha: usize,
    /// Tile rows and columns per image.
    tiles_h: usize,
    tiles_w: usize,
    icg: usize,
    ocg: usize,
    /// Bands per block (blocks may span images).
    block_bands: usize,
}

impl Plan {
    /// The plan for `s`, with products whose micro-tiles take `granule`
    /// tiles (`mr` where the products have a row per tile, `nr` where they
    /// have a column per tile).
    fn new(tile: WinogradTile, s: &Conv2dShape, elem: usize, granule: usize) -> Plan {
        let (m, alpha) = (tile.m(), tile.alpha());
        let (tiles_h, tiles_w) = (s.out_h().div_ceil(m), s.out_w().div_ceil(m));
        let (icg, ocg) = (s.in_per_group(), s.out_per_group());
        // V and M of one tile: a block's fill L2 (larger blocks measured
        // slower as they spill to L3; smaller ones make the products too
        // narrow to amortise each GEMM call).
        let tile_bytes = alpha * alpha * (icg + ocg) * elem;
        let l2 = crate::cache::cache_sizes().l2;
        let target = (l2 / tile_bytes).clamp(MIN_BLOCK_TILES, MAX_BLOCK_TILES);
        // Whole bands per block, as many tiles as the target within a
        // factor of two, choosing the count that wastes the fewest GEMM
        // lanes (the last micro-tile of each product is padded to `granule`).
        let bands = (s.batch * tiles_h).max(1);
        let waste = |bb: usize| {
            let tiles = bb * tiles_w;
            (tiles.div_ceil(granule) * granule - tiles) as f64 / tiles as f64
        };
        let lo = (target / 2 / tiles_w).max(1);
        let hi = (2 * target / tiles_w).max(lo);
        let block_bands = (lo..=hi)
            .map(|bb| bb.min(bands))
            .min_by(|&a, &b| {
                let distance = |bb: usize| (bb * tiles_w).abs_diff(target);
                waste(a)
                    .total_cmp(&waste(b))
                    .then(distance(a).cmp(&distance(b)))
            })
            .unwrap_or(1);
        Plan {
            tile,
            m,
            alpha,
            tiles_h,
            tiles_w,
            icg,
            ocg,
            block_bands,
        }
    }

    /// The most padded input rows one image's share of a block reads.
    fn sub_plane_rows(&self) -> usize {
        self.block_bands.min(self.tiles_h) * self.m + 2
    }

    /// Tiles of a full block.
    fn block_tiles(&self) -> usize {
        self.block_bands * self.tiles_w
    }
}

/// `U[g][ξ](oc, ic) = (G g Gᵀ)[ξ]` for every kernel of every group, in f64
/// rounded once (as the twin does), computed a few output channels at a
/// time and written where `u` keeps them. Input channels are split over threads
/// when `parallel`; every value is computed the same way either way.
fn transform_weights<E: Float>(
    level: SimdLevel,
    p: &Plan,
    s: &Conv2dShape,
    weight: &[E],
    u: &UTarget<E>,
    parallel: bool,
) {
    let channels = |ics: Range<usize>| {
        let job = WeightJob {
            p,
            s,
            weight,
            ics,
            u,
        };
        weights(level, job)
    };
    let tasks = if parallel {
        rayon::current_num_threads().min(p.icg).max(1)
    } else {
        1
    };
    let per_task = p.icg.div_ceil(tasks);
    if tasks > 1 {
        (0..tasks)
            .into_par_iter()
            .for_each(|t| channels(t * per_task..((t + 1) * per_task).min(p.icg)));
    } else {
        channels(0..p.icg);
    }
}

/// What one task of the weight transform computes: input channels `ics`
/// of every group.
struct WeightJob<'a, E> {
    p: &'a Plan,
    s: &'a Conv2dShape,
    weight: &'a [E],
    ics: Range<usize>,
    u: &'a UTarget<E>,
}

/// Where the transformed weights go: one matrix `U[ξ]` (`ocg × icg`) per
/// (group, ξ), each written through its own `SharedOut`.
struct UTarget<E> {
    layout: ULayout,
    outs: Vec<SharedOut<E>>,
}

#[derive(Clone, Copy)]
enum ULayout {
    /// Column-major: `U(oc, ic)` at `ic·ocg + oc`.
    Plain { ocg: usize },
    /// The GEMM's packed panels.
    Packed(PanelLayout),
}

impl<E: Copy> UTarget<E> {
    /// Plain matrices in `u` (`groups·α²` of `ocg × icg`), one per
    /// (group, ξ), each input channels × output channels (row-major).
    fn plain(u: &mut [E], p: &Plan) -> UTarget<E> {
        UTarget {
            layout: ULayout::Plain { ocg: p.ocg },
            outs: u
                .chunks_exact_mut(p.ocg * p.icg)
                .map(SharedOut::new)
                .collect(),
        }
    }

    /// Where `U[·](oc0.., ic)` starts in every matrix (they share one
    /// layout), and whether `len` output channels from there are adjacent.
    fn place(&self, ic: usize, oc0: usize, len: usize) -> (usize, bool) {
        match self.layout {
            ULayout::Plain { ocg } => (ic * ocg + oc0, true),
            ULayout::Packed(panels) => (panels.offset(oc0, ic), oc0 % panels.mr + len <= panels.mr),
        }
    }

    /// `U[gx](oc0 + l, ic) = values[l]`, with `(at, adjacent)` from
    /// [`UTarget::place`]`(ic, oc0, values.len())`.
    ///
    /// # Safety
    /// No other task may write these entries at the same time.
    unsafe fn write(
        &self,
        gx: usize,
        (at, adjacent): (usize, bool),
        ic: usize,
        oc0: usize,
        values: &[E],
    ) {
        let out = &self.outs[gx];
        if adjacent {
            // SAFETY: the caller's guarantee.
            unsafe { out.rows(at, values.len()) }.copy_from_slice(values);
            return;
        }
        for (l, &v) in values.iter().enumerate() {
            let (at, _) = self.place(ic, oc0 + l, 1);
            // SAFETY: the caller's guarantee.
            let dst = unsafe { out.rows(at, 1) };
            dst[0] = v;
        }
    }
}

per_simd_level! {
    /// [`weights_any`] compiled for `level`.
    fn weights<E: Float>(job: WeightJob<'_, E>) => weights_any
}

#[inline(always)]
fn weights_any<E: Float>(job: WeightJob<'_, E>) {
    match job.p.tile {
        WinogradTile::F2 => weight_lanes::<E, 4>(job),
        WinogradTile::F4 => weight_lanes::<E, 6>(job),
    }
}

/// Output channels [`transform_weights`] computes at once.
const WEIGHT_LANES: usize = 8;

/// [`transform_weights`] for `α = A`, `WEIGHT_LANES` output channels (one
/// f64 vector) at a time.
#[inline(always)]
fn weight_lanes<E: Float, const A: usize>(job: WeightJob<'_, E>) {
    const L: usize = WEIGHT_LANES;
    let WeightJob {
        p,
        s,
        weight,
        ics,
        u,
    } = job;
    let (_, gm, _) = p.tile.matrices();
    let gm: [[f64; 3]; A] = std::array::from_fn(|j| [gm[j][0], gm[j][1], gm[j][2]]);
    let (icg, ocg) = (p.icg, p.ocg);
    for grp in 0..s.groups {
        // Output channels outermost: consecutive input channels of a run
        // of output channels are adjacent in the packed panels.
        for oc0 in (0..ocg).step_by(L) {
            for ic in ics.clone() {
                let live = L.min(ocg - oc0);
                let place = u.place(ic, oc0, live);
                let mut g = [[0.0f64; L]; 9];
                for l in 0..live {
                    let k = (grp * ocg + oc0 + l) * icg + ic;
                    let kernel: &[E; 9] = weight[k * 9..k * 9 + 9].try_into().expect("3x3");
                    for (gt, w) in g.iter_mut().zip(kernel) {
                        gt[l] = w.to_f64();
                    }
                }
                // g·Gᵀ (3×α), then G·(g·Gᵀ) (α×α), lane by lane, summed
                // in the twin's order.
                let mut ggt = [[[0.0f64; L]; A]; 3];
                for (i, row) in ggt.iter_mut().enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        for l in 0..L {
                            v[l] = g[i * 3][l] * gm[j][0]
                                + g[i * 3 + 1][l] * gm[j][1]
                                + g[i * 3 + 2][l] * gm[j][2];
                        }
                    }
                }
                let [g0, g1, g2] = &ggt;
                for (x, grow) in gm.iter().enumerate() {
                    for (y, ((a, b), c)) in g0.iter().zip(g1).zip(g2).enumerate() {
                        let mut lanes = [E::ZERO; L];
                        for (l, d) in lanes.iter_mut().enumerate() {
                            let v = grow[0] * a[l] + grow[1] * b[l] + grow[2] * c[l];
                            *d = E::from_f64(v);
                        }
                        // SAFETY: entries (grp, ξ, ·, ic) belong to this
                        // task's input channels only.
                        unsafe { u.write(grp * A * A + x * A + y, place, ic, oc0, &lanes[..live]) };
                    }
                }
            }
        }
    }
}

/// Whether the fast Winograd path computes this shape (as the twin's
/// [`winograd_applies`](crate::reference::winograd::winograd_applies)).
pub(crate) fn applies(s: &Conv2dShape) -> bool {
    crate::reference::winograd::winograd_applies(s) && s.out_h() > 0 && s.out_w() > 0
}

mod channels;
mod tiles;

/// `out = conv(input, weight) + bias` by `F(m×m, 3×3)`, for a shape where
/// [`applies`] holds: with the tiles in the vector lanes where one row of
/// tiles fills a vector ([`LANES`] tiles or more: 32×32 images with
/// `F(4×4)`, 16×16 with `F(2×2)`), else with the channels in the lanes.
/// Measured on the 3×3 64→64 layer at batch 64 (2-core AVX-512 Xeon, 2
/// threads), tiles in lanes took 13.5-18.4 ms against 14.6-21.8 for
/// channels on 32×32 (`F(4×4)`), and channels 8.3-10.1 against 10.2-12.3
/// on the convnet's 64→128 16×16 layer (four tiles per row), 8.7-10.8
/// against 11.4-17.6 on its 8×8 layer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<E: GemmElement + PlainData>(
    level: SimdLevel,
    tile: WinogradTile,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
    parallel: bool,
) {
    if s.out_w().div_ceil(tile.m()) >= LANES {
        tiles::forward(level, tile, s, input, weight, bias, out, parallel)
    } else {
        channels::forward(level, tile, s, input, weight, bias, out, parallel)
    }
}

/// The output, written by several blocks at once: each output row
/// `(image, channel, oh)` belongs to the band of tiles `(image, oh / m)`,
/// and each band to exactly one block, so blocks write disjoint rows.
struct SharedOut<E> {
    ptr: *mut E,
    len: usize,
}

// SAFETY: the pointer comes from a `&mut [E]` that outlives every use (the
// blocks finish before `forward` returns), and blocks write disjoint rows.
unsafe impl<E: Send> Send for SharedOut<E> {}
// SAFETY: as for Send: shared references only hand out disjoint rows.
unsafe impl<E: Send> Sync for SharedOut<E> {}

impl<E> SharedOut<E> {
    fn new(out: &mut [E]) -> Self {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }

    /// `len` values from `start`.
    ///
    /// # Safety
    /// No other reference to these values may be alive while the returned
    /// one is (each block asks only for rows of its own bands).
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, start: usize, len: usize) -> &mut [E] {
        assert!(start + len <= self.len, "output row out of range");
        // SAFETY: in range (checked above) of the live `&mut [E]` this was
        // made from; exclusive by the caller's guarantee.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// Lanes the transforms compute at once: a fixed count, so that each step
/// compiles to whole vector operations at every SIMD level.
const LANES: usize = 8;

/// `f` on each of `LANES` lanes of `I` inputs.
#[inline(always)]
fn lanes<E: Float, const I: usize, const O: usize>(
    x: [[E; LANES]; I],
    f: impl Fn([E; I]) -> [E; O],
) -> [[E; LANES]; O] {
    let mut y = [[E::ZERO; LANES]; O];
    for l in 0..LANES {
        let r = f(std::array::from_fn(|i| x[i][l]));
        for (y, r) in y.iter_mut().zip(r) {
            y[l] = r;
        }
    }
    y
}

/// `Bᵀ d` of `F(2,3)`.
#[inline(always)]
fn bt4<E: Float>(d: [E; 4]) -> [E; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// `Bᵀ d` of `F(4,3)`.
#[inline(always)]
fn bt6<E: Float>(d: [E; 6]) -> [E; 6] {
    let (two, four, five) = (E::from_f64(2.0), E::from_f64(4.0), E::from_f64(5.0));
    [
        four * d[0] - five * d[2] + d[4],
        d[3] + d[4] - four * (d[1] + d[2]),
        four * (d[1] - d[2]) + d[4] - d[3],
        two * (d[3] - d[1]) + d[4] - d[2],
        two * (d[1] - d[3]) + d[4] - d[2],
        four * d[1] - five * d[3] + d[5],
    ]
}

/// `Aᵀ x` of `F(2,3)`.
#[inline(always)]
fn at4<E: Float>(x: [E; 4]) -> [E; 2] {
    [x[0] + x[1] + x[2], x[1] - x[2] - x[3]]
}

/// `Aᵀ x` of `F(4,3)`.
#[inline(always)]
fn at6<E: Float>(x: [E; 6]) -> [E; 4] {
    let (two, four, eight) = (E::from_f64(2.0), E::from_f64(4.0), E::from_f64(8.0));
    let (s1, d1) = (x[1] + x[2], x[1] - x[2]);
    let (s2, d2) = (x[3] + x[4], x[3] - x[4]);
    [
        x[0] + s1 + s2,
        d1 + two * d2,
        s1 + four * s2,
        d1 + eight * d2 + x[5],
    ]
}

/// The weight gradient by `F(m×m, 3×3)` (see
/// [`crate::reference::winograd::conv2d_backward_weight`] for the formula):
/// overwrites `dw`. The batch is cut into fixed runs of `per_chunk` images
/// (fixed, not the thread count, so that results do not depend on it),
/// each summing its own `dU` ([`accumulate_du`]); then per kernel
/// `Gᵀ (Σ dU) G`, the chunks added in order in f64 and rounded once.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad<E: GemmElement + PlainData>(
    level: SimdLevel,
    tile: WinogradTile,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    per_chunk: usize,
    parallel: bool,
    dw: &mut [E],
) {
    debug_assert!(applies(s));
    let dw = &mut dw[..s.weight_len()];
    let mr = E::micro_kernel(level).mr;
    let p = Plan::new(tile, s, std::mem::size_of::<E>(), mr);
    let per_chunk = per_chunk.max(1);
    let count = s.batch.div_ceil(per_chunk);
    if count == 0 {
        dw.fill(E::ZERO);
        return;
    }
    let du_len = s.groups * p.alpha * p.alpha * p.ocg * p.icg;
    let mut du_scratch = Scratch::take();
    let du = du_scratch.slice::<E>(count * du_len);
    crate::parallel::for_each_chunk(du, du_len, parallel, |i, du| {
        let first = i * per_chunk;
        channels::accumulate_du(
            level,
            &p,
            s,
            input,
            grad_out,
            first..(first + per_chunk).min(s.batch),
            du,
        );
    });
    kernels_from_du(level, &p, s, du, count, dw, parallel);
}

/// `A y` of `F(2,3)` (the transpose of the output transform).
#[inline(always)]
fn a4<E: Float>(y: [E; 2]) -> [E; 4] {
    [y[0], y[0] + y[1], y[0] - y[1], E::ZERO - y[1]]
}

/// `A y` of `F(4,3)`.
#[inline(always)]
fn a6<E: Float>(y: [E; 4]) -> [E; 6] {
    let (two, four, eight) = (E::from_f64(2.0), E::from_f64(4.0), E::from_f64(8.0));
    let (even, odd) = (y[0] + y[2], y[1] + y[3]);
    let (even2, odd2) = (y[0] + four * y[2], two * y[1] + eight * y[3]);
    [
        y[0],
        even + odd,
        even - odd,
        even2 + odd2,
        even2 - odd2,
        y[3],
    ]
}

/// `dw = Gᵀ dU G` for every kernel, from `count` partial sums
/// `du[chunk][g][ξ][oc][ic]` added in order, in f64 rounded once; output
/// channels split over threads when `parallel`.
fn kernels_from_du<E: Float>(
    level: SimdLevel,
    p: &Plan,
    s: &Conv2dShape,
    du: &[E],
    count: usize,
    dw: &mut [E],
    parallel: bool,
) {
    let rows = s.out_channels;
    let per_row = p.icg * 9;
    let run = |oc0: usize, dw: &mut [E]| {
        let job = KernelJob {
            p,
            s,
            du,
            count,
            ocs: oc0..oc0 + dw.len() / per_row,
        };
        kernels(level, job, dw)
    };
    let tasks = if parallel {
        rayon::current_num_threads().min(rows).max(1)
    } else {
        1
    };
    let per_task = rows.div_ceil(tasks);
    crate::parallel::for_each_chunk(dw, per_task * per_row, tasks > 1, |i, dw| {
        run(i * per_task, dw)
    });
}

/// Output channels `ocs` (global indices) of [`kernels_from_du`]; `dw`
/// holds exactly their kernels.
struct KernelJob<'a, E> {
    p: &'a Plan,
    s: &'a Conv2dShape,
    du: &'a [E],
    count: usize,
    ocs: Range<usize>,
}

per_simd_level! {
    /// [`kernels_any`] compiled for `level`.
    fn kernels<E: Float>(job: KernelJob<'_, E>, dw: &mut [E]) => kernels_any
}

#[inline(always)]
fn kernels_any<E: Float>(job: KernelJob<'_, E>, dw: &mut [E]) {
    match job.p.tile {
        WinogradTile::F2 => kernel_lanes::<E, 4>(job, dw),
        WinogradTile::F4 => kernel_lanes::<E, 6>(job, dw),
    }
}

/// [`kernels_from_du`] for `α = A`, `WEIGHT_LANES` input channels (one f64
/// vector) at a time.
#[inline(always)]
fn kernel_lanes<E: Float, const A: usize>(job: KernelJob<'_, E>, dw: &mut [E]) {
    const L: usize = WEIGHT_LANES;
    let KernelJob {
        p,
        s,
        du,
        count,
        ocs,
    } = job;
    let (_, gm, _) = p.tile.matrices();
    let gm: [[f64; 3]; A] = std::array::from_fn(|j| [gm[j][0], gm[j][1], gm[j][2]]);
    let (icg, ocg) = (p.icg, p.ocg);
    let du_len = s.groups * A * A * ocg * icg;
    // One output channel's dU summed over the chunks in f64, `[ξ][ic]`:
    // each chunk's values for it are α² runs of `icg`, read front to back.
    let mut summed = vec![0.0f64; A * A * icg];
    for oc_global in ocs.clone() {
        let (grp, oc) = (oc_global / ocg, oc_global % ocg);
        summed.fill(0.0);
        for chunk in 0..count {
            for (xi, sums) in summed.chunks_exact_mut(icg).enumerate() {
                let at = chunk * du_len + ((grp * A * A + xi) * ocg + oc) * icg;
                for (d, v) in sums.iter_mut().zip(&du[at..at + icg]) {
                    *d += v.to_f64();
                }
            }
        }
        for ic0 in (0..icg).step_by(L) {
            let live = L.min(icg - ic0);
            // t = Gᵀ dU (3×α) and t G (3×3), lane by lane.
            let mut t = [[[0.0f64; L]; A]; 3];
            for (x, gx) in gm.iter().enumerate() {
                for y in 0..A {
                    let mut d = [0.0f64; L];
                    d[..live].copy_from_slice(&summed[(x * A + y) * icg + ic0..][..live]);
                    for (ti, g) in t.iter_mut().zip(gx) {
                        for (acc, d) in ti[y].iter_mut().zip(&d) {
                            *acc += g * d;
                        }
                    }
                }
            }
            let k0 = ((oc_global - ocs.start) * icg + ic0) * 9;
            for (i, ti) in t.iter().enumerate() {
                for j in 0..3 {
                    let mut acc = [0.0f64; L];
                    for (y, gy) in gm.iter().enumerate() {
                        for l in 0..L {
                            acc[l] += ti[y][l] * gy[j];
                        }
                    }
                    for (l, v) in acc.iter().take(live).enumerate() {
                        dw[k0 + l * 9 + i * 3 + j] = E::from_f64(*v);
                    }
                }
            }
        }
    }
}

//! Winograd convolution `F(m×m, 3×3)` for 3×3, stride-1 layers (the twin
//! is [`crate::reference::winograd`], which states the formula).
//!
//! The output is cut into `m×m` tiles; a *band* is one row of tiles of one
//! image. Bands are processed in blocks small enough that a block's
//! transformed input `V` and products `M` stay in L2, in three steps per
//! channel group:
//!
//! 1. input transform: for every input channel, each tile's `(m+2)²` patch
//!    becomes `V = Bᵀ d B`, stored as `V[ξ][channel][tile]` for the `(m+2)²`
//!    positions `ξ`;
//! 2. `(m+2)²` matrix products `M[ξ] = U[ξ] · V[ξ]` (output channels ×
//!    input channels times input channels × tiles) by the packed GEMM, with
//!    the transformed weights `U = G g Gᵀ` computed (in f64, a vector of
//!    output channels at a time) straight into the GEMM's packed panels
//!    once per call;
//! 3. output transform: `Y = Aᵀ M A` per tile and output channel, plus the
//!    bias, written into the output rows.
//!
//! Both transforms run along all the tiles of a block at once (long,
//! unit-stride loops that vectorise, however few tiles one row of a small
//! image has): the input's padded rows are split into their `m` phases, so
//! that the `m`-strided columns of a tile row become contiguous runs,
//! gathered into one row per patch position by short vector copies; the
//! output's transformed tiles are interleaved back into rows. The loops are
//! plain Rust compiled once per SIMD level with that level's target
//! features.
//!
//! The weight gradient ([`weight_grad`]) reuses the input transform:
//! `dU[ξ] = Σ dM[ξ] · V[ξ]ᵀ` over the tiles, with `dM = A dY Aᵀ` of the
//! output gradient, then `Gᵀ dU G` per kernel. Measured on a 2-core
//! AVX-512 Xeon it is about even with the im2col weight gradient on the
//! convnet's layers (both operands of its products run along the tiles,
//! so the GEMM transposes both while packing), so `auto` usually keeps
//! im2col; it is one of the candidates `auto` times.
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

use crate::gemm::{
    gemm_typed, packed_a_zeroed, GemmElement, MatMut, MatRef, PackedA, PanelLayout, Problem,
};
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
    /// The plan for `s`, with products whose micro-tiles are `nr` columns wide.
    fn new(tile: WinogradTile, s: &Conv2dShape, elem: usize, nr: usize) -> Plan {
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
        // lanes (the last micro-tile of each product is padded to `nr`).
        let bands = (s.batch * tiles_h).max(1);
        let waste = |bb: usize| {
            let tiles = bb * tiles_w;
            (tiles.div_ceil(nr) * nr - tiles) as f64 / tiles as f64
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
                let mut g = [[0.0f64; L]; 9];
                for l in 0..live {
                    let k = (grp * ocg + oc0 + l) * icg + ic;
                    let kernel: &[E; 9] = weight[k * 9..k * 9 + 9].try_into().expect("3x3");
                    for (gt, w) in g.iter_mut().zip(kernel) {
                        gt[l] = w.to_f64();
                    }
                }
                let place = u.place(ic, oc0, live);
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

/// `out = conv(input, weight) + bias` by `F(m×m, 3×3)`, for a shape where
/// [`applies`] holds.
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
    debug_assert!(applies(s));
    let nr = E::micro_kernel(level).nr;
    let p = Plan::new(tile, s, std::mem::size_of::<E>(), nr);
    let a2 = p.alpha * p.alpha;
    let block_tiles = p.block_tiles();
    // U = G g Gᵀ goes straight into the GEMM's packed panels, one set per
    // (group, ξ) product (every block multiplies by the same U), or, where
    // the products would not use packed panels, into plain matrices.
    let mut packed: Option<Vec<PackedA<E>>> = (0..s.groups * a2)
        .map(|_| packed_a_zeroed(level, (p.ocg, p.icg, block_tiles)))
        .collect();
    let mut u_scratch = Scratch::take();
    let plain_len = if packed.is_some() {
        0
    } else {
        s.groups * a2 * p.ocg * p.icg
    };
    let u = u_scratch.slice::<E>(plain_len);
    let target = match &mut packed {
        Some(packs) => UTarget {
            layout: ULayout::Packed(packs[0].layout()),
            outs: packs
                .iter_mut()
                .map(|pk| SharedOut::new(pk.data_mut()))
                .collect(),
        },
        None => UTarget {
            layout: ULayout::Plain { ocg: p.ocg },
            outs: u
                .chunks_exact_mut(p.ocg * p.icg)
                .map(SharedOut::new)
                .collect(),
        },
    };
    // Every entry of U is written: each kernel fills its α² values.
    transform_weights(level, &p, s, weight, &target, parallel);
    drop(target);
    let u = &*u;
    let packed = packed.as_deref();
    // The product of one block: with packed panels always `block_tiles`
    // columns wide (the panels were laid out for that width; the last,
    // shorter block computes columns it then ignores).
    let u_at = |gx: usize| match packed {
        Some(_) => MatRef::new(&[], 1, p.ocg),
        None => MatRef::new(&u[gx * p.ocg * p.icg..][..p.ocg * p.icg], 1, p.ocg),
    };
    let out_len = s.output_len();
    let out = SharedOut::new(&mut out[..out_len]);
    let bands = s.batch * p.tiles_h;
    let block = |bi: usize| {
        let block = bi * p.block_bands..((bi + 1) * p.block_bands).min(bands);
        let nb = block.len() * p.tiles_w;
        let mut v_scratch = Scratch::take();
        let mut m_scratch = Scratch::take();
        let mut work_scratch = Scratch::take();
        let v = v_scratch.slice::<E>(a2 * p.icg * block_tiles);
        let mbuf = m_scratch.slice::<E>(a2 * p.ocg * block_tiles);
        let work = work_scratch.slice::<E>(Work::len(&p));
        for g in 0..s.groups {
            transform_input(level, &p, s, input, g, block.clone(), v, work);
            if packed.is_some() && nb < block_tiles {
                // The short last block's unused columns: zeros, so that
                // the products' ignored columns read finite values.
                for row in v.chunks_exact_mut(block_tiles) {
                    row[nb..].fill(E::ZERO);
                }
            }
            let cols = if packed.is_some() { block_tiles } else { nb };
            for xi in 0..a2 {
                let gx = g * a2 + xi;
                let v_xi = &v[xi * p.icg * block_tiles..][..p.icg * block_tiles];
                let m_xi = &mut mbuf[xi * p.ocg * block_tiles..][..p.ocg * block_tiles];
                let product = Problem {
                    parallel: false,
                    ..Problem::product(
                        p.ocg,
                        p.icg,
                        cols,
                        u_at(gx),
                        MatRef::new(v_xi, block_tiles, 1),
                    )
                };
                let pk = packed.map(|packs| &packs[gx]);
                gemm_typed(level, product, MatMut::new(m_xi, block_tiles, 1), pk);
            }
            let bias_g = bias.map(|b| &b[g * p.ocg..(g + 1) * p.ocg]);
            transform_output(level, &p, s, mbuf, bias_g, g, block.clone(), &out, work);
        }
    };
    let blocks = bands.div_ceil(p.block_bands);
    if parallel && blocks > 1 {
        (0..blocks).into_par_iter().for_each(block);
    } else {
        (0..blocks).for_each(block);
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

/// Per-block working rows, carved out of one scratch slice.
struct Work;

impl Work {
    /// Elements: the input transform's padded rows of one image and their
    /// phases, the gathered tile values and their row transform (`α²` rows
    /// of a block each), or the output transform's column and row
    /// transforms (`m·α` and `m²` rows of a block). Every part has `LANES`
    /// values of slack, as the short-run copies write whole vectors.
    fn len(p: &Plan) -> usize {
        let rows = p.sub_plane_rows() * p.m * (p.tiles_w + 1) + LANES;
        let input = 2 * rows + 2 * p.alpha * p.alpha * Work::stride(p);
        let output = (p.m * p.alpha + p.m * p.m) * Work::stride(p);
        input.max(output)
    }

    /// Distance between two rows of a block's per-tile values: the block's
    /// tiles and `LANES` of slack.
    fn stride(p: &Plan) -> usize {
        p.block_tiles() + LANES
    }
}

/// Runs the input transform of one block compiled for `level`.
#[allow(clippy::too_many_arguments)]
fn transform_input<E: Float>(
    level: SimdLevel,
    p: &Plan,
    s: &Conv2dShape,
    x: &[E],
    g: usize,
    bands: Range<usize>,
    v: &mut [E],
    work: &mut [E],
) {
    let job = InputJob { p, s, x, g, bands };
    input(level, job, v, work);
}

/// What the input transform of one block reads.
struct InputJob<'a, E> {
    p: &'a Plan,
    s: &'a Conv2dShape,
    /// The whole input.
    x: &'a [E],
    g: usize,
    bands: Range<usize>,
}

per_simd_level! {
    /// [`input_any`] compiled for `level`.
    fn input<E: Float>(job: InputJob<'_, E>, v: &mut [E], work: &mut [E]) => input_any
}

#[inline(always)]
fn input_any<E: Float>(job: InputJob<'_, E>, v: &mut [E], work: &mut [E]) {
    match job.p.tile {
        WinogradTile::F2 => input_block::<E, 4, 2>(job, v, work, bt4),
        WinogradTile::F4 => input_block::<E, 6, 4>(job, v, work, bt6),
    }
}

/// `V[ξ][ic][t]` for the tiles `t` of a block (see the module docs).
///
/// Per input channel: each image's padded rows are split into phases, each
/// tile's `α×α` values are gathered into `D[r·α + y][t]` (one short
/// contiguous run per tile row and band), then `Bᵀ D B` runs as two passes
/// of `α`-input, `α`-output maps over all the block's tiles at once, so
/// every step uses whole vectors however few tiles a row of the image has.
#[inline(always)]
fn input_block<E: Float, const A: usize, const M: usize>(
    job: InputJob<'_, E>,
    v: &mut [E],
    work: &mut [E],
    bt: impl Fn([E; A]) -> [E; A] + Copy,
) {
    let InputJob { p, s, x, g, bands } = job;
    let (tw_n, bt_len) = (p.tiles_w, p.block_tiles());
    let stride = Work::stride(p);
    let nb = bands.len() * tw_n;
    let cols = tw_n + 1;
    let max_rows = p.sub_plane_rows();
    let (sub, rest) = work.split_at_mut(max_rows * M * cols + LANES);
    let (phases, rest) = rest.split_at_mut(max_rows * M * cols + LANES);
    let (gathered, rest) = rest.split_at_mut(A * A * stride);
    let (rows_done, _) = rest.split_at_mut(A * A * stride);
    let plane = s.in_h * s.in_w;
    for ic in 0..p.icg {
        let c = g * p.icg + ic;
        // The block's bands, image by image: each image's share of rows is
        // padded and split into phases once, then every band reads it.
        let mut band = bands.start;
        while band < bands.end {
            let n = band / p.tiles_h;
            let last = bands.end.min((n + 1) * p.tiles_h);
            let th0 = band % p.tiles_h;
            let rows = (last - band) * M + (A - M);
            let channel = &x[(n * s.in_channels + c) * plane..][..plane];
            pad_rows(s, channel, th0 * M, rows, M * cols, sub);
            split_phases::<E, M>(&sub[..rows * M * cols], &mut phases[..rows * M * cols]);
            let per_phase = rows * cols;
            for b in band..last {
                let t0 = (b - bands.start) * tw_n;
                let row0 = (b - band) * M;
                for r in 0..A {
                    // Column y of tile tw is phase y % M, entry tw + y / M.
                    let at = (row0 + r) * cols;
                    for y in 0..A {
                        let src = &phases[(y % M) * per_phase + at + y / M..];
                        copy_run(&mut gathered[(r * A + y) * stride + t0..], src, tw_n);
                    }
                }
            }
            band = last;
        }
        // Row transform (along y), then column transform (along r) straight
        // into V[(x'·A + y')][ic], each over the whole block.
        for r in 0..A {
            let src: [&[E]; A] = std::array::from_fn(|y| &gathered[(r * A + y) * stride..][..nb]);
            let dst = rows_mut::<E, A>(&mut rows_done[r * A * stride..], stride, nb);
            map_lanes(src, dst, bt);
        }
        for y in 0..A {
            let src: [&[E]; A] = std::array::from_fn(|r| &rows_done[(r * A + y) * stride..][..nb]);
            let dst = rows_mut::<E, A>(&mut v[(y * p.icg + ic) * bt_len..], A * p.icg * bt_len, nb);
            map_lanes(src, dst, bt);
        }
    }
}

/// `dst[..len] = src[..len]` for a short run, whole `LANES` vectors at a
/// time: up to `LANES - 1` values past `len` are read from `src` and
/// written to `dst` (both must have them; the caller overwrites or ignores
/// what lands there).
#[inline(always)]
fn copy_run<E: Copy>(dst: &mut [E], src: &[E], len: usize) {
    for k in (0..len).step_by(LANES) {
        let d: &mut [E; LANES] = (&mut dst[k..k + LANES]).try_into().expect("LANES values");
        *d = src[k..k + LANES].try_into().expect("LANES values");
    }
}

/// Rows `top..top + rows` of the zero-padded input plane (padded row `i`
/// is input row `i - pad_h`), each `width` values wide (input column `w` at
/// `pad_w + w`, zeros elsewhere), into `sub`.
#[inline(always)]
fn pad_rows<E: Float>(
    s: &Conv2dShape,
    channel: &[E],
    top: usize,
    rows: usize,
    width: usize,
    sub: &mut [E],
) {
    let (pad_h, pad_w) = s.padding;
    for (i, dst) in sub[..rows * width].chunks_exact_mut(width).enumerate() {
        let h = (top + i).checked_sub(pad_h).filter(|&h| h < s.in_h);
        match h {
            Some(h) if pad_w < width => {
                let src = &channel[h * s.in_w..][..s.in_w.min(width - pad_w)];
                dst[..pad_w].fill(E::ZERO);
                copy_values(&mut dst[pad_w..pad_w + src.len()], src);
                dst[pad_w + src.len()..].fill(E::ZERO);
            }
            _ => dst.fill(E::ZERO),
        }
    }
}

/// `phases[ph·(len / M) + j] = sub[j·M + ph]`: the `M` phases of the padded
/// rows, so that tile columns (`M` apart) become contiguous runs. One long
/// loop, which the compiler turns into vector shuffles.
#[inline(always)]
fn split_phases<E: Float, const M: usize>(sub: &[E], phases: &mut [E]) {
    let per_phase = sub.len() / M;
    let (head, tail) = phases.split_at_mut(per_phase);
    let mut parts = std::iter::once(head).chain(tail.chunks_exact_mut(per_phase));
    let phase: [&mut [E]; M] = std::array::from_fn(|_| parts.next().expect("M phases"));
    for (j, chunk) in sub.chunks_exact(M).enumerate() {
        for (ph, &v) in chunk.iter().enumerate() {
            phase[ph][j] = v;
        }
    }
}

/// `dst = src` for short runs, inline (a call to `memcpy` costs more than
/// copying a few dozen values).
#[inline(always)]
fn copy_values<E: Copy>(dst: &mut [E], src: &[E]) {
    let mut d = dst.chunks_exact_mut(LANES);
    let mut s = src.chunks_exact(LANES);
    for (d, s) in (&mut d).zip(&mut s) {
        let d: &mut [E; LANES] = d.try_into().expect("LANES values");
        *d = s.try_into().expect("LANES values");
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// Lanes the transforms compute at once: a fixed count, so that each step
/// compiles to whole vector operations at every SIMD level.
const LANES: usize = 8;

/// `N` rows of `len` values, `stride` apart, from the start of `buf`.
#[inline(always)]
fn rows_mut<E, const N: usize>(buf: &mut [E], stride: usize, len: usize) -> [&mut [E]; N] {
    let mut rows = buf.chunks_mut(stride).map(|r| &mut r[..len]);
    std::array::from_fn(|_| rows.next().expect("buffer holds every row"))
}

/// `dst[o][t] = f(src[·][t])[o]` for every lane `t`, `LANES` at a time.
#[inline(always)]
fn map_lanes<E: Float, const I: usize, const O: usize>(
    src: [&[E]; I],
    dst: [&mut [E]; O],
    f: impl Fn([E; I]) -> [E; O] + Copy,
) {
    let len = dst[0].len();
    let src: [&[E]; I] = src.map(|s| &s[..len]);
    let mut dst = dst.map(|d| &mut d[..len]);
    let full = len / LANES * LANES;
    for t0 in (0..full).step_by(LANES) {
        let y = lanes(
            std::array::from_fn(|i| src[i][t0..t0 + LANES].try_into().expect("LANES")),
            f,
        );
        for (d, y) in dst.iter_mut().zip(&y) {
            d[t0..t0 + LANES].copy_from_slice(y);
        }
    }
    for t in full..len {
        let y = f(std::array::from_fn(|i| src[i][t]));
        for (d, y) in dst.iter_mut().zip(y) {
            d[t] = y;
        }
    }
}

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

/// What the output transform of one block reads.
struct OutputJob<'a, E> {
    p: &'a Plan,
    s: &'a Conv2dShape,
    mbuf: &'a [E],
    bias: Option<&'a [E]>,
    g: usize,
    bands: Range<usize>,
}

/// Runs the output transform of one block compiled for `level`, writing
/// the block's rows of `out` (the task's images).
#[allow(clippy::too_many_arguments)]
fn transform_output<E: Float>(
    level: SimdLevel,
    p: &Plan,
    s: &Conv2dShape,
    mbuf: &[E],
    bias: Option<&[E]>,
    g: usize,
    bands: Range<usize>,
    out: &SharedOut<E>,
    work: &mut [E],
) {
    let job = OutputJob {
        p,
        s,
        mbuf,
        bias,
        g,
        bands,
    };
    output(level, job, out, work);
}

per_simd_level! {
    /// [`output_any`] compiled for `level`.
    fn output<E: Float>(job: OutputJob<'_, E>, out: &SharedOut<E>, work: &mut [E]) => output_any
}

#[inline(always)]
fn output_any<E: Float>(job: OutputJob<'_, E>, out: &SharedOut<E>, work: &mut [E]) {
    match job.p.tile {
        WinogradTile::F2 => output_block::<E, 4, 2>(job, out, work, at4),
        WinogradTile::F4 => output_block::<E, 6, 4>(job, out, work, at6),
    }
}

/// `Y = Aᵀ M A + bias` for the tiles of a block, written into `out`.
///
/// Per output channel: the column and row transforms run over all the
/// block's tiles at once (whole vectors), then each output row of a band
/// interleaves its tiles' `m` columns.
#[inline(always)]
fn output_block<E: Float, const A: usize, const M: usize>(
    job: OutputJob<'_, E>,
    out: &SharedOut<E>,
    work: &mut [E],
    at: impl Fn([E; A]) -> [E; M] + Copy,
) {
    let OutputJob {
        p,
        s,
        mbuf,
        bias,
        g,
        bands,
    } = job;
    let (tw_n, bt_len) = (p.tiles_w, p.block_tiles());
    let stride = Work::stride(p);
    let nb = bands.len() * tw_n;
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let out_plane = oh_n * ow_n;
    let (cols_done, rest) = work.split_at_mut(M * A * stride);
    let (tiles_done, _) = rest.split_at_mut(M * M * stride);
    for oc in 0..p.ocg {
        // Column transform: cols_done[(x'·A + y)] = Aᵀ along x of M[(x·A + y)][oc].
        for y in 0..A {
            let src: [&[E]; A] =
                std::array::from_fn(|x| &mbuf[((x * A + y) * p.ocg + oc) * bt_len..][..nb]);
            let dst = rows_mut::<E, M>(&mut cols_done[y * stride..], A * stride, nb);
            map_lanes(src, dst, at);
        }
        // Row transform: tiles_done[(x'·M + y')] = Aᵀ along y of cols_done[(x'·A + ·)].
        for xo in 0..M {
            let src: [&[E]; A] = std::array::from_fn(|y| &cols_done[(xo * A + y) * stride..][..nb]);
            let dst = rows_mut::<E, M>(&mut tiles_done[xo * M * stride..], stride, nb);
            map_lanes(src, dst, at);
        }
        let b = bias.map_or(E::ZERO, |b| b[oc]);
        let channel = g * p.ocg + oc;
        for (bi, band) in bands.clone().enumerate() {
            let (n, th) = (band / p.tiles_h, band % p.tiles_h);
            let t0 = bi * tw_n;
            for xo in 0..M.min(oh_n - th * M) {
                let oh = th * M + xo;
                let start = (n * s.out_channels + channel) * out_plane + oh * ow_n;
                // SAFETY: row (n, channel, oh) belongs to band (n, th) of
                // this block only (see `SharedOut`).
                let dst = unsafe { out.rows(start, ow_n) };
                let src: [&[E]; M] =
                    std::array::from_fn(|yo| &tiles_done[(xo * M + yo) * stride + t0..][..tw_n]);
                interleave(src, b, dst);
            }
        }
    }
}

/// `dst[tw·M + y] = src[y][tw] + b`: the tiles' columns side by side, as
/// many as `dst` holds (the last tile may be cut by the output's edge).
#[inline(always)]
fn interleave<E: Float, const M: usize>(src: [&[E]; M], b: E, dst: &mut [E]) {
    let full = dst.len() / M;
    let mut tiles = dst.chunks_exact_mut(M);
    for (tw, tile) in (&mut tiles).enumerate() {
        let tile: &mut [E; M] = tile.try_into().expect("M columns");
        for (y, d) in tile.iter_mut().enumerate() {
            *d = src[y][tw] + b;
        }
    }
    for (y, d) in tiles.into_remainder().iter_mut().enumerate() {
        *d = src[y][full] + b;
    }
}

/// The weight gradient by `F(m×m, 3×3)` (see
/// [`crate::reference::winograd::conv2d_backward_weight`] for the formula):
/// overwrites `dw`. The batch is cut into `chunks` fixed runs of images
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
    chunks: usize,
    parallel: bool,
    dw: &mut [E],
) {
    debug_assert!(applies(s));
    let dw = &mut dw[..s.weight_len()];
    let nr = E::micro_kernel(level).nr;
    let p = Plan::new(tile, s, std::mem::size_of::<E>(), nr);
    let per_chunk = s.batch.div_ceil(chunks.max(1)).max(1);
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
        accumulate_du(
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

/// `du[g][ξ][oc][ic] = Σ dM[ξ][oc][t] · V[ξ][ic][t]` over the tiles of
/// images `images`, block by block: the input transform `V` (as the
/// forward computes it) and the output gradient's `dM = A dY Aᵀ` feed `α²`
/// products by the GEMM (output channels × tiles times tiles × input
/// channels). One thread.
fn accumulate_du<E: GemmElement + PlainData>(
    level: SimdLevel,
    p: &Plan,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    images: Range<usize>,
    du: &mut [E],
) {
    let (a2, bt_len) = (p.alpha * p.alpha, p.block_tiles());
    let (icg, ocg) = (p.icg, p.ocg);
    let mut scratch: [Scratch; 4] = std::array::from_fn(|_| Scratch::take());
    let [v_s, dm_s, work_s, grad_work_s] = &mut scratch;
    let v = v_s.slice::<E>(a2 * icg * bt_len);
    let dm = dm_s.slice::<E>(a2 * ocg * bt_len);
    let work = work_s.slice::<E>(Work::len(p));
    let grad_work = grad_work_s.slice::<E>(Work::grad_len(p));
    let bands = images.start * p.tiles_h..images.end * p.tiles_h;
    let mut first = true;
    for b0 in bands.clone().step_by(p.block_bands.max(1)) {
        let block = b0..(b0 + p.block_bands).min(bands.end);
        let nb = block.len() * p.tiles_w;
        for g in 0..s.groups {
            transform_input(level, p, s, input, g, block.clone(), v, work);
            transform_grad_out(level, p, s, grad_out, g, block.clone(), dm, grad_work);
            for xi in 0..a2 {
                let dm_xi = &dm[xi * ocg * bt_len..][..ocg * bt_len];
                let v_xi = &v[xi * icg * bt_len..][..icg * bt_len];
                let du_xi = &mut du[(g * a2 + xi) * ocg * icg..][..ocg * icg];
                let product = Problem {
                    parallel: false,
                    beta: if first { E::ZERO } else { E::ONE },
                    ..Problem::product(
                        ocg,
                        nb,
                        icg,
                        MatRef::new(dm_xi, bt_len, 1),
                        MatRef::new(v_xi, 1, bt_len),
                    )
                };
                gemm_typed(level, product, MatMut::new(du_xi, icg, 1), None);
            }
        }
        first = false;
    }
    if first {
        du.fill(E::ZERO);
    }
}

impl Work {
    /// Elements the output-gradient transform needs: the gathered tile
    /// values, their row transform, and one padded output row with its
    /// phases.
    fn grad_len(p: &Plan) -> usize {
        let width = p.tiles_w * p.m + LANES;
        (p.m * p.m + p.m * p.alpha) * Work::stride(p) + 2 * width
    }
}

/// What the output-gradient transform of one block reads.
struct GradJob<'a, E> {
    p: &'a Plan,
    s: &'a Conv2dShape,
    /// The whole output gradient.
    dy: &'a [E],
    g: usize,
    bands: Range<usize>,
}

/// Runs the output-gradient transform `dM[ξ][oc][t] = (A dY Aᵀ)[ξ]` of one
/// block compiled for `level`.
#[allow(clippy::too_many_arguments)]
fn transform_grad_out<E: Float>(
    level: SimdLevel,
    p: &Plan,
    s: &Conv2dShape,
    dy: &[E],
    g: usize,
    bands: Range<usize>,
    dm: &mut [E],
    work: &mut [E],
) {
    let job = GradJob { p, s, dy, g, bands };
    grad(level, job, dm, work);
}

per_simd_level! {
    /// [`grad_any`] compiled for `level`.
    fn grad<E: Float>(job: GradJob<'_, E>, dm: &mut [E], work: &mut [E]) => grad_any
}

#[inline(always)]
fn grad_any<E: Float>(job: GradJob<'_, E>, dm: &mut [E], work: &mut [E]) {
    match job.p.tile {
        WinogradTile::F2 => grad_block::<E, 4, 2>(job, dm, work, a4),
        WinogradTile::F4 => grad_block::<E, 6, 4>(job, dm, work, a6),
    }
}

/// `dM[ξ][oc][t]` for the tiles `t` of a block: each tile's `m×m` output
/// gradient (zero past the output's edge) gathered into `D[x·m + y][t]`,
/// then `A D Aᵀ` as two passes over all the block's tiles at once.
#[inline(always)]
fn grad_block<E: Float, const A: usize, const M: usize>(
    job: GradJob<'_, E>,
    dm: &mut [E],
    work: &mut [E],
    am: impl Fn([E; M]) -> [E; A] + Copy,
) {
    let GradJob { p, s, dy, g, bands } = job;
    let (tw_n, bt_len) = (p.tiles_w, p.block_tiles());
    let stride = Work::stride(p);
    let nb = bands.len() * tw_n;
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let plane = oh_n * ow_n;
    let width = tw_n * M;
    let (gathered, rest) = work.split_at_mut(M * M * stride);
    let (rows_done, rest) = rest.split_at_mut(M * A * stride);
    let (row, phases) = rest.split_at_mut(width + LANES);
    for oc in 0..p.ocg {
        let c = g * p.ocg + oc;
        for (bi, band) in bands.clone().enumerate() {
            let (n, th) = (band / p.tiles_h, band % p.tiles_h);
            let t0 = bi * tw_n;
            for xo in 0..M {
                let oh = th * M + xo;
                if oh < oh_n {
                    let src = &dy[(n * s.out_channels + c) * plane + oh * ow_n..][..ow_n];
                    copy_values(&mut row[..ow_n], src);
                    row[ow_n..width].fill(E::ZERO);
                } else {
                    row[..width].fill(E::ZERO);
                }
                split_phases::<E, M>(&row[..width], &mut phases[..width]);
                for yo in 0..M {
                    let dst = &mut gathered[(xo * M + yo) * stride + t0..];
                    copy_run(dst, &phases[yo * tw_n..], tw_n);
                }
            }
        }
        // Along y, then along x straight into dM[(x'·A + y')][oc].
        for xo in 0..M {
            let src: [&[E]; M] =
                std::array::from_fn(|yo| &gathered[(xo * M + yo) * stride..][..nb]);
            let dst = rows_mut::<E, A>(&mut rows_done[xo * A * stride..], stride, nb);
            map_lanes(src, dst, am);
        }
        for y in 0..A {
            let src: [&[E]; M] =
                std::array::from_fn(|xo| &rows_done[(xo * A + y) * stride..][..nb]);
            let dst =
                rows_mut::<E, A>(&mut dm[(y * p.ocg + oc) * bt_len..], A * p.ocg * bt_len, nb);
            map_lanes(src, dst, am);
        }
    }
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
    for oc_global in ocs.clone() {
        let (grp, oc) = (oc_global / ocg, oc_global % ocg);
        for ic0 in (0..icg).step_by(L) {
            let live = L.min(icg - ic0);
            // dU summed over the chunks, then t = Gᵀ dU (3×α) and t G (3×3),
            // lane by lane.
            let mut t = [[[0.0f64; L]; A]; 3];
            for (x, gx) in gm.iter().enumerate() {
                for y in 0..A {
                    let at = ((grp * A * A + x * A + y) * ocg + oc) * icg + ic0;
                    let mut d = [0.0f64; L];
                    for chunk in 0..count {
                        let part = &du[chunk * du_len + at..][..live];
                        for (d, v) in d.iter_mut().zip(part) {
                            *d += v.to_f64();
                        }
                    }
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

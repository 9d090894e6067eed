//! The Winograd forward convolution with *tiles* in the vector lanes, for
//! images wide enough that one row of tiles fills a vector (see
//! [`super::forward`] for the choice).
//!
//! Per channel group and block of bands: the input transform, for every
//! input channel, splits each image's padded rows into their `m` phases
//! (so that the `m`-strided columns of a tile row become contiguous runs),
//! gathers each tile's `(m+2)²` values into one row per patch position
//! and computes `V = Bᵀ d B` along all the block's tiles at once, stored
//! as `V[ξ][channel][tile]`; the `(m+2)²` products `M[ξ] = U[ξ] · V[ξ]`
//! (output channels × input channels times input channels × tiles) run on
//! `U` transformed once per call straight into the GEMM's packed panels
//! and read `V` in place; the output transform `Y = Aᵀ M A` plus the bias
//! runs along the tiles too, and each output row interleaves its tiles'
//! `m` columns.

use super::{
    at4, at6, bt4, bt6, lanes, transform_weights, Plan, SharedOut, ULayout, UTarget, LANES,
};
use crate::gemm::{gemm_typed, packed_a_zeroed, GemmElement, MatMut, MatRef, PackedA, Problem};
use crate::reference::winograd::WinogradTile;
use crate::scratch::{PlainData, Scratch};
use crate::simd::{per_simd_level, SimdLevel};
use crate::{Conv2dShape, Float};
use rayon::prelude::*;
use std::ops::Range;

/// `out = conv(input, weight) + bias` by `F(m×m, 3×3)`, for a shape where
/// [`applies`] holds.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<E: GemmElement + PlainData>(
    level: SimdLevel,
    tile: WinogradTile,
    s: &Conv2dShape,
    input: &[E],
    weight: &[E],
    bias: Option<&[E]>,
    out: &mut [E],
    parallel: bool,
) {
    debug_assert!(super::applies(s));
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
        None => UTarget::plain(u, &p),
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

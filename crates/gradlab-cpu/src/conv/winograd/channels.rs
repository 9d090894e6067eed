//! The Winograd forward convolution (and so the input gradient, a forward
//! convolution of the output gradient) and weight gradient with channels
//! in the vector lanes.
//!
//! Per block of bands (rows of tiles, as in the [parent module](super)):
//!
//! 1. each band's `α` padded input rows are copied channels-last, `LANES`
//!    channels at a time (`[channel block][row][column][lane]`), so that
//!    a tile's `α×α` values of `LANES` channels are `α` runs of `α`
//!    vectors; `V = Bᵀ d B` is computed on whole vectors of channels and
//!    stored as `V[ξ][tile][channel]`;
//! 2. the `α²` products `M[ξ] = V[ξ] · U[ξ]` (tiles × input channels times
//!    input channels × output channels) by the packed GEMM, with `U`
//!    transformed once per call;
//! 3. `Y = Aᵀ M A` plus the bias on vectors of output channels, into the
//!    band's channels-last output rows, then copied into NCHW.
//!
//! Every transform step is a vector operation on `LANES` channels of one
//! tile: no tile is split into short runs, however narrow the image (the
//! convnet's 16×16 and 8×8 layers have four tiles per row). The two copies
//! between layouts move each value once.
//!
//! The weight gradient ([`accumulate_du`]) transforms the input in the
//! same way and each band's `m` output-gradient rows likewise
//! (`dM = A dY Aᵀ`, `[ξ][tile][channel]`), so that both operands of its
//! products `dMᵀ · V` pack with plain copies.

use super::{
    a4, a6, at4, at6, bt4, bt6, lanes, transform_weights, Plan, SharedOut, UTarget, LANES,
};
use crate::gemm::{gemm_typed, GemmElement, MatMut, MatRef, Problem};
use crate::reference::winograd::WinogradTile;
use crate::scratch::{PlainData, Scratch};
use crate::simd::{per_simd_level, SimdLevel};
use crate::{Conv2dShape, Float};
use rayon::prelude::*;
use std::ops::Range;

/// Channels per vector of the transforms.
const CL: usize = LANES;

/// `out = conv(input, weight) + bias` by `F(m×m, 3×3)`, for a shape where
/// [`super::applies`] holds.
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
    debug_assert!(super::applies(s));
    let mr = E::micro_kernel(level).mr;
    let p = Plan::new(tile, s, std::mem::size_of::<E>(), mr);
    let a2 = p.alpha * p.alpha;
    let (icp, ocp) = (p.icg.div_ceil(CL) * CL, p.ocg.div_ceil(CL) * CL);
    let vt = p.block_tiles();
    // U[g][ξ] as input channels × output channels (row-major), once per call.
    let mut u_scratch = Scratch::take();
    let u = u_scratch.slice::<E>(s.groups * a2 * p.ocg * p.icg);
    let target = UTarget::plain(u, &p);
    transform_weights(level, &p, s, weight, &target, parallel);
    drop(target);
    let u = &*u;
    let out = SharedOut::new(&mut out[..s.output_len()]);
    let bands = s.batch * p.tiles_h;
    let block = |bi: usize| {
        let block = bi * p.block_bands..((bi + 1) * p.block_bands).min(bands);
        let nb = block.len() * p.tiles_w;
        let mut scratch: [Scratch; 4] = std::array::from_fn(|_| Scratch::take());
        let [v_s, m_s, xb_s, yb_s] = &mut scratch;
        let v = v_s.slice::<E>(a2 * vt * icp);
        let mbuf = m_s.slice::<E>(a2 * vt * ocp);
        let xb = xb_s.slice::<E>(icp * p.alpha * (p.tiles_w * p.m + 2));
        let yb = yb_s.slice::<E>(ocp * p.m * p.tiles_w * p.m);
        for g in 0..s.groups {
            for (i, band) in block.clone().enumerate() {
                let job = BandJob {
                    p: &p,
                    s,
                    g,
                    band,
                    t0: i * p.tiles_w,
                    vt,
                };
                band_input(level, job, input, v, xb);
            }
            for xi in 0..a2 {
                let gx = g * a2 + xi;
                let product = Problem {
                    parallel: false,
                    ..Problem::product(
                        nb,
                        p.icg,
                        p.ocg,
                        MatRef::new(&v[xi * vt * icp..][..nb * icp], icp, 1),
                        MatRef::new(&u[gx * p.ocg * p.icg..][..p.ocg * p.icg], p.ocg, 1),
                    )
                };
                let m_xi = &mut mbuf[xi * vt * ocp..][..nb * ocp];
                gemm_typed(level, product, MatMut::new(m_xi, ocp, 1), None);
            }
            let bias_g = bias.map(|b| &b[g * p.ocg..(g + 1) * p.ocg]);
            for (i, band) in block.clone().enumerate() {
                let job = BandJob {
                    p: &p,
                    s,
                    g,
                    band,
                    t0: i * p.tiles_w,
                    vt,
                };
                band_output(level, job, mbuf, bias_g, &out, yb);
            }
        }
    };
    let blocks = bands.div_ceil(p.block_bands);
    if parallel && blocks > 1 {
        (0..blocks).into_par_iter().for_each(block);
    } else {
        (0..blocks).for_each(block);
    }
}

/// One band of one group, whose tiles are `t0..t0 + tiles_w` of its block
/// (`vt` tiles per `ξ` in the block's `V` and `M`).
struct BandJob<'a> {
    p: &'a Plan,
    s: &'a Conv2dShape,
    g: usize,
    band: usize,
    t0: usize,
    vt: usize,
}

per_simd_level! {
    /// [`band_input_any`] compiled for `level`.
    fn band_input<E: Float>(job: BandJob<'_>, x: &[E], v: &mut [E], xb: &mut [E]) => band_input_any
}

#[inline(always)]
fn band_input_any<E: Float>(job: BandJob<'_>, x: &[E], v: &mut [E], xb: &mut [E]) {
    match job.p.tile {
        WinogradTile::F2 => input_band::<E, 4, 2>(job, x, v, xb, bt4),
        WinogradTile::F4 => input_band::<E, 6, 4>(job, x, v, xb, bt6),
    }
}

/// `V[ξ][t][c]` for the tiles of one band: its `α` padded input rows
/// channels-last into `xb`, then each tile's `Bᵀ d B` on vectors of
/// `LANES` channels.
#[inline(always)]
fn input_band<E: Float, const A: usize, const M: usize>(
    job: BandJob<'_>,
    x: &[E],
    v: &mut [E],
    xb: &mut [E],
    bt: impl Fn([E; A]) -> [E; A] + Copy,
) {
    let BandJob {
        p,
        s,
        g,
        band,
        t0,
        vt,
    } = job;
    let (n, th) = (band / p.tiles_h, band % p.tiles_h);
    let blocks = p.icg.div_ceil(CL);
    let icp = blocks * CL;
    let pw = p.tiles_w * M + 2;
    let plane = s.in_h * s.in_w;
    let image = &x[(n * s.in_channels + g * p.icg) * plane..][..p.icg * plane];
    let rows = (th * M, A, pw);
    to_lanes(image, (s.in_h, s.in_w), s.padding, p.icg, rows, xb);
    for tw in 0..p.tiles_w {
        let t = t0 + tw;
        for cb in 0..blocks {
            let base = (cb * A * pw + tw * M) * CL;
            // Row r, column y of the tile, CL channels each; rows along y
            // first, then columns along x.
            let load = |r: usize, y: usize| &xb[base + (r * pw + y) * CL..][..CL];
            transform_tile(load, bt, |x, y, vals| {
                let to = ((x * A + y) * vt + t) * icp + cb * CL;
                v[to..to + CL].copy_from_slice(vals);
            });
        }
    }
}

/// `f` along each row of an `I×I` tile of vectors of `LANES` channels
/// (`load(x, y)`: row `x`, column `y`), then along each column, handing
/// each of the `O×O` results to `store(x, y, values)`: the separable
/// transforms `Bᵀ d B`, `Aᵀ M A` and `A dY Aᵀ` on whole vectors.
#[inline(always)]
fn transform_tile<'a, E: Float + 'a, const I: usize, const O: usize>(
    load: impl Fn(usize, usize) -> &'a [E],
    f: impl Fn([E; I]) -> [E; O] + Copy,
    mut store: impl FnMut(usize, usize, &[E; CL]),
) {
    let mut rows = [[[E::ZERO; CL]; O]; I];
    for (x, row) in rows.iter_mut().enumerate() {
        let mut d = [[E::ZERO; CL]; I];
        for (y, d) in d.iter_mut().enumerate() {
            d.copy_from_slice(load(x, y));
        }
        *row = lanes(d, f);
    }
    for y in 0..O {
        let mut col = [[E::ZERO; CL]; I];
        for (c, row) in col.iter_mut().zip(&rows) {
            *c = row[y];
        }
        for (x, vals) in lanes(col, f).iter().enumerate() {
            store(x, y, vals);
        }
    }
}

/// Rows `top - pad_h ..` (`rows` of them) of `channels` planes of
/// `plane = (h, w)` values (`planes`, one after the other), zero-padded, as
/// `[channel block][row][column][lane]` with `width` columns (plane column
/// `c` at `c + pad_w`, zeros past the plane); channels past `channels` in
/// the last block are zeros.
#[inline(always)]
fn to_lanes<E: Float>(
    planes: &[E],
    (in_h, in_w): (usize, usize),
    (pad_h, pad_w): (usize, usize),
    channels: usize,
    (top, rows, width): (usize, usize, usize),
    xb: &mut [E],
) {
    let plane = in_h * in_w;
    let cols = in_w.min(width.saturating_sub(pad_w));
    for cb in 0..channels.div_ceil(CL) {
        for r in 0..rows {
            let row = &mut xb[(cb * rows + r) * width * CL..][..width * CL];
            let h = (top + r).checked_sub(pad_h).filter(|&h| h < in_h);
            let Some(h) = h else {
                row.fill(E::ZERO);
                continue;
            };
            row[..pad_w * CL].fill(E::ZERO);
            row[(pad_w + cols) * CL..].fill(E::ZERO);
            let live = CL.min(channels - cb * CL);
            let src: [&[E]; CL] = std::array::from_fn(|l| {
                if l < live {
                    &planes[(cb * CL + l) * plane + h * in_w..][..cols]
                } else {
                    &[]
                }
            });
            let interior = &mut row[pad_w * CL..(pad_w + cols) * CL];
            // CL columns of the CL channels at a time: one square block
            // read (a vector per channel) and written (a vector per column).
            let full = cols / CL * CL;
            let (head, tail) = interior.split_at_mut(full * CL);
            for (w0, block) in (0..full).step_by(CL).zip(head.chunks_exact_mut(CL * CL)) {
                let mut rows = [[E::ZERO; CL]; CL];
                for (r, src) in rows.iter_mut().zip(&src).take(live) {
                    r.copy_from_slice(&src[w0..w0 + CL]);
                }
                for (w, px) in block.chunks_exact_mut(CL).enumerate() {
                    for (d, r) in px.iter_mut().zip(&rows) {
                        *d = r[w];
                    }
                }
            }
            for (w, px) in (full..cols).zip(tail.chunks_exact_mut(CL)) {
                for (l, d) in px.iter_mut().enumerate() {
                    *d = if l < live { src[l][w] } else { E::ZERO };
                }
            }
        }
    }
}

per_simd_level! {
    /// [`band_output_any`] compiled for `level`.
    fn band_output<E: Float>(
        job: BandJob<'_>,
        mbuf: &[E],
        bias: Option<&[E]>,
        out: &SharedOut<E>,
        yb: &mut [E],
    ) => band_output_any
}

#[inline(always)]
fn band_output_any<E: Float>(
    job: BandJob<'_>,
    mbuf: &[E],
    bias: Option<&[E]>,
    out: &SharedOut<E>,
    yb: &mut [E],
) {
    match job.p.tile {
        WinogradTile::F2 => output_band::<E, 4, 2>(job, mbuf, bias, out, yb, at4),
        WinogradTile::F4 => output_band::<E, 6, 4>(job, mbuf, bias, out, yb, at6),
    }
}

/// `Y = Aᵀ M A + bias` for the tiles of one band, on vectors of `LANES`
/// output channels, into the
/// band's channels-last rows `yb` (`[channel block][row][column][lane]`),
/// then copied into the output's rows (NCHW; the last tiles may be cut by
/// the output's edge).
#[inline(always)]
fn output_band<E: Float, const A: usize, const M: usize>(
    job: BandJob<'_>,
    mbuf: &[E],
    bias: Option<&[E]>,
    out: &SharedOut<E>,
    yb: &mut [E],
    at: impl Fn([E; A]) -> [E; M] + Copy,
) {
    let BandJob {
        p,
        s,
        g,
        band,
        t0,
        vt,
    } = job;
    let (n, th) = (band / p.tiles_h, band % p.tiles_h);
    let blocks = p.ocg.div_ceil(CL);
    let ocp = blocks * CL;
    let wo = p.tiles_w * M;
    for cb in 0..blocks {
        let live = CL.min(p.ocg - cb * CL);
        let b: [E; CL] = std::array::from_fn(|l| match bias {
            Some(bias) if l < live => bias[cb * CL + l],
            _ => E::ZERO,
        });
        for tw in 0..p.tiles_w {
            let t = t0 + tw;
            let load = |x: usize, y: usize| &mbuf[((x * A + y) * vt + t) * ocp + cb * CL..][..CL];
            transform_tile(load, at, |xo, yo, vals| {
                let to = ((cb * M + xo) * wo + tw * M + yo) * CL;
                for ((d, v), b) in yb[to..to + CL].iter_mut().zip(vals).zip(&b) {
                    *d = *v + *b;
                }
            });
        }
        let (oh_n, ow_n) = (s.out_h(), s.out_w());
        for xo in 0..M.min(oh_n - th * M) {
            let oh = th * M + xo;
            let src = &yb[(cb * M + xo) * wo * CL..][..ow_n * CL];
            let mut dst: [&mut [E]; CL] = std::array::from_fn(|l| {
                if l < live {
                    let channel = g * p.ocg + cb * CL + l;
                    let start = ((n * s.out_channels + channel) * oh_n + oh) * ow_n;
                    // SAFETY: row (n, channel, oh) belongs to band (n, th),
                    // which only this block computes (see `SharedOut`);
                    // the CL rows are distinct channels.
                    unsafe { out.rows(start, ow_n) }
                } else {
                    &mut []
                }
            });
            // CL columns at a time: a square block read a vector per column
            // and written a vector per channel.
            let full = ow_n / CL * CL;
            for (w0, block) in (0..full).step_by(CL).zip(src.chunks_exact(CL * CL)) {
                let mut px = [[E::ZERO; CL]; CL];
                for (p, v) in px.iter_mut().zip(block.chunks_exact(CL)) {
                    p.copy_from_slice(v);
                }
                for (l, d) in dst.iter_mut().enumerate().take(live) {
                    // A plain loop: `array::from_fn` here was left out of line.
                    for (w, d) in d[w0..w0 + CL].iter_mut().enumerate() {
                        *d = px[w][l];
                    }
                }
            }
            for (w, px) in (full..ow_n).zip(src[full * CL..].chunks_exact(CL)) {
                for (d, v) in dst.iter_mut().zip(px).take(live) {
                    d[w] = *v;
                }
            }
        }
    }
}

/// `du[g][ξ][oc][ic] = Σ dM[ξ][t][oc] · V[ξ][t][ic]` over the tiles `t` of
/// images `images`, block by block: the input transform `V` (as the
/// forward computes it) and the output gradient's `dM = A dY Aᵀ`, both
/// with channels in the lanes, feed `α²` products by the GEMM (output
/// channels × tiles times tiles × input channels), whose operands it
/// packs with contiguous copies. One thread.
pub(super) fn accumulate_du<E: GemmElement + PlainData>(
    level: SimdLevel,
    p: &Plan,
    s: &Conv2dShape,
    input: &[E],
    grad_out: &[E],
    images: Range<usize>,
    du: &mut [E],
) {
    let a2 = p.alpha * p.alpha;
    let (icg, ocg) = (p.icg, p.ocg);
    let (icp, ocp) = (icg.div_ceil(CL) * CL, ocg.div_ceil(CL) * CL);
    let vt = p.block_tiles();
    let mut scratch: [Scratch; 4] = std::array::from_fn(|_| Scratch::take());
    let [v_s, dm_s, xb_s, yb_s] = &mut scratch;
    let v = v_s.slice::<E>(a2 * vt * icp);
    let dm = dm_s.slice::<E>(a2 * vt * ocp);
    let xb = xb_s.slice::<E>(icp * p.alpha * (p.tiles_w * p.m + 2));
    let yb = yb_s.slice::<E>(ocp * p.m * p.tiles_w * p.m);
    let bands = images.start * p.tiles_h..images.end * p.tiles_h;
    let mut first = true;
    for b0 in bands.clone().step_by(p.block_bands.max(1)) {
        let block = b0..(b0 + p.block_bands).min(bands.end);
        let nb = block.len() * p.tiles_w;
        for g in 0..s.groups {
            for (i, band) in block.clone().enumerate() {
                let job = || BandJob {
                    p,
                    s,
                    g,
                    band,
                    t0: i * p.tiles_w,
                    vt,
                };
                band_input(level, job(), input, v, xb);
                band_grad(level, job(), grad_out, dm, yb);
            }
            for xi in 0..a2 {
                let product = Problem {
                    parallel: false,
                    beta: if first { E::ZERO } else { E::ONE },
                    ..Problem::product(
                        ocg,
                        nb,
                        icg,
                        MatRef::new(&dm[xi * vt * ocp..][..nb * ocp], 1, ocp),
                        MatRef::new(&v[xi * vt * icp..][..nb * icp], icp, 1),
                    )
                };
                let du_xi = &mut du[(g * a2 + xi) * ocg * icg..][..ocg * icg];
                gemm_typed(level, product, MatMut::new(du_xi, icg, 1), None);
            }
        }
        first = false;
    }
    if first {
        du.fill(E::ZERO);
    }
}

per_simd_level! {
    /// [`band_grad_any`] compiled for `level`.
    fn band_grad<E: Float>(job: BandJob<'_>, dy: &[E], dm: &mut [E], yb: &mut [E]) => band_grad_any
}

#[inline(always)]
fn band_grad_any<E: Float>(job: BandJob<'_>, dy: &[E], dm: &mut [E], yb: &mut [E]) {
    match job.p.tile {
        WinogradTile::F2 => grad_band::<E, 4, 2>(job, dy, dm, yb, a4),
        WinogradTile::F4 => grad_band::<E, 6, 4>(job, dy, dm, yb, a6),
    }
}

/// `dM[ξ][t][c] = (A dY Aᵀ)[ξ]` for the tiles of one band: its `m` output
/// gradient rows channels-last into `yb` (zeros past the output's edge),
/// then each tile's transform on vectors of `LANES` output channels.
#[inline(always)]
fn grad_band<E: Float, const A: usize, const M: usize>(
    job: BandJob<'_>,
    dy: &[E],
    dm: &mut [E],
    yb: &mut [E],
    am: impl Fn([E; M]) -> [E; A] + Copy,
) {
    let BandJob {
        p,
        s,
        g,
        band,
        t0,
        vt,
    } = job;
    let (n, th) = (band / p.tiles_h, band % p.tiles_h);
    let blocks = p.ocg.div_ceil(CL);
    let ocp = blocks * CL;
    let wo = p.tiles_w * M;
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let plane = oh_n * ow_n;
    let image = &dy[(n * s.out_channels + g * p.ocg) * plane..][..p.ocg * plane];
    to_lanes(image, (oh_n, ow_n), (0, 0), p.ocg, (th * M, M, wo), yb);
    for tw in 0..p.tiles_w {
        let t = t0 + tw;
        for cb in 0..blocks {
            let base = (cb * M * wo + tw * M) * CL;
            let load = |xo: usize, yo: usize| &yb[base + (xo * wo + yo) * CL..][..CL];
            transform_tile(load, am, |x, y, vals| {
                let to = ((x * A + y) * vt + t) * ocp + cb * CL;
                dm[to..to + CL].copy_from_slice(vals);
            });
        }
    }
}

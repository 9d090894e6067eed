//! Winograd convolution `F(m×m, 3×3)` in plain loops: the twin of the fast
//! kernel in [`crate::conv`], written as the textbook formula (Lavin and
//! Gray, "Fast algorithms for convolutional neural networks", 2016).
//!
//! For a 3×3, stride-1 convolution, each `m×m` tile of output is
//! `Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A`, where `d_c` is the
//! `(m+2)×(m+2)` patch of input channel `c` the tile reads (zero in the
//! padding), `g_c` the 3×3 kernel of that channel and `⊙` the elementwise
//! product. The transforms trade the `9·m²` multiplications of a tile per
//! channel for `(m+2)²`: 2.25 times fewer for `m = 2`, 4 times for `m = 4`,
//! at the price of extra rounding (the transforms' coefficients grow with `m`).
//!
//! The transformed weights are computed in f64 and rounded once to `T`
//! (here and in the fast kernel).

use crate::{Conv2dShape, Float};

/// A small constant matrix, row by row.
pub type Matrix = &'static [&'static [f64]];

/// The output tile size of a Winograd convolution `F(m×m, 3×3)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinogradTile {
    /// `F(2×2, 3×3)`: 4×4 input patches, 16 products per tile and channel.
    F2,
    /// `F(4×4, 3×3)`: 6×6 input patches, 36 products per tile and channel.
    F4,
}

impl WinogradTile {
    /// Both tile sizes, smallest first.
    pub const ALL: [WinogradTile; 2] = [WinogradTile::F2, WinogradTile::F4];

    /// Output rows and columns per tile (`m`).
    pub fn m(self) -> usize {
        match self {
            WinogradTile::F2 => 2,
            WinogradTile::F4 => 4,
        }
    }

    /// Input rows and columns per tile (`α = m + 2`).
    pub fn alpha(self) -> usize {
        self.m() + 2
    }

    /// `F(2x2,3x3)` or `F(4x4,3x3)`.
    pub fn name(self) -> &'static str {
        match self {
            WinogradTile::F2 => "F(2x2,3x3)",
            WinogradTile::F4 => "F(4x4,3x3)",
        }
    }

    /// `Bᵀ` (`α×α`), `G` (`α×3`) and `Aᵀ` (`m×α`), row by row.
    pub fn matrices(self) -> (Matrix, Matrix, Matrix) {
        match self {
            WinogradTile::F2 => (F2_BT, F2_G, F2_AT),
            WinogradTile::F4 => (F4_BT, F4_G, F4_AT),
        }
    }
}

impl std::fmt::Display for WinogradTile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// F(2,3): interpolation points 0, 1, -1 and infinity.
const F2_BT: &[&[f64]] = &[
    &[1.0, 0.0, -1.0, 0.0],
    &[0.0, 1.0, 1.0, 0.0],
    &[0.0, -1.0, 1.0, 0.0],
    &[0.0, 1.0, 0.0, -1.0],
];
const F2_G: &[&[f64]] = &[
    &[1.0, 0.0, 0.0],
    &[0.5, 0.5, 0.5],
    &[0.5, -0.5, 0.5],
    &[0.0, 0.0, 1.0],
];
const F2_AT: &[&[f64]] = &[&[1.0, 1.0, 1.0, 0.0], &[0.0, 1.0, -1.0, -1.0]];

// F(4,3): interpolation points 0, 1, -1, 2, -2 and infinity.
const F4_BT: &[&[f64]] = &[
    &[4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    &[0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    &[0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    &[0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    &[0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    &[0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
const F4_G: &[&[f64]] = &[
    &[1.0 / 4.0, 0.0, 0.0],
    &[-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    &[-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    &[1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    &[1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    &[0.0, 0.0, 1.0],
];
const F4_AT: &[&[f64]] = &[
    &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    &[0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    &[0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    &[0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// Whether the Winograd formula computes this convolution: 3×3 kernels,
/// stride 1, no dilation (any padding and groups).
pub fn winograd_applies(s: &Conv2dShape) -> bool {
    s.kernel_h == 3 && s.kernel_w == 3 && s.stride == (1, 1) && s.dilation == (1, 1)
}

/// `U = G g Gᵀ` for one 3×3 kernel, in f64, rounded once to `T`.
pub fn transform_kernel<T: Float>(tile: WinogradTile, g: &[T]) -> Vec<T> {
    let (_, gm, _) = tile.matrices();
    let a = tile.alpha();
    let mut u = Vec::with_capacity(a * a);
    for row in gm {
        for col in gm {
            let mut sum = 0.0;
            for i in 0..3 {
                for j in 0..3 {
                    sum += row[i] * g[i * 3 + j].to_f64() * col[j];
                }
            }
            u.push(T::from_f64(sum));
        }
    }
    u
}

/// `P · X · Qᵀ` for `X` (`rows(P)`... as given), all row-major `Vec`s.
fn sandwich<T: Float>(p: &[&[f64]], x: &[T], cols: usize, q: &[&[f64]]) -> Vec<T> {
    // First X·Qᵀ (x is `p[0].len() × cols`), then P·(X·Qᵀ).
    let inner = p[0].len();
    let mut xq = vec![T::ZERO; inner * q.len()];
    for i in 0..inner {
        for (j, qrow) in q.iter().enumerate() {
            let mut sum = T::ZERO;
            for k in 0..cols {
                sum += x[i * cols + k] * T::from_f64(qrow[k]);
            }
            xq[i * q.len() + j] = sum;
        }
    }
    let mut out = vec![T::ZERO; p.len() * q.len()];
    for (i, prow) in p.iter().enumerate() {
        for j in 0..q.len() {
            let mut sum = T::ZERO;
            for k in 0..inner {
                sum += T::from_f64(prow[k]) * xq[k * q.len() + j];
            }
            out[i * q.len() + j] = sum;
        }
    }
    out
}

/// `V = Bᵀ d B` for every input channel of image `n`, `d` being the
/// `α×α` patch tile `(th, tw)` reads (zero in the padding).
fn transformed_patches<T: Float>(
    tile: WinogradTile,
    s: &Conv2dShape,
    input: &[T],
    n: usize,
    (th, tw): (usize, usize),
) -> Vec<Vec<T>> {
    let (bt, _, _) = tile.matrices();
    let (m, a) = (tile.m(), tile.alpha());
    (0..s.in_channels)
        .map(|c| {
            let mut d = vec![T::ZERO; a * a];
            for i in 0..a {
                for j in 0..a {
                    let h = (th * m + i) as isize - s.padding.0 as isize;
                    let w = (tw * m + j) as isize - s.padding.1 as isize;
                    if (0..s.in_h as isize).contains(&h) && (0..s.in_w as isize).contains(&w) {
                        d[i * a + j] = input
                            [((n * s.in_channels + c) * s.in_h + h as usize) * s.in_w + w as usize];
                    }
                }
            }
            sandwich(bt, &d, a, bt)
        })
        .collect()
}

/// The forward convolution by the Winograd formula, tile by tile (same
/// contract as [`crate::reference::conv2d_forward`]).
///
/// # Panics
/// If the shape is not one [`winograd_applies`] to.
pub fn conv2d_forward<T: Float>(
    tile: WinogradTile,
    s: &Conv2dShape,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    assert!(
        winograd_applies(s),
        "winograd conv2d_forward: {s:?} is not a 3x3 stride-1 convolution"
    );
    let (_, _, at) = tile.matrices();
    let (m, a) = (tile.m(), tile.alpha());
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    // U for every (output channel, input channel of its group).
    let u: Vec<Vec<T>> = weight[..s.weight_len()]
        .chunks_exact(9)
        .map(|g| transform_kernel(tile, g))
        .collect();
    for n in 0..s.batch {
        for th in 0..oh_n.div_ceil(m) {
            for tw in 0..ow_n.div_ceil(m) {
                let v = transformed_patches(tile, s, input, n, (th, tw));
                for oc in 0..s.out_channels {
                    let g = oc / ocg;
                    let mut mprod = vec![T::ZERO; a * a];
                    for icl in 0..icg {
                        let (uc, vc) = (&u[oc * icg + icl], &v[g * icg + icl]);
                        for (acc, (x, y)) in mprod.iter_mut().zip(uc.iter().zip(vc)) {
                            *acc += *x * *y;
                        }
                    }
                    let y = sandwich(at, &mprod, a, at);
                    for i in 0..m {
                        for j in 0..m {
                            let (oh, ow) = (th * m + i, tw * m + j);
                            if oh < oh_n && ow < ow_n {
                                let b = bias.map_or(T::ZERO, |b| b[oc]);
                                out[((n * s.out_channels + oc) * oh_n + oh) * ow_n + ow] =
                                    y[i * m + j] + b;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The rows of `mᵀ` for a matrix `m` given row by row.
fn transposed(m: Matrix) -> Vec<Vec<f64>> {
    (0..m[0].len())
        .map(|j| m.iter().map(|row| row[j]).collect())
        .collect()
}

/// The weight gradient by the Winograd formula, tile by tile (same contract
/// as [`crate::reference::conv2d_backward_weight`]).
///
/// The forward tile is `Y = Aᵀ [Σ_c U_c ⊙ V_c] A` with `U_c = G g_c Gᵀ`, so
/// for an output-gradient tile `dY` (zero past the output's edge) the
/// gradient of the products is `dM = A dY Aᵀ`, that of `U_c` is
/// `Σ_tiles dM ⊙ V_c`, and that of the kernel is `Gᵀ dU_c G`: `α²`
/// products per tile and channel pair instead of `9·m²`. `dU` is summed in
/// `T` over every tile of every image; the last step runs in f64, rounded
/// once.
///
/// # Panics
/// If the shape is not one [`winograd_applies`] to.
pub fn conv2d_backward_weight<T: Float>(
    tile: WinogradTile,
    s: &Conv2dShape,
    input: &[T],
    grad_out: &[T],
    grad_weight: &mut [T],
) {
    assert!(
        winograd_applies(s),
        "winograd conv2d_backward_weight: {s:?} is not a 3x3 stride-1 convolution"
    );
    let (_, gm, at) = tile.matrices();
    let (m, a) = (tile.m(), tile.alpha());
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let (icg, ocg) = (s.in_per_group(), s.out_per_group());
    let a_rows = transposed(at);
    let a_rows: Vec<&[f64]> = a_rows.iter().map(Vec::as_slice).collect();
    let g_t = transposed(gm);
    let g_t: Vec<&[f64]> = g_t.iter().map(Vec::as_slice).collect();
    // dU for every (output channel, input channel of its group).
    let mut du = vec![vec![T::ZERO; a * a]; s.out_channels * icg];
    for n in 0..s.batch {
        for th in 0..oh_n.div_ceil(m) {
            for tw in 0..ow_n.div_ceil(m) {
                let v = transformed_patches(tile, s, input, n, (th, tw));
                for oc in 0..s.out_channels {
                    let mut dy = vec![T::ZERO; m * m];
                    for i in 0..m {
                        for j in 0..m {
                            let (oh, ow) = (th * m + i, tw * m + j);
                            if oh < oh_n && ow < ow_n {
                                dy[i * m + j] =
                                    grad_out[((n * s.out_channels + oc) * oh_n + oh) * ow_n + ow];
                            }
                        }
                    }
                    let dm = sandwich(&a_rows, &dy, m, &a_rows);
                    let g = oc / ocg;
                    for icl in 0..icg {
                        let vc = &v[g * icg + icl];
                        for (acc, (x, y)) in du[oc * icg + icl].iter_mut().zip(dm.iter().zip(vc)) {
                            *acc += *x * *y;
                        }
                    }
                }
            }
        }
    }
    for (dg, du) in grad_weight[..s.weight_len()].chunks_exact_mut(9).zip(&du) {
        let du: Vec<f64> = du.iter().map(|v| v.to_f64()).collect();
        for (d, v) in dg.iter_mut().zip(sandwich(&g_t, &du, a, &g_t)) {
            *d = T::from_f64(v);
        }
    }
}

//! Winograd convolution: the fast kernel against its plain twin, the twin
//! against the direct convolution in f64, and the rounding error of each
//! tile size measured against an f64 direct convolution (the figures the
//! docs of `gradlab_cpu::conv`'s Winograd module quote).

use crate::common::{for_each_level, random_vec, tile_max};
use gradlab_cpu::reference::winograd::{self, WinogradTile};
use gradlab_cpu::{reference, with_conv_algo, Conv2dShape, ConvAlgo, Float, Rng};
use proptest::prelude::*;

/// 3x3 stride-1 shapes: partial tiles, padding 0 to 2, groups.
fn shape() -> impl Strategy<Value = Conv2dShape> {
    (
        (1usize..=2, 1usize..=3, 1usize..=4, 1usize..=4),
        (1usize..=11, 1usize..=11, 0usize..=2, 0usize..=2),
    )
        .prop_map(
            |((batch, groups, icg, ocg), (h, w, pad_h, pad_w))| Conv2dShape {
                batch,
                in_channels: icg * groups,
                in_h: h.max(3usize.saturating_sub(2 * pad_h)),
                in_w: w.max(3usize.saturating_sub(2 * pad_w)),
                out_channels: ocg * groups,
                kernel_h: 3,
                kernel_w: 3,
                stride: (1, 1),
                padding: (pad_h, pad_w),
                dilation: (1, 1),
                groups,
            },
        )
}

fn algo(tile: WinogradTile) -> ConvAlgo {
    match tile {
        WinogradTile::F2 => ConvAlgo::Winograd2x2,
        WinogradTile::F4 => ConvAlgo::Winograd4x4,
    }
}

/// The bound on `|error| / Σ|terms|` the docs give for a tile in `T`, with
/// `Σ|terms|` the largest among the outputs of the tile (see `tile_max`):
/// eight roundings for F(2x2), 160 for F(4x4).
fn bound<T: Float>(tile: WinogradTile) -> f64 {
    let eps = if T::NAME == "f32" {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    match tile {
        WinogradTile::F2 => 8.0 * eps,
        WinogradTile::F4 => 160.0 * eps,
    }
}

/// Forward convolution in f64 of the values of `x` and `w`, and the sums of
/// the absolute values of its terms.
fn direct_f64<T: Float>(
    s: &Conv2dShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> (Vec<f64>, Vec<f64>) {
    let f = |v: &[T]| v.iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
    let abs = |v: &[f64]| v.iter().map(|a| a.abs()).collect::<Vec<f64>>();
    let (x, w) = (f(x), f(w));
    let bias = bias.map(f);
    let mut y = vec![0.0; s.output_len()];
    reference::conv2d_forward(s, &x, &w, bias.as_deref(), &mut y);
    let mut scale = vec![0.0; s.output_len()];
    let abs_bias = bias.as_deref().map(abs);
    reference::conv2d_forward(s, &abs(&x), &abs(&w), abs_bias.as_deref(), &mut scale);
    (y, scale)
}

/// The largest `|got - want| / Σ|terms|`.
fn worst<T: Float>(got: &[T], want: &[f64], scale: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .zip(scale)
        .map(|((g, w), s)| (g.to_f64() - w).abs() / s.max(1e-300))
        .fold(0.0, f64::max)
}

fn check<T: Float>(s: &Conv2dShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<T> = random_vec(&mut rng, s.input_len());
    let w: Vec<T> = random_vec(&mut rng, s.weight_len());
    let bias: Vec<T> = random_vec(&mut rng, s.out_channels);
    let (want, scale) = direct_f64(s, &x, &w, Some(&bias));
    for tile in WinogradTile::ALL {
        let scale = tile_max(&scale, s.out_h(), s.out_w(), tile.m());
        let mut twin = vec![T::from_f64(f64::NAN); s.output_len()];
        winograd::conv2d_forward(tile, s, &x, &w, Some(&bias), &mut twin);
        let err = worst(&twin, &want, &scale);
        assert!(
            err <= bound::<T>(tile),
            "twin {tile} {} {s:?}: {err:e}",
            T::NAME
        );
        for_each_level(|level| {
            let mut fast = vec![T::from_f64(f64::NAN); s.output_len()];
            with_conv_algo(algo(tile), || {
                gradlab_cpu::conv2d_forward(s, &x, &w, Some(&bias), &mut fast)
            });
            let err = worst(&fast, &want, &scale);
            assert!(
                err <= bound::<T>(tile),
                "fast {tile} {} {level} {s:?}: {err:e}",
                T::NAME
            );
            // Against the twin: both round the same formula, differently.
            let twin_f64: Vec<f64> = twin.iter().map(|v| v.to_f64()).collect();
            let err = worst(&fast, &twin_f64, &scale);
            assert!(
                err <= 2.0 * bound::<T>(tile),
                "fast vs twin {tile} {} {level} {s:?}: {err:e}",
                T::NAME
            );
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn fast_winograd_and_its_twin_match_the_f64_direct_convolution(s in shape(), seed in any::<u64>()) {
        check::<f32>(&s, seed);
        check::<f64>(&s, seed);
    }
}

/// Shapes with several vectors of channels (the channels form of the
/// forward and the weight gradient take eight at a time) and a partial last
/// one on both sides, groups, several blocks with a short last one, odd
/// sizes, rows of tiles narrower and wider than a vector (the forward's two
/// forms), at every SIMD level and in both precisions.
#[test]
fn channel_vectors_and_tile_rows_match_the_f64_direct_convolution() {
    let shapes = [
        Conv2dShape {
            batch: 5,
            in_channels: 24,
            in_h: 13,
            in_w: 9,
            out_channels: 20,
            kernel_h: 3,
            kernel_w: 3,
            stride: (1, 1),
            padding: (1, 1),
            dilation: (1, 1),
            groups: 1,
        },
        Conv2dShape {
            batch: 3,
            in_channels: 32,
            in_h: 10,
            in_w: 17,
            out_channels: 26,
            kernel_h: 3,
            kernel_w: 3,
            stride: (1, 1),
            padding: (0, 2),
            dilation: (1, 1),
            groups: 2,
        },
        Conv2dShape::square(7, 16, 40, 8, 3, 1),
        // 34 output columns: nine F(4x4) tiles and seventeen F(2x2) tiles a row.
        Conv2dShape {
            batch: 2,
            in_channels: 12,
            in_h: 6,
            in_w: 34,
            out_channels: 10,
            kernel_h: 3,
            kernel_w: 3,
            stride: (1, 1),
            padding: (1, 1),
            dilation: (1, 1),
            groups: 1,
        },
    ];
    for (i, s) in shapes.iter().enumerate() {
        check::<f32>(s, 100 + i as u64);
        check::<f64>(s, 200 + i as u64);
    }
}

/// The twin's transformed kernel reproduces the 3x3 kernel: the Winograd
/// product of a single impulse patch gives the kernel back.
#[test]
fn transformed_kernels_invert_exactly_on_an_impulse() {
    // One channel, a 3x3 input that is a single 1 at the centre, padding 1:
    // the output is the kernel flipped (correlation with an impulse).
    let s = Conv2dShape::square(1, 1, 1, 3, 3, 1);
    let w: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut x = vec![0.0; 9];
    x[4] = 1.0;
    for tile in WinogradTile::ALL {
        let mut y = vec![0.0; 9];
        winograd::conv2d_forward(tile, &s, &x, &w, None, &mut y);
        let flipped: Vec<f64> = w.iter().rev().copied().collect();
        for (a, b) in y.iter().zip(&flipped) {
            assert!((a - b).abs() < 1e-12, "{tile}: {y:?}");
        }
    }
}

/// Rounding error of each tile size against an f64 direct convolution, over
/// input magnitudes from 1e-3 to 1e3 (the error is relative: it scales with
/// the values). Prints the table the docs quote (`--nocapture`).
#[test]
fn winograd_error_stays_within_its_documented_bound() {
    let shapes = [
        (
            "3x3 64->64 16x16 p1",
            Conv2dShape::square(2, 64, 64, 16, 3, 1),
        ),
        (
            "3x3 3->16 32x32 p1",
            Conv2dShape::square(1, 3, 16, 32, 3, 1),
        ),
        (
            "3x3 128->128 8x8 p1",
            Conv2dShape::square(1, 128, 128, 8, 3, 1),
        ),
    ];
    for (name, s) in shapes {
        for magnitude in [1e-3, 1.0, 1e3] {
            let mut rng = Rng::new(17);
            let x: Vec<f64> = (0..s.input_len())
                .map(|_| magnitude * rng.uniform(-1.0, 1.0))
                .collect();
            let w: Vec<f64> = (0..s.weight_len())
                .map(|_| rng.uniform(-0.5, 0.5))
                .collect();
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            // The reference is the f64 convolution of the f32 values.
            let (want, scale) = direct_f64(&s, &x32, &w32, None);
            let (want64, scale64) = direct_f64(&s, &x, &w, None);
            let rms = |v: &[f64]| (v.iter().map(|a| a * a).sum::<f64>() / v.len() as f64).sqrt();
            let mut line = format!("{name:20} |x| <= {magnitude:<5e}");
            for algo_ in [
                ConvAlgo::Im2col,
                ConvAlgo::Winograd2x2,
                ConvAlgo::Winograd4x4,
            ] {
                let mut y32 = vec![0f32; s.output_len()];
                with_conv_algo(algo_, || {
                    gradlab_cpu::conv2d_forward(&s, &x32, &w32, None, &mut y32)
                });
                let mut y64 = vec![0f64; s.output_len()];
                with_conv_algo(algo_, || {
                    gradlab_cpu::conv2d_forward(&s, &x, &w, None, &mut y64)
                });
                let tile = match algo_ {
                    ConvAlgo::Winograd2x2 => Some(WinogradTile::F2),
                    ConvAlgo::Winograd4x4 => Some(WinogradTile::F4),
                    _ => None,
                };
                let m = tile.map_or(1, |t| t.m());
                let (scale, scale64) = (
                    tile_max(&scale, s.out_h(), s.out_w(), m),
                    tile_max(&scale64, s.out_h(), s.out_w(), m),
                );
                let err32 = worst(&y32, &want, &scale);
                let err: Vec<f64> = y32.iter().zip(&want).map(|(g, w)| g.to_f64() - w).collect();
                let rms32 = rms(&err) / rms(&want);
                let err64 = worst(&y64, &want64, &scale64);
                line += &format!(" | {algo_}: f32 {err32:.1e} (rms {rms32:.1e}), f64 {err64:.1e}");
                if let Some(tile) = tile {
                    assert!(err32 <= bound::<f32>(tile), "{line}");
                    assert!(err64 <= bound::<f64>(tile), "{line}");
                }
            }
            println!("{line}");
        }
    }
}

/// Weight gradient in f64 of the values of `x` and `dy`, and the sums of the
/// absolute values of its terms.
fn weight_grad_f64<T: Float>(s: &Conv2dShape, x: &[T], dy: &[T]) -> (Vec<f64>, Vec<f64>) {
    let f = |v: &[T]| v.iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
    let (x, dy) = (f(x), f(dy));
    let abs = |v: &[f64]| v.iter().map(|a| a.abs()).collect::<Vec<f64>>();
    let mut dw = vec![0.0; s.weight_len()];
    reference::conv2d_backward_weight(s, &x, &dy, &mut dw);
    let mut scale = vec![0.0; s.weight_len()];
    reference::conv2d_backward_weight(s, &abs(&x), &abs(&dy), &mut scale);
    (dw, scale)
}

/// The weight-gradient error bound relative to the largest sum of absolute
/// terms of any kernel weight: the products sum over every tile of a batch
/// chunk in `T`, so the bound grows with the tiles summed (`tiles`), as
/// any summation's does, times the transforms' growth (1 for F(2x2),
/// larger for F(4x4)).
fn weight_bound<T: Float>(tile: WinogradTile, tiles: usize) -> f64 {
    let eps = if T::NAME == "f32" {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    let growth = match tile {
        WinogradTile::F2 => 4.0,
        WinogradTile::F4 => 100.0,
    };
    growth * eps * (tiles as f64).sqrt().max(4.0)
}

fn check_weight_grad<T: Float>(s: &Conv2dShape, seed: u64) -> Vec<(WinogradTile, f64)> {
    let mut rng = Rng::new(seed);
    let x: Vec<T> = random_vec(&mut rng, s.input_len());
    let dy: Vec<T> = random_vec(&mut rng, s.output_len());
    let (want, scale) = weight_grad_f64(s, &x, &dy);
    let top = scale.iter().copied().fold(0.0, f64::max).max(1e-300);
    let rel = |got: &[T]| {
        got.iter()
            .zip(&want)
            .map(|(g, w)| (g.to_f64() - w).abs() / top)
            .fold(0.0, f64::max)
    };
    let mut errors = Vec::new();
    for tile in WinogradTile::ALL {
        let tiles = s.batch * s.out_h().div_ceil(tile.m()) * s.out_w().div_ceil(tile.m());
        let bound = weight_bound::<T>(tile, tiles);
        let mut twin = vec![T::from_f64(f64::NAN); s.weight_len()];
        winograd::conv2d_backward_weight(tile, s, &x, &dy, &mut twin);
        let err = rel(&twin);
        assert!(
            err <= bound,
            "twin {tile} {} {s:?}: {err:e} > {bound:e}",
            T::NAME
        );
        for_each_level(|level| {
            let mut fast = vec![T::from_f64(f64::NAN); s.weight_len()];
            with_conv_algo(algo(tile), || {
                gradlab_cpu::conv2d_backward_weight(s, &x, &dy, &mut fast)
            });
            let err = rel(&fast);
            assert!(
                err <= bound,
                "fast {tile} {} {level} {s:?}: {err:e} > {bound:e}",
                T::NAME
            );
            errors.push((tile, err));
        });
    }
    errors
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn winograd_weight_gradient_and_its_twin_match_f64(s in shape(), seed in any::<u64>()) {
        check_weight_grad::<f32>(&s, seed);
        check_weight_grad::<f64>(&s, seed);
    }
}

/// The weight gradient on shapes whose products run blocked (several
/// blocks per batch chunk, groups, odd sizes, a short last block), and its
/// error beside the im2col method's (`--nocapture` prints both).
#[test]
fn winograd_weight_gradient_on_larger_shapes() {
    let shapes = [
        Conv2dShape::square(16, 64, 64, 16, 3, 1),
        Conv2dShape::square(16, 128, 128, 8, 3, 1),
        Conv2dShape {
            batch: 9,
            in_channels: 32,
            in_h: 10,
            in_w: 17,
            out_channels: 26,
            kernel_h: 3,
            kernel_w: 3,
            stride: (1, 1),
            padding: (0, 2),
            dilation: (1, 1),
            groups: 2,
        },
    ];
    for (i, s) in shapes.iter().enumerate() {
        let errors = check_weight_grad::<f32>(s, 300 + i as u64);
        check_weight_grad::<f64>(s, 400 + i as u64);
        let mut rng = Rng::new(300 + i as u64);
        let x: Vec<f32> = random_vec(&mut rng, s.input_len());
        let dy: Vec<f32> = random_vec(&mut rng, s.output_len());
        let (want, scale) = weight_grad_f64(s, &x, &dy);
        let top = scale.iter().copied().fold(0.0, f64::max);
        let mut dw = vec![0f32; s.weight_len()];
        with_conv_algo(ConvAlgo::Im2col, || {
            gradlab_cpu::conv2d_backward_weight(s, &x, &dy, &mut dw)
        });
        let im2col = dw
            .iter()
            .zip(&want)
            .map(|(g, w)| (g.to_f64() - w).abs() / top)
            .fold(0.0, f64::max);
        let worst = |t: WinogradTile| {
            errors
                .iter()
                .filter(|(tile, _)| *tile == t)
                .map(|(_, e)| *e)
                .fold(0.0, f64::max)
        };
        println!(
            "weight gradient f32 {s:?}: im2col {im2col:.1e}, F(2x2) {:.1e}, F(4x4) {:.1e}",
            worst(WinogradTile::F2),
            worst(WinogradTile::F4)
        );
    }
}

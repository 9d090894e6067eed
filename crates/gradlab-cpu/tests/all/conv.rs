//! The fast convolution (forward, input and weight gradients) against its
//! reference twin on random shapes: every stride, padding, dilation and
//! group combination in range, f32 and f64, every supported SIMD level and
//! every convolution algorithm.

use crate::common::{assert_close, for_each_level, random_vec, sum_tolerance, tile_max};
use gradlab_cpu::{reference, with_conv_algo, Conv2dShape, ConvAlgo, Float, Rng};
use proptest::prelude::*;

/// The algorithms every shape is checked with (`auto` picks among the others).
const ALGOS: [ConvAlgo; 6] = [
    ConvAlgo::Direct,
    ConvAlgo::BatchLanes,
    ConvAlgo::Im2col,
    ConvAlgo::Winograd2x2,
    ConvAlgo::Winograd4x4,
    ConvAlgo::Auto,
];

/// Extra rounding error an algorithm may add, relative to the sum of the
/// absolute values of the terms (the largest in the output's tile, for
/// Winograd: see `tile_max`), and the tile size that scale is taken over:
/// Winograd's transforms round with coefficients up to 5 (F(2x2)) and 64
/// (F(4x4)); tests/winograd.rs measures them. `auto` may pick either.
fn algo_tolerance<T: Float>(algo: ConvAlgo) -> (f64, usize) {
    let eps = if T::NAME == "f32" {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    match algo {
        ConvAlgo::Direct | ConvAlgo::BatchLanes | ConvAlgo::Im2col => (0.0, 1),
        ConvAlgo::Winograd2x2 => (8.0 * eps, 2),
        _ => (160.0 * eps, 4),
    }
}

fn shape() -> impl Strategy<Value = Conv2dShape> {
    (
        (1usize..=3, 1usize..=3, 1usize..=4, 1usize..=4),
        (1usize..=12, 1usize..=12, 1usize..=4, 1usize..=4),
        (
            (1usize..=3, 1usize..=3),
            (0usize..=2, 0usize..=2),
            (1usize..=2, 1usize..=2),
        ),
    )
        .prop_map(
            |(
                (batch, groups, icg, ocg),
                (in_h, in_w, kernel_h, kernel_w),
                (stride, padding, dilation),
            )| {
                Conv2dShape {
                    batch,
                    in_channels: icg * groups,
                    in_h,
                    in_w,
                    out_channels: ocg * groups,
                    kernel_h,
                    kernel_w,
                    stride,
                    padding,
                    dilation,
                    groups,
                }
            },
        )
}

/// A stride-1, undilated shape with one group.
fn stride_one(
    batch: usize,
    (in_channels, out_channels): (usize, usize),
    (in_h, in_w): (usize, usize),
    (kernel_h, kernel_w): (usize, usize),
    padding: (usize, usize),
) -> Conv2dShape {
    Conv2dShape {
        batch,
        in_channels,
        in_h,
        in_w,
        out_channels,
        kernel_h,
        kernel_w,
        stride: (1, 1),
        padding,
        dilation: (1, 1),
        groups: 1,
    }
}

/// Stride-1 shapes with rows wide enough for the direct (no im2col) path.
fn wide_shape() -> impl Strategy<Value = Conv2dShape> {
    (
        (1usize..=2, 1usize..=3, 1usize..=13),
        (1usize..=6, 20usize..=40, 1usize..=5, 1usize..=5),
        (0usize..=2, 0usize..=2),
    )
        .prop_map(
            |((batch, in_channels, out_channels), (in_h, in_w, kernel_h, kernel_w), padding)| {
                stride_one(
                    batch,
                    (in_channels, out_channels),
                    (in_h + kernel_h, in_w),
                    (kernel_h, kernel_w),
                    padding,
                )
            },
        )
}

/// Unpadded stride-1 shapes with the kernel widths and channel counts the
/// direct weight-gradient path takes (kernel heights that leave a remainder
/// after its blocks of kernel rows; channel counts across vector widths).
fn unpadded_shape() -> impl Strategy<Value = Conv2dShape> {
    (
        (1usize..=3, 1usize..=4, 1usize..=40),
        (
            0usize..=6,
            0usize..=12,
            1usize..=7,
            prop_oneof![Just(3usize), Just(5), Just(7)],
        ),
    )
        .prop_map(
            |((batch, in_channels, out_channels), (extra_h, extra_w, kernel_h, kernel_w))| {
                stride_one(
                    batch,
                    (in_channels, out_channels),
                    (kernel_h + extra_h, kernel_w + extra_w),
                    (kernel_h, kernel_w),
                    (0, 0),
                )
            },
        )
}

/// 3x3 stride-1 shapes (Winograd's): odd and even sizes that leave partial
/// tiles, padding 0 to 2, groups.
fn winograd_shape() -> impl Strategy<Value = Conv2dShape> {
    (
        (1usize..=3, 1usize..=3, 1usize..=18, 1usize..=18),
        (1usize..=13, 1usize..=13, 0usize..=2, 0usize..=2),
    )
        .prop_map(
            |((batch, groups, icg, ocg), (h, w, pad_h, pad_w))| Conv2dShape {
                batch,
                in_channels: icg * groups,
                // At least one output row and column.
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

/// Stride-1 shapes with few channels and batches across several blocks of
/// images (the batch-lanes kernels take 4, 8 or 16 images per vector):
/// partial last blocks, planes shorter and longer than a vector, padding
/// up to the kernel's size less one.
fn batch_lanes_shape() -> impl Strategy<Value = Conv2dShape> {
    (
        (1usize..=40, 1usize..=4, 1usize..=9),
        (1usize..=5, 1usize..=5, 0usize..=12, 0usize..=12),
        (0usize..=4, 0usize..=4),
    )
        .prop_map(
            |(
                (batch, in_channels, out_channels),
                (kernel_h, kernel_w, extra_h, extra_w),
                (ph, pw),
            )| {
                stride_one(
                    batch,
                    (in_channels, out_channels),
                    (kernel_h + extra_h, kernel_w + extra_w),
                    (kernel_h, kernel_w),
                    (ph.min(kernel_h - 1), pw.min(kernel_w - 1)),
                )
            },
        )
}

fn abs<T: Float>(v: &[T]) -> Vec<T> {
    v.iter().map(|x| x.abs()).collect()
}

fn check<T: Float>(s: &Conv2dShape, with_bias: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<T> = random_vec(&mut rng, s.input_len());
    let w: Vec<T> = random_vec(&mut rng, s.weight_len());
    let dy: Vec<T> = random_vec(&mut rng, s.output_len());
    let bias: Vec<T> = random_vec(&mut rng, s.out_channels);
    let bias = with_bias.then_some(bias.as_slice());
    let taps = s.in_per_group() * s.kernel_h * s.kernel_w;

    let mut want_y = vec![T::ZERO; s.output_len()];
    reference::conv2d_forward(s, &x, &w, bias, &mut want_y);
    let mut want_dx = vec![T::ZERO; s.input_len()];
    reference::conv2d_backward_data(s, &dy, &w, &mut want_dx);
    let mut want_dw = vec![T::ZERO; s.weight_len()];
    reference::conv2d_backward_weight(s, &x, &dy, &mut want_dw);

    // Sums of |terms|, the scale rounding errors are relative to.
    let to_f64 = |v: Vec<T>| {
        v.into_iter()
            .map(|x| x.to_f64() + 1.0)
            .collect::<Vec<f64>>()
    };
    let mut scale_y = vec![T::ZERO; s.output_len()];
    reference::conv2d_forward(s, &abs(&x), &abs(&w), None, &mut scale_y);
    let mut scale_dx = vec![T::ZERO; s.input_len()];
    reference::conv2d_backward_data(s, &abs(&dy), &abs(&w), &mut scale_dx);
    let mut scale_dw = vec![T::ZERO; s.weight_len()];
    reference::conv2d_backward_weight(s, &abs(&x), &abs(&dy), &mut scale_dw);
    let (scale_y, scale_dx, scale_dw) = (to_f64(scale_y), to_f64(scale_dx), to_f64(scale_dw));

    for_each_level(|level| {
        for algo in ALGOS {
            with_conv_algo(algo, || {
                let what = |op: &str| format!("{op} {} {level} {algo} {s:?}", T::NAME);
                let (extra, m) = algo_tolerance::<T>(algo);
                let scale_y = tile_max(&scale_y, s.out_h(), s.out_w(), m);
                let scale_dx = tile_max(&scale_dx, s.in_h, s.in_w, m);
                let mut y = vec![T::from_f64(f64::NAN); s.output_len()];
                gradlab_cpu::conv2d_forward(s, &x, &w, bias, &mut y);
                assert_close(
                    &y,
                    &want_y,
                    &scale_y,
                    sum_tolerance::<T>(taps) + extra,
                    &what("forward"),
                );
                let mut dx = vec![T::from_f64(f64::NAN); s.input_len()];
                gradlab_cpu::conv2d_backward_data(s, &dy, &w, &mut dx);
                let dx_terms = s.out_per_group() * s.kernel_h * s.kernel_w;
                assert_close(
                    &dx,
                    &want_dx,
                    &scale_dx,
                    sum_tolerance::<T>(dx_terms) + extra,
                    &what("backward_data"),
                );
                let mut dw = vec![T::from_f64(f64::NAN); s.weight_len()];
                gradlab_cpu::conv2d_backward_weight(s, &x, &dy, &mut dw);
                let dw_terms = s.batch * s.out_h() * s.out_w();
                assert_close(
                    &dw,
                    &want_dw,
                    &scale_dw,
                    sum_tolerance::<T>(dw_terms) + extra,
                    &what("backward_weight"),
                );
            });
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn fast_conv_matches_reference_f32(s in shape(), with_bias in any::<bool>(), seed in any::<u64>()) {
        check::<f32>(&s, with_bias, seed);
    }

    #[test]
    fn direct_conv_matches_reference(s in wide_shape(), with_bias in any::<bool>(), seed in any::<u64>()) {
        check::<f32>(&s, with_bias, seed);
        check::<f64>(&s, with_bias, seed);
    }

    #[test]
    fn unpadded_conv_matches_reference(s in unpadded_shape(), seed in any::<u64>()) {
        check::<f32>(&s, false, seed);
        check::<f64>(&s, false, seed);
    }

    #[test]
    fn batch_lanes_shapes_match_reference(s in batch_lanes_shape(), with_bias in any::<bool>(), seed in any::<u64>()) {
        check::<f32>(&s, with_bias, seed);
        check::<f64>(&s, with_bias, seed);
    }

    #[test]
    fn winograd_shapes_match_reference(s in winograd_shape(), with_bias in any::<bool>(), seed in any::<u64>()) {
        check::<f32>(&s, with_bias, seed);
        check::<f64>(&s, with_bias, seed);
    }

    #[test]
    fn fast_conv_matches_reference_f64(s in shape(), with_bias in any::<bool>(), seed in any::<u64>()) {
        check::<f64>(&s, with_bias, seed);
    }
}

/// Batches large enough to split over threads and weight-gradient chunks,
/// plus a pointwise convolution (the path without a column matrix).
#[test]
fn batched_shapes_match_reference_on_several_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        check::<f32>(&Conv2dShape::square(9, 3, 6, 16, 5, 0), true, 1);
        check::<f32>(&Conv2dShape::square(2, 6, 16, 14, 5, 0), true, 2);
        check::<f64>(&Conv2dShape::square(7, 8, 8, 9, 3, 1), false, 3);
        check::<f32>(&Conv2dShape::square(7, 8, 12, 9, 1, 0), true, 4);
        // Long rows: the weight gradient runs on the padded input grid.
        check::<f32>(&Conv2dShape::square(5, 3, 6, 32, 5, 0), true, 5);
        let grouped = Conv2dShape {
            groups: 2,
            in_channels: 4,
            out_channels: 6,
            in_h: 20,
            in_w: 30,
            dilation: (2, 1),
            padding: (1, 2),
            ..Conv2dShape::square(3, 4, 6, 20, 3, 1)
        };
        check::<f64>(&grouped, false, 6);
    });
}

/// Sixteen or more input channels per group: the weight gradient comes
/// from a channels-last column matrix. Strides, dilations, padding, groups,
/// channel counts that are not multiples of the transposition block, and
/// enough positions for several chunks.
#[test]
fn many_channel_weight_gradients_match_reference() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        check::<f32>(&Conv2dShape::square(3, 16, 5, 9, 3, 1), true, 21);
        check::<f64>(&Conv2dShape::square(2, 19, 7, 8, 3, 0), false, 22);
        check::<f32>(&Conv2dShape::square(2, 24, 8, 48, 3, 1), false, 23);
        let strided = Conv2dShape {
            stride: (2, 3),
            dilation: (2, 1),
            padding: (2, 1),
            in_h: 13,
            in_w: 11,
            ..Conv2dShape::square(3, 17, 6, 13, 3, 1)
        };
        check::<f64>(&strided, true, 24);
        let grouped = Conv2dShape {
            groups: 2,
            in_channels: 34,
            out_channels: 6,
            dilation: (1, 2),
            padding: (1, 2),
            ..Conv2dShape::square(2, 34, 6, 10, 3, 1)
        };
        check::<f32>(&grouped, false, 25);
    });
}

/// Output channels that fill whole vectors (16, 32 in f32; 8 in f64): the
/// direct kernels with the channels in the lanes, forward and input
/// gradient, on widths that leave partial blocks, with padding.
#[test]
fn channel_lane_kernels_match_reference() {
    for (batch, c, oc, side, k, pad) in [
        (2, 6, 16, 14, 5, 0),
        (3, 5, 16, 11, 3, 1),
        (2, 7, 32, 9, 5, 2),
        (2, 3, 12, 13, 3, 0),
        (1, 16, 16, 6, 5, 4),
    ] {
        check::<f32>(&Conv2dShape::square(batch, c, oc, side, k, pad), true, 31);
    }
    check::<f64>(&Conv2dShape::square(2, 6, 8, 14, 5, 0), true, 32);
    check::<f64>(&Conv2dShape::square(2, 3, 16, 10, 3, 1), false, 33);
}

/// A non-finite input must reach exactly the gradients it reaches in the
/// reference (the padded-grid path would multiply it by zeros elsewhere).
#[test]
fn infinite_input_reaches_the_same_weight_gradients() {
    let s = Conv2dShape::square(2, 3, 4, 32, 5, 0);
    let mut rng = Rng::new(11);
    let mut x: Vec<f32> = random_vec(&mut rng, s.input_len());
    // Column 0 of a row: read by the dropped lanes past the previous row.
    x[3 * 32] = f32::INFINITY;
    let dy: Vec<f32> = random_vec(&mut rng, s.output_len());
    let mut want = vec![0f32; s.weight_len()];
    reference::conv2d_backward_weight(&s, &x, &dy, &mut want);
    let mut got = vec![0f32; s.weight_len()];
    gradlab_cpu::conv2d_backward_weight(&s, &x, &dy, &mut got);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.is_finite(), w.is_finite(), "got {g}, want {w}");
    }
}

/// Same inputs on 1, 2 and 3 threads: bit-identical outputs and gradients,
/// for every named algorithm.
#[test]
fn results_do_not_depend_on_thread_count() {
    for algo in ALGOS.into_iter().filter(|&a| a != ConvAlgo::Auto) {
        for s in [
            Conv2dShape::square(11, 4, 8, 12, 3, 1),
            Conv2dShape::square(19, 6, 16, 14, 5, 0),
            // Enough tiles for several Winograd blocks.
            Conv2dShape::square(9, 16, 24, 33, 3, 1),
        ] {
            same_on_one_two_and_three_threads(&s, algo);
        }
    }
}

fn same_on_one_two_and_three_threads(s: &Conv2dShape, algo: ConvAlgo) {
    let mut rng = Rng::new(9);
    let x: Vec<f32> = random_vec(&mut rng, s.input_len());
    let w: Vec<f32> = random_vec(&mut rng, s.weight_len());
    let dy: Vec<f32> = random_vec(&mut rng, s.output_len());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            with_conv_algo(algo, || {
                let mut y = vec![0f32; s.output_len()];
                let mut dx = vec![0f32; s.input_len()];
                let mut dw = vec![0f32; s.weight_len()];
                gradlab_cpu::conv2d_forward(s, &x, &w, None, &mut y);
                gradlab_cpu::conv2d_backward_data(s, &dy, &w, &mut dx);
                gradlab_cpu::conv2d_backward_weight(s, &x, &dy, &mut dw);
                (y, dx, dw)
            })
        })
    };
    let one = run(1);
    assert!(one == run(2) && one == run(3), "{algo} {s:?}");
}

#[test]
#[should_panic(expected = "conv2d_forward: invalid shape")]
fn groups_that_do_not_divide_channels_are_rejected() {
    let mut s = Conv2dShape::square(1, 3, 6, 8, 3, 0);
    s.groups = 2;
    let mut y = vec![0f32; 1000];
    gradlab_cpu::conv2d_forward(&s, &[0.0; 1000], &[0.0; 1000], None, &mut y);
}

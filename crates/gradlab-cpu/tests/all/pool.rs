//! The fast max-pool against its reference twin: random windows, strides,
//! padding, dilation and ceil mode, values drawn from a small set (so that
//! ties are common) with NaNs mixed in at random; argmax must match exactly.

use gradlab_cpu::{reference, with_simd_level, Float, Pool2dShape, Rng, SimdLevel};
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = Pool2dShape> {
    (
        (1usize..=3, 1usize..=4, 1usize..=13, 1usize..=13),
        ((1usize..=3, 1usize..=3), (1usize..=3, 1usize..=3)),
        (
            (0usize..=1, 0usize..=1),
            (1usize..=2, 1usize..=2),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((batch, channels, in_h, in_w), (kernel, stride), (padding, dilation, ceil_mode))| {
                Pool2dShape {
                    batch,
                    channels,
                    in_h,
                    in_w,
                    kernel,
                    stride,
                    // PyTorch requires padding <= kernel / 2.
                    padding: (padding.0.min(kernel.0 / 2), padding.1.min(kernel.1 / 2)),
                    dilation,
                    ceil_mode,
                }
            },
        )
}

fn check<T: Float>(s: &Pool2dShape, seed: u64, nan_every: usize) {
    let mut rng = Rng::new(seed);
    let x: Vec<T> = (0..s.input_len())
        .map(|_| {
            if nan_every > 0 && rng.below(nan_every) == 0 {
                T::from_f64(f64::NAN)
            } else {
                T::from_f64(rng.below(5) as f64 - 2.0)
            }
        })
        .collect();
    let mut want = vec![T::ZERO; s.output_len()];
    let mut want_idx = vec![0usize; s.output_len()];
    reference::max_pool2d_forward(s, &x, &mut want, &mut want_idx);
    let mut got = vec![T::ZERO; s.output_len()];
    let mut got_idx = vec![7usize; s.output_len()];
    gradlab_cpu::max_pool2d_forward(s, &x, &mut got, &mut got_idx);
    assert_eq!(got_idx, want_idx, "argmax {s:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "value {g} vs {w} {s:?}"
        );
    }

    let dy: Vec<T> = crate::common::random_vec(&mut rng, s.output_len());
    let mut want_dx = vec![T::ZERO; s.input_len()];
    reference::max_pool2d_backward(s, &dy, &want_idx, &mut want_dx);
    let mut got_dx = vec![T::from_f64(f64::NAN); s.input_len()];
    gradlab_cpu::max_pool2d_backward(s, &dy, &got_idx, &mut got_dx);
    // Same additions in the same order: exact.
    assert_eq!(got_dx, want_dx, "backward {s:?}");

    // Tensors keep i64 argmax (-1 for no winner): the same winners, and the
    // adding backward on a buffer holding `base` gives `base + dx`.
    let mut got_i64 = vec![7i64; s.output_len()];
    gradlab_cpu::max_pool2d_forward(s, &x, &mut got, &mut got_i64);
    let as_i64: Vec<i64> = want_idx
        .iter()
        .map(|&i| if i == usize::MAX { -1 } else { i as i64 })
        .collect();
    assert_eq!(got_i64, as_i64, "i64 argmax {s:?}");
    let base: Vec<T> = crate::common::random_vec(&mut rng, s.input_len());
    let mut added = base.clone();
    gradlab_cpu::max_pool2d_backward_add(s, &dy, &got_i64, &mut added);
    let mut want_added = base.clone();
    let (plane, out_plane) = (s.in_h * s.in_w, s.out_h() * s.out_w());
    for (o, (&g, &i)) in dy.iter().zip(&want_idx).enumerate() {
        if i != usize::MAX {
            want_added[(o / out_plane) * plane + i] += g;
        }
    }
    assert_eq!(added, want_added, "backward_add {s:?}");
}

#[test]
#[should_panic(expected = "outside its")]
fn argmax_outside_the_plane_is_refused() {
    let s = Pool2dShape {
        batch: 1,
        channels: 1,
        in_h: 2,
        in_w: 2,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let mut dx = [0.0f32; 4];
    gradlab_cpu::max_pool2d_backward(&s, &[1.0], &[4i64], &mut dx);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fast_pool_matches_reference(s in shape(), seed in any::<u64>(), nan_every in prop_oneof![Just(0usize), 2usize..9]) {
        check::<f32>(&s, seed, nan_every);
        check::<f64>(&s, seed, nan_every);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The 2×2, stride-2 kernels, on odd and even sides: narrow planes
    /// (masked vectors only), one to several full vectors and a ragged last
    /// one, at every SIMD level this CPU runs.
    #[test]
    fn two_by_two_pool_matches_reference(
        side in (1usize..=13, prop_oneof![1usize..=13, 14usize..=70]),
        ceil_mode in any::<bool>(),
        seed in any::<u64>(),
        nan_every in prop_oneof![Just(0usize), 2usize..5],
    ) {
        let s = Pool2dShape {
            batch: 2,
            channels: 3,
            in_h: side.0,
            in_w: side.1,
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode,
        };
        for level in SimdLevel::supported() {
            with_simd_level(level, || check::<f32>(&s, seed, nan_every));
        }
        check::<f64>(&s, seed, nan_every);
    }
}

/// An argmax naming a position outside its own window (which the forward
/// never produces, but the backward accepts) lands where it points, and a
/// window without a winner (-1) leaves only zeros.
#[test]
fn backward_follows_argmax_outside_the_window() {
    let s = Pool2dShape {
        batch: 2,
        channels: 1,
        in_h: 5,
        in_w: 5,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let dy = [1.0f32, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
    // Plane 0: own windows' taps (one without a winner); plane 1: window 0
    // points at the last row, which no window covers, window 3 at window 0.
    let argmax: [i64; 8] = [6, -1, 11, 18, 24, 3, 10, 0];
    let mut want = vec![0.0f32; s.input_len()];
    reference_scatter(&s, &dy, &argmax, &mut want);
    let mut dx = vec![f32::NAN; s.input_len()];
    gradlab_cpu::max_pool2d_backward(&s, &dy, &argmax, &mut dx);
    assert_eq!(dx, want);
    assert_eq!(&dx[..12], &[0., 0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 3.]);
    assert_eq!(dx[25 + 24], 10.0);
    assert_eq!(dx[25], 40.0);
}

/// Every gradient added at the plane position its argmax names.
fn reference_scatter(s: &Pool2dShape, dy: &[f32], argmax: &[i64], dx: &mut [f32]) {
    let (plane, out_plane) = (s.in_h * s.in_w, s.out_h() * s.out_w());
    for (o, (&g, &a)) in dy.iter().zip(argmax).enumerate() {
        if a >= 0 {
            dx[(o / out_plane) * plane + a as usize] += g;
        }
    }
}

/// LeNet's pools, on a multi-threaded pool (several planes per task).
#[test]
fn lenet_pools_match_reference_on_several_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        for (channels, side) in [(6, 28), (16, 10), (5, 27)] {
            let s = Pool2dShape {
                batch: 9,
                channels,
                in_h: side,
                in_w: side,
                kernel: (2, 2),
                stride: (2, 2),
                padding: (0, 0),
                dilation: (1, 1),
                ceil_mode: side % 2 == 1,
            };
            check::<f32>(&s, 5, 0);
            check::<f32>(&s, 6, 7);
        }
    });
}

/// PyTorch's CPU rule, pinned on a hand-made window: among numbers the first
/// maximum wins, any NaN beats them, and the last NaN of the window wins.
#[test]
fn nan_and_tie_rules_follow_pytorch() {
    let s = Pool2dShape {
        batch: 1,
        channels: 1,
        in_h: 2,
        in_w: 4,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let nan = f64::NAN;
    // Window 0 holds [5, nan; nan, 7], window 1 holds [3, 3; 1, 3].
    let x = [5.0, nan, 3.0, 3.0, nan, 7.0, 1.0, 3.0];
    for (name, pool) in [
        (
            "reference",
            gradlab_cpu::reference::max_pool2d_forward::<f64>
                as fn(&Pool2dShape, &[f64], &mut [f64], &mut [usize]),
        ),
        ("fast", gradlab_cpu::max_pool2d_forward::<f64, usize>),
    ] {
        let (mut out, mut arg) = ([0.0; 2], [0usize; 2]);
        pool(&s, &x, &mut out, &mut arg);
        assert!(out[0].is_nan() && out[1] == 3.0, "{name}: {out:?}");
        assert_eq!(arg, [4, 2], "{name}");
    }
}

/// The fallible backward names the first bad entry by flat index, whichever
/// task reaches one first, and accepts what the forward produced.
#[test]
fn fallible_backward_reports_the_first_entry_outside_its_plane() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let s = Pool2dShape {
        batch: 8,
        channels: 16,
        in_h: 32,
        in_w: 32,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let mut rng = Rng::new(3);
    let x: Vec<f32> = crate::common::random_vec(&mut rng, s.input_len());
    let dy: Vec<f32> = crate::common::random_vec(&mut rng, s.output_len());
    let mut y = vec![0.0f32; s.output_len()];
    let mut argmax = vec![0i64; s.output_len()];
    gradlab_cpu::max_pool2d_forward(&s, &x, &mut y, &mut argmax);
    let as_usize: Vec<usize> = argmax.iter().map(|&i| i as usize).collect();
    let mut want = vec![0.0f32; s.input_len()];
    reference::max_pool2d_backward(&s, &dy, &as_usize, &mut want);
    pool.install(|| {
        let mut dx = vec![f32::NAN; s.input_len()];
        assert_eq!(
            gradlab_cpu::try_max_pool2d_backward(&s, &dy, &argmax, &mut dx),
            Ok(())
        );
        assert_eq!(dx, want);
        // Bad entries in a late plane and an earlier one (other tasks).
        let mut bad = argmax.clone();
        let out_plane = s.out_h() * s.out_w();
        bad[100 * out_plane + 5] = 1024;
        bad[37 * out_plane + 200] = -7;
        let err = gradlab_cpu::try_max_pool2d_backward(&s, &dy, &bad, &mut dx).unwrap_err();
        assert_eq!(
            (err.at, err.entry.as_str(), err.plane),
            (37 * out_plane + 200, "-7", 1024)
        );
        assert!(err
            .to_string()
            .contains("is outside its plane of 1024 elements"));
    });
}

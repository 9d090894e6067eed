//! Batch norm followed by ReLU as one kernel: against the unfused fast
//! kernels (batch norm, then ReLU; ReLU's backward, then batch norm's),
//! which it must match to the bit, and against its reference twin, on
//! random shapes with channels that ReLU cuts entirely or not at all.

use crate::common::random_vec;
use gradlab_cpu::{
    reference, with_simd_level, BatchNormShape, BinaryOp, Float, Rng, SimdLevel, UnaryOp,
};
use proptest::prelude::*;

struct Case<T> {
    s: BatchNormShape,
    x: Vec<T>,
    dy: Vec<T>,
    weight: Vec<T>,
    bias: Vec<T>,
}

/// Random data; channel 0's bias makes every normalised value positive
/// (ReLU passes all), channel 1's makes every one negative (ReLU cuts all).
fn case<T: Float>(s: BatchNormShape, offset: f64, seed: u64) -> Case<T> {
    let mut rng = Rng::new(seed);
    let x = random_vec::<T>(&mut rng, s.len())
        .into_iter()
        .map(|v| T::from_f64(v.to_f64() + offset))
        .collect();
    let dy = random_vec(&mut rng, s.len());
    let weight = random_vec(&mut rng, s.channels);
    let mut bias: Vec<T> = random_vec(&mut rng, s.channels);
    // Normalised values lie within ±sqrt(count) of 0, times |weight| <= 1.
    let beyond = T::from_f64((s.count() as f64).sqrt() + 1.0);
    bias[0] = beyond;
    if s.channels > 1 {
        bias[1] = -beyond;
    }
    Case {
        s,
        x,
        dy,
        weight,
        bias,
    }
}

type Outputs<T> = [Vec<T>; 6];

fn fused<T: Float>(c: &Case<T>, reference_twin: bool, affine: bool) -> Outputs<T> {
    let (s, n) = (c.s, c.s.channels);
    let (w, b) = if affine {
        (Some(c.weight.as_slice()), Some(c.bias.as_slice()))
    } else {
        (None, None)
    };
    let (mut y, mut m, mut v) = (vec![T::ZERO; s.len()], vec![T::ZERO; n], vec![T::ZERO; n]);
    let (mut dx, mut dw, mut db) = (vec![T::ZERO; s.len()], vec![T::ZERO; n], vec![T::ZERO; n]);
    if reference_twin {
        reference::batch_norm2d_relu_train_forward(s, &c.x, w, b, 1e-5, &mut y, &mut m, &mut v);
        reference::batch_norm2d_relu_backward(
            s, &c.dy, &c.x, &m, &v, w, b, 1e-5, &mut dx, &mut dw, &mut db,
        );
    } else {
        gradlab_cpu::batch_norm2d_relu_train_forward(s, &c.x, w, b, 1e-5, &mut y, &mut m, &mut v);
        gradlab_cpu::batch_norm2d_relu_backward(
            s, &c.dy, &c.x, &m, &v, w, b, 1e-5, &mut dx, &mut dw, &mut db,
        );
    }
    [y, m, v, dx, dw, db]
}

/// The fast kernels unfused: batch norm, ReLU, ReLU's backward, batch norm's.
fn unfused<T: Float>(c: &Case<T>, affine: bool) -> Outputs<T> {
    let (s, n) = (c.s, c.s.channels);
    let (w, b) = if affine {
        (Some(c.weight.as_slice()), Some(c.bias.as_slice()))
    } else {
        (None, None)
    };
    let (mut z, mut m, mut v) = (vec![T::ZERO; s.len()], vec![T::ZERO; n], vec![T::ZERO; n]);
    gradlab_cpu::batch_norm2d_train_forward(s, &c.x, w, b, 1e-5, &mut z, &mut m, &mut v);
    let y: Vec<T> = z.iter().map(|&z| UnaryOp::Relu.eval(z)).collect();
    let g: Vec<T> =
        c.dy.iter()
            .zip(&z)
            .map(|(&g, &z)| BinaryOp::ReluBackward.eval(g, z))
            .collect();
    let (mut dx, mut dw, mut db) = (vec![T::ZERO; s.len()], vec![T::ZERO; n], vec![T::ZERO; n]);
    gradlab_cpu::batch_norm2d_backward(s, &g, &c.x, &m, &v, w, 1e-5, &mut dx, &mut dw, &mut db);
    [y, m, v, dx, dw, db]
}

const NAMES: [&str; 6] = ["y", "mean", "var", "dx", "dweight", "dbias"];

fn check<T: Float>(s: BatchNormShape, offset: f64, affine: bool, seed: u64, tol: f64) {
    let c = case::<T>(s, offset, seed);
    let got = fused(&c, false, affine);
    let apart = unfused(&c, affine);
    for ((g, a), what) in got.iter().zip(&apart).zip(NAMES) {
        let same = g
            .iter()
            .zip(a)
            .all(|(g, a)| g.to_f64().to_bits() == a.to_f64().to_bits());
        assert!(same, "{what}: fused and unfused fast kernels differ");
    }
    let want = fused(&c, true, affine);
    // As in the batch-norm test: normalised values and dx carry the mean's
    // rounding relative to the spread.
    let scaled = tol * (1.0 + offset.abs());
    for ((g, w), (what, tol)) in got.iter().zip(&want).zip(NAMES.into_iter().zip([
        scaled,
        tol,
        tol,
        10.0 * scaled,
        tol,
        tol,
    ])) {
        for (i, (g, w)) in g.iter().zip(w).enumerate() {
            let (g, w) = (g.to_f64(), w.to_f64());
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }
    if affine {
        // Channel 0 passes everything, channel 1 nothing: there dy never
        // reaches batch norm, so its gradients are exactly zero.
        let plane =
            |t: &[T], n: usize, ch: usize| t[(n * s.channels + ch) * s.plane..][..s.plane].to_vec();
        for n in 0..s.batch {
            assert!(plane(&got[0], n, 0).iter().all(|&v| v > T::ZERO));
            if s.channels > 1 {
                assert!(plane(&got[0], n, 1).iter().all(|&v| v == T::ZERO));
                assert!(plane(&got[3], n, 1).iter().all(|&v| v == T::ZERO));
            }
        }
        if s.channels > 1 {
            assert_eq!((got[4][1], got[5][1]), (T::ZERO, T::ZERO));
        }
    }
}

fn shape() -> impl Strategy<Value = BatchNormShape> {
    (1usize..=5, 1usize..=6, 1usize..=40).prop_map(|(batch, channels, plane)| BatchNormShape {
        batch,
        channels,
        plane: if batch * plane < 2 { 2 } else { plane },
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn fused_batch_norm_relu_matches_unfused_and_reference(
        s in shape(),
        offset in prop_oneof![Just(0.0), -3.0f64..3.0, Just(100.0)],
        affine in any::<bool>(),
        seed in any::<u64>(),
    ) {
        check::<f64>(s, offset, affine, seed, 1e-12);
        check::<f32>(s, offset, affine, seed, 2e-5);
    }
}

/// Large enough to split over threads: the same bits on 1, 2 and 3 threads.
#[test]
fn large_batches_are_thread_count_independent() {
    let s = BatchNormShape {
        batch: 16,
        channels: 12,
        plane: 30 * 30,
    };
    let c = case::<f32>(s, 0.5, 3);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| fused(&c, false, true))
    };
    let one = run(1);
    assert!(one == run(2) && one == run(3));
    check::<f32>(s, 0.5, true, 4, 2e-5);
}

/// The statistics, the normalising pass and both backward passes run in
/// vectors as wide as the CPU has, summing in the same lanes at every
/// level: the same bits at every SIMD level, fused or not, on planes whose
/// length leaves a tail after the last whole vector (and, at 1e4 with a
/// small spread, on a mean large against the spread).
#[test]
fn every_simd_level_gives_the_same_bits() {
    for (plane, offset) in [(30 * 30, 0.5), (13, 0.0), (64, 1e4), (7, -2.0)] {
        let s = BatchNormShape {
            batch: 6,
            channels: 5,
            plane,
        };
        let c32 = case::<f32>(s, offset, plane as u64);
        let c64 = case::<f64>(s, offset, plane as u64 + 1);
        let levels = SimdLevel::supported();
        let at = |level| {
            with_simd_level(level, || {
                (
                    fused(&c32, false, true),
                    unfused(&c32, false),
                    fused(&c64, false, true),
                    unfused(&c64, true),
                )
            })
        };
        let first = at(levels[0]);
        for &level in &levels[1..] {
            assert!(
                at(level) == first,
                "plane {plane}: {level:?} differs from {:?}",
                levels[0]
            );
        }
    }
}

//! The fused batch-norm kernels against their reference twin: random
//! shapes (size-1 batches, planes and channels included), large means
//! against small spreads, with and without the affine parameters, f32 and
//! f64, one and several threads.

use crate::common::random_vec;
use gradlab_cpu::{reference, BatchNormShape, Float, Rng};
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = BatchNormShape> {
    (1usize..=5, 1usize..=6, 1usize..=40).prop_map(|(batch, channels, plane)| BatchNormShape {
        batch,
        channels,
        plane,
    })
}

fn close<T: Float>(got: &[T], want: &[T], tol: f64, what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.to_f64(), w.to_f64());
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

fn check<T: Float>(s: BatchNormShape, offset: f64, affine: bool, seed: u64, tol: f64) {
    let mut rng = Rng::new(seed);
    let x: Vec<T> = random_vec::<T>(&mut rng, s.len())
        .into_iter()
        .map(|v| T::from_f64(v.to_f64() + offset))
        .collect();
    let dy: Vec<T> = random_vec(&mut rng, s.len());
    let w: Vec<T> = random_vec(&mut rng, s.channels);
    let b: Vec<T> = random_vec(&mut rng, s.channels);
    let (w, b) = if affine {
        (Some(w.as_slice()), Some(b.as_slice()))
    } else {
        (None, None)
    };
    let eps = 1e-5;
    let c = s.channels;
    let (mut y0, mut m0, mut v0) = (vec![T::ZERO; s.len()], vec![T::ZERO; c], vec![T::ZERO; c]);
    reference::batch_norm2d_train_forward(s, &x, w, b, eps, &mut y0, &mut m0, &mut v0);
    let (mut y, mut m, mut v) = (vec![T::ZERO; s.len()], vec![T::ZERO; c], vec![T::ZERO; c]);
    gradlab_cpu::batch_norm2d_train_forward(s, &x, w, b, eps, &mut y, &mut m, &mut v);
    // Normalised values inherit the rounding of the mean (to T) relative to
    // the spread: with a large offset, that is most of their error.
    let tol_normalised = tol * (1.0 + offset.abs());
    close(&m, &m0, tol, "mean");
    close(&v, &v0, tol, "var");
    close(&y, &y0, tol_normalised, "y");

    let (mut dx0, mut dw0, mut db0) = (vec![T::ZERO; s.len()], vec![T::ZERO; c], vec![T::ZERO; c]);
    reference::batch_norm2d_backward(s, &dy, &x, &m0, &v0, w, eps, &mut dx0, &mut dw0, &mut db0);
    let (mut dx, mut dw, mut db) = (vec![T::ZERO; s.len()], vec![T::ZERO; c], vec![T::ZERO; c]);
    gradlab_cpu::batch_norm2d_backward(s, &dy, &x, &m, &v, w, eps, &mut dx, &mut dw, &mut db);
    close(&db, &db0, tol, "dbias");
    // dweight sums dy times the normalised values, which carry the mean's
    // rounding (each side uses its own mean): it scales like y's error.
    close(&dw, &dw0, tol_normalised, "dweight");
    // dx is a difference of terms of the size of dy: its error scales with them.
    close(&dx, &dx0, 10.0 * tol_normalised, "dx");

    // Evaluation mode with the statistics as running statistics (a
    // variance bumped away from the batch's, as running ones are).
    let running_var: Vec<T> = v0
        .iter()
        .map(|v| T::from_f64(v.to_f64() * 1.3 + 0.1))
        .collect();
    let mut e0 = vec![T::ZERO; s.len()];
    reference::batch_norm2d_inference(s, &x, &m0, &running_var, w, b, eps, &mut e0);
    let mut e = vec![T::ZERO; s.len()];
    gradlab_cpu::batch_norm2d_inference(s, &x, &m0, &running_var, w, b, eps, &mut e);
    close(&e, &e0, tol_normalised, "inference");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn fused_batch_norm_matches_reference(
        s in shape(),
        offset in prop_oneof![Just(0.0), -3.0f64..3.0, Just(100.0)],
        affine in any::<bool>(),
        seed in any::<u64>(),
    ) {
        check::<f64>(s, offset, affine, seed, 1e-12);
        check::<f32>(s, offset, affine, seed, 2e-5);
    }
}

/// Large enough to split over threads: same results on 1, 2 and 3 threads,
/// and the same as the reference.
#[test]
fn large_batches_are_thread_count_independent() {
    let s = BatchNormShape {
        batch: 16,
        channels: 12,
        plane: 30 * 30,
    };
    let mut rng = Rng::new(3);
    let x: Vec<f32> = random_vec(&mut rng, s.len());
    let dy: Vec<f32> = random_vec(&mut rng, s.len());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let c = s.channels;
            let (mut y, mut m, mut v) = (vec![0f32; s.len()], vec![0f32; c], vec![0f32; c]);
            gradlab_cpu::batch_norm2d_train_forward(
                s, &x, None, None, 1e-5, &mut y, &mut m, &mut v,
            );
            let (mut dx, mut dw, mut db) = (vec![0f32; s.len()], vec![0f32; c], vec![0f32; c]);
            gradlab_cpu::batch_norm2d_backward(
                s, &dy, &x, &m, &v, None, 1e-5, &mut dx, &mut dw, &mut db,
            );
            (y, m, v, dx, dw, db)
        })
    };
    let one = run(1);
    assert!(one == run(2) && one == run(3));
    check::<f32>(s, 0.5, true, 4, 2e-5);
}

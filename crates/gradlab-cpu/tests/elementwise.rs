//! The elementwise helpers against their reference twins, on sizes below
//! and above the parallel chunk, f32 and f64.

mod common;

use common::{assert_close, random_vec};
use gradlab_cpu::{reference, Float, LabelOutOfRange, Rng};
use proptest::prelude::*;

fn check<T: Float>(batch: usize, channels: usize, plane: usize, classes: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let len = batch * channels * plane;
    let mut x: Vec<T> = random_vec(&mut rng, len);
    x.iter_mut()
        .step_by(11)
        .for_each(|v| *v = T::from_f64(f64::NAN));
    let bias: Vec<T> = random_vec(&mut rng, channels);
    let ones = vec![1.0; len];

    let mut want = x.clone();
    reference::bias_add_channels(&mut want, &bias, channels, plane);
    let mut got = x.clone();
    gradlab_cpu::bias_add_channels(&mut got, &bias, channels, plane);
    assert_close(&got, &want, &ones, 0.0, "bias_add_channels");

    let (mut want, mut got) = (vec![T::ZERO; len], vec![T::ZERO; len]);
    reference::relu_forward(&x, &mut want);
    gradlab_cpu::relu_forward(&x, &mut got);
    assert_close(&got, &want, &ones, 0.0, "relu_forward");
    let dy: Vec<T> = random_vec(&mut rng, len);
    reference::relu_backward(&x, &dy, &mut want);
    gradlab_cpu::relu_backward(&x, &dy, &mut got);
    assert_close(&got, &want, &ones, 0.0, "relu_backward");

    let rows = batch * channels;
    let logits: Vec<T> = random_vec::<T>(&mut rng, rows * classes)
        .into_iter()
        .map(|v| v * T::from_f64(20.0))
        .collect();
    let labels: Vec<usize> = (0..rows).map(|_| rng.below(classes)).collect();
    let (mut want_p, mut got_p) = (vec![T::ZERO; rows * classes], vec![T::ZERO; rows * classes]);
    let want_loss = reference::softmax_cross_entropy(&logits, rows, classes, &labels, &mut want_p);
    let got_loss =
        gradlab_cpu::softmax_cross_entropy(&logits, rows, classes, &labels, &mut got_p).unwrap();
    let tol = 8.0
        * if T::NAME == "f32" {
            f32::EPSILON as f64
        } else {
            f64::EPSILON
        };
    assert_close(
        &[got_loss],
        &[want_loss],
        &[want_loss.to_f64().abs() + 1.0],
        tol,
        "loss",
    );
    let prob_scale = vec![1.0; rows * classes];
    assert_close(&got_p, &want_p, &prob_scale, tol, "softmax");
    let (mut want_g, mut got_g) = (vec![T::ZERO; rows * classes], vec![T::ZERO; rows * classes]);
    let scale = T::from_f64(0.5);
    reference::softmax_cross_entropy_backward(&want_p, rows, classes, &labels, scale, &mut want_g);
    gradlab_cpu::softmax_cross_entropy_backward(&want_p, rows, classes, &labels, scale, &mut got_g);
    assert_close(
        &got_g,
        &want_g,
        &prob_scale,
        0.0,
        "softmax_cross_entropy_backward",
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn helpers_match_reference(
        batch in 1usize..=4,
        channels in 1usize..=7,
        plane in prop_oneof![1usize..=40, Just(784usize), Just(4099usize)],
        classes in 1usize..=12,
        seed in any::<u64>(),
    ) {
        check::<f32>(batch, channels, plane, classes, seed);
        check::<f64>(batch, channels, plane, classes, seed);
    }
}

#[test]
fn large_inputs_match_reference_on_several_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        check::<f32>(64, 6, 784, 10, 1);
        check::<f64>(9, 16, 100, 10, 2);
    });
}

#[test]
fn label_out_of_range_is_an_error_naming_the_row() {
    let logits = [0.0f32; 6];
    let mut probs = [0.0f32; 6];
    let err = gradlab_cpu::softmax_cross_entropy(&logits, 2, 3, &[1, 3], &mut probs).unwrap_err();
    assert_eq!(
        err,
        LabelOutOfRange {
            row: 1,
            label: 3,
            classes: 3
        }
    );
    assert!(err.to_string().contains("label 3 of row 1"));
}

#[test]
fn softmax_of_equal_logits_is_uniform_and_loss_is_ln_classes() {
    let mut probs = [0.0f64; 8];
    let loss = gradlab_cpu::softmax_cross_entropy(&[3.0f64; 8], 2, 4, &[0, 2], &mut probs).unwrap();
    assert!((loss - 4f64.ln()).abs() < 1e-12);
    assert!(probs.iter().all(|&p| (p - 0.25).abs() < 1e-15));
}

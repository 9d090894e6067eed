//! One-pass batch statistics against the two-pass definition in `f64`:
//! data with a mean large against its spread (where the naive one-pass
//! formula loses every digit), an outlier first value, runs of every
//! length around the block size, and the batch-norm kernel's statistics.

use crate::common::random_vec;
use gradlab_cpu::moments::{moments_of_runs, Moments, BLOCK};
use gradlab_cpu::{reference, BatchNormShape, Float, Rng};

/// A compensated (Neumaier) sum: the reference's own rounding stays far
/// below the errors the tests bound.
fn accurate_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut lost) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        lost += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
    }
    sum + lost
}

/// Mean and biased variance by the definition: the mean, then the squared
/// deviations from it, in `f64` with compensated sums.
fn two_pass(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = accurate_sum(values.iter().copied()) / n;
    let var = accurate_sum(values.iter().map(|v| (v - mean) * (v - mean))) / n;
    (mean, var)
}

fn relative(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(f64::MIN_POSITIVE)
}

/// `len` values `offset + spread * u`, u uniform in [-1, 1), rounded to `T`.
fn shifted<T: Float>(len: usize, offset: f64, spread: f64, seed: u64) -> Vec<T> {
    random_vec::<f64>(&mut Rng::new(seed), len)
        .into_iter()
        .map(|u| T::from_f64(offset + spread * u))
        .collect()
}

fn as_f64<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|v| v.to_f64()).collect()
}

#[test]
fn a_large_mean_against_a_small_spread_keeps_the_variance() {
    for (len, run) in [(4096, 1024), (3 * BLOCK + 5, 7), (1000, 1), (BLOCK, BLOCK)] {
        // f32 data: 1e4 plus noise of 1e-2 (a few dozen f32 steps).
        let x = shifted::<f32>(len, 1e4, 1e-2, len as u64);
        let (mean, var) = two_pass(&as_f64(&x));
        let m = moments_of_runs(x.chunks(run));
        assert!(
            relative(m.mean, mean) < 1e-15,
            "{len}/{run}: mean {} vs {mean}",
            m.mean
        );
        assert!(
            relative(m.variance(), var) < 1e-11,
            "{len}/{run}: var {} vs {var}",
            m.variance()
        );
        // The naive one-pass formula in f64 on the same values is off by
        // orders of magnitude more: the test data is hard.
        let n = len as f64;
        let (s1, s2) = x.iter().fold((0.0f64, 0.0f64), |(a, b), &v| {
            let v = v as f64;
            (a + v, b + v * v)
        });
        let naive = s2 / n - (s1 / n) * (s1 / n);
        assert!(
            relative(naive, var) > 1e-6,
            "{len}/{run}: naive {naive} vs {var}"
        );

        // f64 data: 1e4 plus noise of 1e-3.
        let x = shifted::<f64>(len, 1e4, 1e-3, len as u64 + 1);
        let (mean, var) = two_pass(&x);
        let m = moments_of_runs(x.chunks(run));
        assert!(
            relative(m.mean, mean) < 1e-15,
            "{len}/{run}: mean {} vs {mean}",
            m.mean
        );
        assert!(
            relative(m.variance(), var) < 1e-9,
            "{len}/{run}: var {} vs {var}",
            m.variance()
        );
    }
}

#[test]
fn an_outlier_first_value_does_not_spoil_the_rest() {
    let mut x = shifted::<f64>(5000, -3e3, 1e-2, 9);
    x[0] = -3e3 + 50.0;
    let (mean, var) = two_pass(&x);
    let m = moments_of_runs(x.chunks(100));
    assert!(relative(m.mean, mean) < 1e-14, "mean {} vs {mean}", m.mean);
    assert!(
        relative(m.variance(), var) < 1e-9,
        "var {} vs {var}",
        m.variance()
    );
}

#[test]
fn constant_values_have_zero_variance_and_merging_is_exact() {
    let x = vec![7.25f32; 3 * BLOCK + 3];
    let m = moments_of_runs(x.chunks(13));
    assert_eq!((m.count, m.mean, m.m2), ((3 * BLOCK + 3) as f64, 7.25, 0.0));

    let a = shifted::<f64>(300, 2.0, 1.0, 1);
    let b = shifted::<f64>(900, -1.0, 3.0, 2);
    let both: Vec<f64> = a.iter().chain(&b).copied().collect();
    let merged = moments_of_runs([a.as_slice()]).merge(moments_of_runs([b.as_slice()]));
    let (mean, var) = two_pass(&both);
    assert_eq!(merged.count, 1200.0);
    assert!(relative(merged.mean, mean) < 1e-14 && relative(merged.variance(), var) < 1e-13);
    assert_eq!(Moments::default().merge(merged), merged);
    assert_eq!(moments_of_runs::<f64>([]).variance(), 0.0);
}

/// The training forward's statistics (one read) are no less accurate than
/// the reference's two-pass loops, on activations with a large mean.
#[test]
fn batch_norm_statistics_on_a_large_mean_match_the_f64_definition() {
    let s = BatchNormShape {
        batch: 8,
        channels: 3,
        plane: 17 * 17,
    };
    let x = shifted::<f32>(s.len(), 1e4, 1e-2, 5);
    let c = s.channels;
    let run = |fast: bool| {
        let (mut y, mut m, mut v) = (vec![0f32; s.len()], vec![0f32; c], vec![0f32; c]);
        if fast {
            gradlab_cpu::batch_norm2d_train_forward(s, &x, None, None, 0.0, &mut y, &mut m, &mut v);
        } else {
            reference::batch_norm2d_train_forward(s, &x, None, None, 0.0, &mut y, &mut m, &mut v);
        }
        (m, v)
    };
    let ((m, v), (m0, v0)) = (run(true), run(false));
    for ch in 0..c {
        let values: Vec<f64> = (0..s.batch)
            .flat_map(|n| {
                x[(n * c + ch) * s.plane..][..s.plane]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect();
        let (mean, var) = two_pass(&values);
        let err = relative(v[ch] as f64, var);
        let err0 = relative(v0[ch] as f64, var);
        // Both are the f64 result rounded to f32 (half an f32 step).
        assert!(
            err <= 6e-8 && err <= err0.max(6e-8),
            "var {ch}: {err} vs two-pass {err0}"
        );
        assert!(
            relative(m[ch] as f64, mean) <= 6e-8 && m[ch] == m0[ch],
            "mean {ch}"
        );
    }
}

//! Helpers shared by the kernel test files.
#![allow(dead_code)]

use gradlab_cpu::{Float, Rng, SimdLevel};

/// Values in [-1, 1).
pub fn random_vec<T: Float>(rng: &mut Rng, len: usize) -> Vec<T> {
    (0..len)
        .map(|_| T::from_f64(rng.uniform(-1.0, 1.0)))
        .collect()
}

/// Runs `f` once per SIMD level this CPU supports, forced on this thread.
pub fn for_each_level(mut f: impl FnMut(SimdLevel)) {
    for level in SimdLevel::supported() {
        gradlab_cpu::with_simd_level(level, || f(level)).expect("supported level");
    }
}

/// Asserts `|got - want| <= tol * scale` elementwise, NaN matching NaN.
pub fn assert_close<T: Float>(got: &[T], want: &[T], scale: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}: element {i}: got {g}, want NaN");
            continue;
        }
        let err = (g.to_f64() - w.to_f64()).abs();
        assert!(
            err <= tol * s.max(1e-30),
            "{what}: element {i}: got {g}, want {w} (|err| {err:e} > {tol:e} * {s:e})"
        );
    }
}

/// Rounding tolerance for a sum of `terms` products in `T`.
pub fn sum_tolerance<T: Float>(terms: usize) -> f64 {
    let eps = if T::NAME == "f32" {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    4.0 * eps * (terms as f64 + 4.0)
}

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
        gradlab_cpu::with_simd_level(level, || f(level));
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

/// `scale` (planes of `h×w`) with every value replaced by the largest in its
/// `m×m` tile: a Winograd tile mixes all the inputs its outputs read, so its
/// rounding error is relative to the largest output scale of the tile (an
/// output at a padded border, with few terms of its own, shares the error
/// of its tile).
pub fn tile_max(scale: &[f64], h: usize, w: usize, m: usize) -> Vec<f64> {
    let mut out = scale.to_vec();
    if h * w == 0 {
        return out;
    }
    for (plane, dst) in scale.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
        for th in (0..h).step_by(m) {
            for tw in (0..w).step_by(m) {
                let rows = th..(th + m).min(h);
                let cols = tw..(tw + m).min(w);
                let max = rows
                    .clone()
                    .flat_map(|r| cols.clone().map(move |c| plane[r * w + c]))
                    .fold(0.0, f64::max);
                for r in rows {
                    for c in cols.clone() {
                        dst[r * w + c] = max;
                    }
                }
            }
        }
    }
    out
}

//! Every launch wrapper of `gradlab_cuda` against the CPU reference, on
//! small shapes chosen to hit partial tiles, odd sizes, offsets, unaligned
//! rows and every kernel variant and layout. Each check takes the device to
//! run on (the CPU harness or a GPU) and panics with the first mismatch.

pub mod conv;
pub mod elementwise;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;

use gradlab_cpu::Rng;
use gradlab_cuda::{DeviceBuffer, DeviceElem, Gpu};
use std::sync::Arc;

/// Uniform values in [-1, 1).
pub fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

/// A device copy of `v`.
pub fn upload<T: DeviceElem>(gpu: &Arc<Gpu>, v: &[T]) -> DeviceBuffer<T> {
    DeviceBuffer::from_host(gpu, v).expect("upload")
}

/// The contents of `b`, waiting for queued work.
pub fn download<T: DeviceElem>(b: &DeviceBuffer<T>) -> Vec<T> {
    b.to_host().expect("download")
}

pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts |got - want| <= tol elementwise (NaN only against NaN), naming the
/// first bad index.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() && g.is_nan() {
            continue;
        }
        let d = (g as f64 - w).abs();
        assert!(
            d <= tol,
            "{what}: element {i}: got {g}, want {w} (|diff| {d:e} > {tol:e})"
        );
    }
}

/// Asserts bit-for-bit equality.
pub fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {i}: got {g}, want {w} (bits differ)"
        );
    }
}

//! Elementwise maps into a fresh buffer, split over the thread pool when
//! the input is large.
//!
//! A map over a large activation (ReLU of LeNet's first layer: 300,000
//! values) is a pass over memory that one core runs at a fraction of the
//! machine's bandwidth. The output is written straight into the new
//! vector's spare capacity, so it is not zeroed first (that would be a
//! pass of its own). Each element is computed independently, so the result
//! does not depend on how the work was split.

use gradlab_cpu::parallel::worth_parallel_elems;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `f(x)` for every `x` of `src`.
pub(crate) fn map<T: Copy + Sync, U: Send>(src: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    if !worth_parallel_elems(src.len()) {
        return src.iter().map(|&x| f(x)).collect();
    }
    fill(src.len(), |start, out| {
        for (o, &x) in out.iter_mut().zip(&src[start..]) {
            o.write(f(x));
        }
    })
}

/// `f(a[i], b[i])` for every `i`; `a` and `b` have the same length.
pub(crate) fn zip_map<T: Copy + Sync, U: Send>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    assert_eq!(a.len(), b.len(), "zip_map: operands of different lengths");
    if !worth_parallel_elems(a.len()) {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    fill(a.len(), |start, out| {
        for ((o, &x), &y) in out.iter_mut().zip(&a[start..]).zip(&b[start..]) {
            o.write(f(x, y));
        }
    })
}

/// A vector of `len` values, chunk by chunk in parallel: `write(start, out)`
/// must initialise every element of `out`, which holds elements
/// `start..start + out.len()`.
fn fill<U: Send>(len: usize, write: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync) -> Vec<U> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| write(i * CHUNK, chunk));
    // SAFETY: the chunks cover `0..len` and `write` initialised every
    // element of each (both callers write one value per element of `out`).
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_maps_equal_the_sequential_ones() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for len in [0usize, 5, CHUNK - 1, 4 * CHUNK + 17, 300_000] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let (m, z) = pool.install(|| {
                (
                    map(&a, |x| x.max(0.0) * 2.0),
                    zip_map(&a, &b, |x, y| x * y - y),
                )
            });
            let want_m: Vec<f32> = a.iter().map(|&x| x.max(0.0) * 2.0).collect();
            let want_z: Vec<f32> = a.iter().zip(&b).map(|(&x, &y)| x * y - y).collect();
            assert_eq!(m, want_m, "map, {len} elements");
            assert_eq!(z, want_z, "zip_map, {len} elements");
        }
    }
}

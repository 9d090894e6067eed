//! Host buffers of dropped tensors, kept for the next output of the same
//! length.
//!
//! A training step allocates the same activation and gradient sizes step
//! after step. A fresh zeroed buffer from the heap costs a memset of the
//! whole buffer (calloc cannot hand out fresh zero pages for memory it
//! reuses), and the kernels that fill outputs completely do not need the
//! zeros: a buffer of the right length that some earlier tensor used
//! serves as well, and is often still in cache. Such buffers hold old
//! values, not uninitialised memory, so this stays safe Rust; only outputs
//! that a kernel overwrites completely are taken from here (`output`).
//!
//! The bins are bounded (a few buffers per length, [`BUDGET_BYTES`] in all),
//! so memory held back stays small next to a step's working set.

use super::host;
use crate::Result;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Buffers shorter than this are not worth keeping (the allocator serves
/// small ones from its own caches, and zeroing them costs little).
const MIN_ELEMENTS: usize = 1 << 12;
/// Buffers kept per length: a step of a convolutional network makes many
/// tensors of one length (a layer's output, its batch-norm and ReLU
/// outputs, and the gradients of each). With 4 the convnet's step
/// (`gradlab train --model convnet`, `GRADLAB_PROFILE=1`) still faulted in
/// fresh pages for some of them and took 110-120 ms; with 16, 96-102 ms.
const PER_LENGTH: usize = 16;
/// Bytes kept in all bins of one element type.
pub const BUDGET_BYTES: usize = 256 << 20;

/// One element type's bins.
#[doc(hidden)]
pub struct Bins<T> {
    by_len: HashMap<usize, Vec<Vec<T>>>,
    bytes: usize,
}

/// Element types whose buffers are recycled (f32, f64, i64).
#[doc(hidden)]
pub trait Recycled: Copy + Send + 'static {
    fn bins() -> &'static Mutex<Option<Bins<Self>>>;
    /// The value old buffers are filled with when poisoning is on.
    const POISON: Self;
}

macro_rules! recycled {
    ($t:ty, $poison:expr) => {
        impl Recycled for $t {
            fn bins() -> &'static Mutex<Option<Bins<Self>>> {
                static BINS: Mutex<Option<Bins<$t>>> = Mutex::new(None);
                &BINS
            }
            const POISON: Self = $poison;
        }
    };
}

recycled!(f32, f32::NAN);
recycled!(f64, f64::NAN);
recycled!(i64, i64::MIN);

static POISON: AtomicBool = AtomicBool::new(false);

/// Fills every recycled buffer with NaN (i64::MIN for indices) before it is
/// handed out, so that a kernel that fails to overwrite part of its output
/// shows it at once. For tests; off by default.
pub fn poison_recycled_buffers(on: bool) {
    POISON.store(on, Ordering::Relaxed);
}

/// Keeps `v` for a later [`output`] of the same length, if there is room.
pub(crate) fn give<T: Recycled>(v: Vec<T>) {
    let len = v.len();
    if len < MIN_ELEMENTS || v.capacity() != len {
        return;
    }
    let bytes = len * std::mem::size_of::<T>();
    let Ok(mut guard) = T::bins().lock() else {
        return;
    };
    let bins = guard.get_or_insert_with(|| Bins {
        by_len: HashMap::new(),
        bytes: 0,
    });
    if bins.bytes + bytes > BUDGET_BYTES {
        return;
    }
    let slot = bins.by_len.entry(len).or_default();
    if slot.len() < PER_LENGTH {
        slot.push(v);
        bins.bytes += bytes;
    }
}

fn take<T: Recycled>(len: usize) -> Option<Vec<T>> {
    let mut guard = T::bins().lock().ok()?;
    let bins = guard.as_mut()?;
    let v = bins.by_len.get_mut(&len)?.pop()?;
    bins.bytes -= len * std::mem::size_of::<T>();
    Some(v)
}

/// A buffer of `len` elements for an output that the caller's kernel
/// overwrites completely: a recycled one when there is one (holding old
/// values), a fresh zeroed one otherwise.
pub(crate) fn output<T: Recycled + gradlab_cpu::alloc::Zeroable>(
    op: &'static str,
    len: usize,
) -> Result<Vec<T>> {
    match take::<T>(len) {
        Some(mut v) => {
            if POISON.load(Ordering::Relaxed) {
                v.fill(T::POISON);
            }
            Ok(v)
        }
        None => host::zeros(op, len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_for_the_same_length_only() {
        let len = MIN_ELEMENTS + 7;
        let v: Vec<f64> = vec![3.0; len];
        let ptr = v.as_ptr();
        give(v);
        let again: Vec<f64> = output("t", len).unwrap();
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(again.len(), len);
        let other: Vec<f64> = output("t", len + 1).unwrap();
        assert!(other.iter().all(|&x| x == 0.0));
        // Small buffers are not kept.
        let small: Vec<f64> = vec![1.0; 8];
        give(small);
        assert!(take::<f64>(8).is_none());
    }
}

//! Reusable, cache-line-aligned scratch buffers for packing and im2col.
//!
//! Kernels run many times with the same shapes during training; allocating
//! and zeroing megabytes per call would cost as much as small kernels
//! themselves. A [`Scratch`] comes from a per-thread free list and goes back
//! to it when dropped. Taking it out of the list (instead of borrowing a
//! thread-local in place) keeps re-entrant calls safe: a rayon worker that
//! waits inside a kernel may run another kernel call on the same thread.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Element types whose every bit pattern is a valid value, so that stale
/// buffer contents can be handed out without re-initialising them.
///
/// # Safety
/// Implementors must be plain data: `Copy`, no padding, any bits valid, and
/// alignment at most 8.
pub(crate) unsafe trait PlainData: Copy + Send + Sync + 'static {}
// SAFETY: f32 is Copy, 4 bytes without padding, and every bit pattern is a value.
unsafe impl PlainData for f32 {}
// SAFETY: f64 is Copy, 8 bytes without padding, and every bit pattern is a value.
unsafe impl PlainData for f64 {}

const ALIGN_BYTES: usize = 64;
const MAX_KEPT: usize = 8;

/// Bytes by which scratch buffers (and the GEMM's pooled packed panels)
/// have grown in this process, all threads together.
static GROWN_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The running total of [`GROWN_BYTES`]: a kernel run during which it
/// changed touched fresh memory (page faults, zeroing) that a later run of
/// the same shape finds ready, so it is no measure of that later run.
pub(crate) fn grown_bytes() -> usize {
    GROWN_BYTES.load(Ordering::Relaxed)
}

/// Records `bytes` of freshly allocated working memory.
pub(crate) fn note_growth(bytes: usize) {
    GROWN_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

thread_local! {
    static FREE: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer borrowed from the current thread's free list.
pub(crate) struct Scratch {
    words: Vec<u64>,
}

impl Scratch {
    pub(crate) fn take() -> Scratch {
        let words = FREE
            .with(|free| free.borrow_mut().pop())
            .unwrap_or_default();
        Scratch { words }
    }

    /// `len` elements starting on a 64-byte boundary; contents are unspecified.
    pub(crate) fn slice<E: PlainData>(&mut self, len: usize) -> &mut [E] {
        let bytes = len * std::mem::size_of::<E>() + ALIGN_BYTES;
        let words = bytes.div_ceil(8);
        if self.words.len() < words {
            note_growth((words - self.words.len()) * 8);
            self.words.resize(words, 0);
        }
        let base = self.words.as_mut_ptr() as usize;
        let skip = (ALIGN_BYTES - base % ALIGN_BYTES) % ALIGN_BYTES;
        // SAFETY: `skip + len * size_of::<E>()` bytes fit in the allocation
        // (one extra alignment's worth was reserved); E is plain data with
        // alignment dividing 64, so any contents are valid values.
        unsafe { std::slice::from_raw_parts_mut((base + skip) as *mut E, len) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let words = std::mem::take(&mut self.words);
        if words.capacity() == 0 {
            return;
        }
        // Thread-locals may already be gone during thread teardown; then the buffer is just freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < MAX_KEPT {
                free.push(words);
            }
        });
    }
}

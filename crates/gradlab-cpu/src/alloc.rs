//! Fallible allocation of buffers whose size comes from outside: a shape a
//! user typed, a header read from a file, an attribute of a test case.
//!
//! `vec![0.0; n]` aborts the process when the allocator refuses `n`
//! elements ("memory allocation of N bytes failed") and panics with
//! "capacity overflow" when `n` elements do not fit the address space.
//! Neither can be caught or reported. Every buffer sized by user input is
//! allocated here instead, and a refusal is an [`AllocError`] that names the
//! op, the element count and the bytes, so the caller can say which input
//! was too large and carry on.
//!
//! The same module fixes how large a buffer may ever be: [`MAX_ELEMENTS`]
//! elements, so that a count of even the widest element type (8 bytes) is a
//! valid allocation size. [`checked_len`] multiplies sizes against that
//! limit; shapes and problem descriptions use it so that no size reaching a
//! kernel has wrapped around.

use std::alloc::Layout;
use std::fmt;

/// The most elements any buffer (or tensor) may hold: `isize::MAX / 8`, so
/// that its size in bytes fits Rust's allocation limit for every element
/// type up to 8 bytes (f64, i64, usize). About 1.15e18.
pub const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// The product of `dims` when the product of its non-zero entries is at
/// most [`MAX_ELEMENTS`] (`None` otherwise).
///
/// Zeros are left out of the check on purpose: then every partial product
/// of the dims (a row, a plane, a batch) fits too, whatever order code
/// multiplies them in, and a shape like `[0, 2^40, 2^40]` cannot hide a
/// wrapped plane size behind its zero.
///
/// ```
/// use gradlab_cpu::alloc::checked_len;
/// assert_eq!(checked_len(&[2, 3, 4]), Some(24));
/// assert_eq!(checked_len(&[]), Some(1));
/// assert_eq!(checked_len(&[4, 1 << 31, 1 << 31]), None); // 2^64 wraps to 0 unchecked
/// assert_eq!(checked_len(&[0, 1 << 40, 1 << 40]), None);
/// ```
pub fn checked_len(dims: &[usize]) -> Option<usize> {
    let mut nonzero_product: usize = 1;
    let mut any_zero = false;
    for &d in dims {
        if d == 0 {
            any_zero = true;
        } else {
            nonzero_product = nonzero_product
                .checked_mul(d)
                .filter(|&p| p <= MAX_ELEMENTS)?;
        }
    }
    Some(if any_zero { 0 } else { nonzero_product })
}

/// Why a buffer could not be allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocFailure {
    /// The byte count exceeds what any allocation may ask for (`isize::MAX`).
    TooLarge,
    /// The allocator refused: not enough memory.
    Refused,
}

/// A buffer of `elements` elements of `element_bytes` bytes each could not
/// be allocated for `op`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct AllocError {
    pub op: &'static str,
    pub elements: usize,
    pub element_bytes: usize,
    pub failure: AllocFailure,
}

impl AllocError {
    /// The bytes asked for (exact even when they overflow `usize`).
    pub fn bytes(&self) -> u128 {
        self.elements as u128 * self.element_bytes as u128
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.failure {
            AllocFailure::TooLarge => "more than any allocation may hold",
            AllocFailure::Refused => "the system could not provide that much memory",
        };
        write!(
            f,
            "{}: cannot allocate {} elements of {} bytes ({} bytes, {}): {why}",
            self.op,
            self.elements,
            self.element_bytes,
            self.bytes(),
            human_bytes(self.bytes())
        )
    }
}

/// `bytes` in binary units with three significant digits, e.g. `7.45 GiB`.
fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.3} {}", UNITS[unit])
    }
}

fn error<T>(op: &'static str, elements: usize, failure: AllocFailure) -> AllocError {
    AllocError {
        op,
        elements,
        element_bytes: std::mem::size_of::<T>(),
        failure,
    }
}

/// An empty vector with room for exactly `capacity` elements, or an error
/// naming `op` when that much memory cannot be had. Fill it with `push` or
/// `extend`; it will not reallocate up to `capacity`.
///
/// ```
/// use gradlab_cpu::alloc::try_vec;
/// let v: Vec<u8> = try_vec("read", 1024).unwrap();
/// assert!(v.is_empty() && v.capacity() == 1024);
/// let err = try_vec::<f64>("conv2d", usize::MAX / 2).unwrap_err();
/// assert!(err.to_string().starts_with("conv2d: cannot allocate 9223372036854775807 elements of 8 bytes"));
/// ```
pub fn try_vec<T>(op: &'static str, capacity: usize) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    v.try_reserve_exact(capacity).map_err(|_| {
        // try_reserve does not say which limit it hit; the layout does.
        let failure = if Layout::array::<T>(capacity).is_err() {
            AllocFailure::TooLarge
        } else {
            AllocFailure::Refused
        };
        error::<T>(op, capacity, failure)
    })?;
    Ok(v)
}

/// Makes room in `v` for `additional` more elements, or an error naming
/// `op` (sized as the whole buffer it would become).
///
/// ```
/// use gradlab_cpu::alloc::try_reserve;
/// let mut v = vec![1u8, 2];
/// try_reserve("read", &mut v, 100).unwrap();
/// assert!(v.capacity() >= 102);
/// assert!(try_reserve("read", &mut v, usize::MAX).is_err());
/// ```
pub fn try_reserve<T>(
    op: &'static str,
    v: &mut Vec<T>,
    additional: usize,
) -> Result<(), AllocError> {
    v.try_reserve(additional).map_err(|_| {
        let total = v.len().saturating_add(additional);
        let failure = if Layout::array::<T>(total).is_err() {
            AllocFailure::TooLarge
        } else {
            AllocFailure::Refused
        };
        error::<T>(op, total, failure)
    })
}

/// `len` copies of `value`, or an error naming `op`.
pub fn try_full<T: Clone>(op: &'static str, len: usize, value: T) -> Result<Vec<T>, AllocError> {
    let mut v = try_vec(op, len)?;
    v.resize(len, value);
    Ok(v)
}

/// Element types for which all-zero bytes are the value zero.
///
/// # Safety
/// An implementor must be valid for the all-zero bit pattern.
pub unsafe trait Zeroable: Copy {}
// SAFETY: all-zero bits are 0 (or 0.0) for every primitive number type.
unsafe impl Zeroable for f32 {}
// SAFETY: as above.
unsafe impl Zeroable for f64 {}
// SAFETY: as above.
unsafe impl Zeroable for i32 {}
// SAFETY: as above.
unsafe impl Zeroable for i64 {}
// SAFETY: as above.
unsafe impl Zeroable for u8 {}
// SAFETY: as above.
unsafe impl Zeroable for u32 {}
// SAFETY: as above.
unsafe impl Zeroable for u64 {}
// SAFETY: as above.
unsafe impl Zeroable for usize {}

/// `len` zeros, or an error naming `op`.
///
/// Like `vec![0.0; len]` this asks the allocator for zeroed memory
/// (`calloc`), which for large buffers maps fresh zero pages instead of
/// writing every byte: an output buffer costs no more than before.
///
/// ```
/// use gradlab_cpu::alloc::try_zeros;
/// assert_eq!(try_zeros::<f32>("sum", 3).unwrap(), vec![0.0; 3]);
/// // 2^60 f64 values: more memory than the machine has, an error rather than an abort.
/// let err = try_zeros::<f64>("conv2d", 1 << 60).unwrap_err();
/// assert!(err.to_string().contains("1152921504606846976 elements of 8 bytes"), "{err}");
/// ```
pub fn try_zeros<T: Zeroable>(op: &'static str, len: usize) -> Result<Vec<T>, AllocError> {
    if len == 0 || std::mem::size_of::<T>() == 0 {
        return Ok(Vec::new());
    }
    let layout =
        Layout::array::<T>(len).map_err(|_| error::<T>(op, len, AllocFailure::TooLarge))?;
    // SAFETY: `layout` has a non-zero size (len > 0 and T is not zero-sized).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(error::<T>(op, len, AllocFailure::Refused));
    }
    // SAFETY: `ptr` comes from the global allocator with the layout of `len`
    // elements of T, which is the layout `Vec` uses for capacity `len`; all
    // of its bytes are zero, a valid T (`Zeroable`), so all `len` are initialised.
    Ok(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_are_what_vec_would_give() {
        assert_eq!(try_zeros::<f64>("t", 5).unwrap(), vec![0.0f64; 5]);
        assert_eq!(try_zeros::<i64>("t", 0).unwrap(), Vec::<i64>::new());
        assert_eq!(try_full("t", 3, 7u8).unwrap(), vec![7u8; 3]);
        let v = try_vec::<u32>("t", 10).unwrap();
        assert_eq!((v.len(), v.capacity()), (0, 10));
        // A zeroed buffer behaves as any vector: it grows and drops normally.
        let mut z = try_zeros::<f32>("t", 1000).unwrap();
        z.push(1.0);
        assert_eq!(z.len(), 1001);
        assert!(z[..1000].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn sizes_past_the_address_space_are_errors_that_name_the_op() {
        let err = try_zeros::<f64>("conv2d", usize::MAX).unwrap_err();
        assert_eq!(err.failure, AllocFailure::TooLarge);
        assert_eq!(err.bytes(), usize::MAX as u128 * 8);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "conv2d: cannot allocate {} elements of 8 bytes (147573952589676412920 bytes, ",
                usize::MAX
            )),
            "{text}"
        );
        assert!(
            text.ends_with("EiB): more than any allocation may hold"),
            "{text}"
        );
        let err = try_vec::<u8>("read", usize::MAX).unwrap_err();
        assert_eq!(err.failure, AllocFailure::TooLarge);
        assert!(try_full("fill", usize::MAX / 4, 0u32).is_err());
    }

    #[test]
    fn more_memory_than_the_machine_has_is_refused_not_aborted() {
        // 2^62 bytes (4 EiB) is a valid layout that no machine can serve.
        let err = try_zeros::<u8>("idx", 1 << 62).unwrap_err();
        assert_eq!(err.failure, AllocFailure::Refused);
        assert!(
            err.to_string()
                .ends_with("(4611686018427387904 bytes, 4.000 EiB): the system could not provide that much memory"),
            "{err}"
        );
        let err = try_vec::<f32>("cifar", 1 << 60).unwrap_err();
        assert_eq!(err.failure, AllocFailure::Refused);
    }

    #[test]
    fn checked_len_never_wraps() {
        assert_eq!(checked_len(&[3, 5, 7]), Some(105));
        assert_eq!(checked_len(&[0, 5]), Some(0));
        assert_eq!(checked_len(&[MAX_ELEMENTS]), Some(MAX_ELEMENTS));
        assert_eq!(checked_len(&[MAX_ELEMENTS, 2]), None);
        assert_eq!(checked_len(&[1 << 32, 1 << 32]), None);
        assert_eq!(checked_len(&[usize::MAX, 0]), None);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 30), "3.000 GiB");
    }
}

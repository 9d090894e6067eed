//! The portable micro-kernel: plain Rust the compiler may vectorise for the
//! baseline target. Used where no SIMD level is available and as the forced
//! `Scalar` level in tests.

use super::kernel::{MicroKernel, TileEpilogue};
use crate::Float;

const MR: usize = 4;
const NR: usize = 8;

/// The scalar micro-kernel for element type `E`.
pub(crate) fn kernel<E: Float>() -> MicroKernel<E> {
    MicroKernel {
        mr: MR,
        nr: NR,
        run: scalar_kernel::<E>,
    }
}

/// # Safety
/// The pointers must satisfy [`MicroKernelFn`](super::kernel::MicroKernelFn)'s contract.
unsafe fn scalar_kernel<E: Float>(
    kc: usize,
    a: *const E,
    b: *const E,
    rsb: usize,
    c: *mut E,
    rsc: usize,
    epi: &TileEpilogue<E>,
) {
    let mut acc = [[E::ZERO; NR]; MR];
    for p in 0..kc {
        // SAFETY: the A panel holds `kc` steps of MR values; B `kc` rows of
        // NR values `rsb` apart.
        let (a_step, b_row) = unsafe {
            (
                std::slice::from_raw_parts(a.add(p * MR), MR),
                std::slice::from_raw_parts(b.add(p * rsb), NR),
            )
        };
        for (row, &av) in acc.iter_mut().zip(a_step) {
            for (acc, &bv) in row.iter_mut().zip(b_row) {
                // Not `mul_add`: without hardware FMA in the baseline target it is a libm call.
                *acc += av * bv;
            }
        }
    }
    // SAFETY: non-null bias pointers hold MR (row) and NR (column) values.
    let row_bias =
        (!epi.row_bias.is_null()).then(|| unsafe { std::slice::from_raw_parts(epi.row_bias, MR) });
    // SAFETY: as above.
    let col_bias =
        (!epi.col_bias.is_null()).then(|| unsafe { std::slice::from_raw_parts(epi.col_bias, NR) });
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the C tile has MR rows of NR values, `rsc` apart, that no
        // one else accesses meanwhile.
        let c_row = unsafe { std::slice::from_raw_parts_mut(c.add(i * rsc), NR) };
        for (j, (dst, &acc)) in c_row.iter_mut().zip(row).enumerate() {
            let mut r = epi.alpha * acc;
            if epi.beta != E::ZERO {
                r += epi.beta * *dst;
            }
            if let Some(bias) = row_bias {
                r += bias[i];
            }
            if let Some(bias) = col_bias {
                r += bias[j];
            }
            if epi.relu && r < E::ZERO {
                r = E::ZERO;
            }
            *dst = r;
        }
    }
}

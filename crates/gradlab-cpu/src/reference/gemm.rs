use crate::Float;

/// `C = alpha * A·B + beta * C` with arbitrary (non-negative) strides.
///
/// `A` is `m×k` (element `(i, p)` at `a[i*rsa + p*csa]`), `B` is `k×n`,
/// `C` is `m×n`. When `beta == 0`, `C` is overwritten without being read
/// (so NaNs already there do not leak), as BLAS does.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    rsa: usize,
    csa: usize,
    b: &[T],
    rsb: usize,
    csb: usize,
    beta: T,
    c: &mut [T],
    rsc: usize,
    csc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::ZERO;
            for p in 0..k {
                acc += a[i * rsa + p * csa] * b[p * rsb + j * csb];
            }
            let dst = &mut c[i * rsc + j * csc];
            *dst = if beta == T::ZERO {
                alpha * acc
            } else {
                alpha * acc + beta * *dst
            };
        }
    }
}

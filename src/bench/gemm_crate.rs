//! The `gemm` crate (the GEMM candle and burn use) as a baseline beside
//! matrixmultiply: what a user would otherwise pick.

/// `c = a · b` for row-major `m×k` and `k×n` f32 matrices through the
/// `gemm` crate, on `threads` threads of the current rayon pool (1: its
/// single-threaded path).
///
/// # Panics
/// If a slice is shorter than its matrix.
pub fn gemm_crate_sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm_crate_sgemm: slices of {}, {} and {} elements cannot hold {m}x{k}, {k}x{n} and {m}x{n} matrices",
        a.len(),
        b.len(),
        c.len()
    );
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the lengths were checked above; the strides (column stride
    // 1, row stride = columns) describe row-major matrices inside them.
    // `read_dst = false` makes c = 1·a·b without reading c.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_a_hand_product() {
        // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] = [4 5; 10 11]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut c = [f32::NAN; 4];
        super::gemm_crate_sgemm(2, 3, 2, &a, &b, &mut c, 1);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    }
}

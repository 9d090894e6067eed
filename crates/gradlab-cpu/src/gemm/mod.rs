//! Fast general matrix multiply: packed panels, cache blocking, SIMD
//! micro-kernels chosen at run time, rayon over blocks.
//!
//! The pieces are apart as in matrixmultiply: [`pack`](self) copies operand
//! blocks into panels, the micro-kernels (`x86`, `scalar`) multiply one tile,
//! and the driver owns the loop nest and the threads. The reference twin is
//! [`crate::reference::gemm`].

mod dot;
mod driver;
mod kernel;
mod pack;
mod scalar;
mod x86;

use crate::scratch::PlainData;
use crate::simd::{simd_level, SimdLevel};
use crate::Float;
pub(crate) use dot::{gemm_abt, BRows, DotElement};
pub(crate) use driver::PackedA;
use driver::Problem;
pub(crate) use kernel::GemmElement;
use pack::MatRef;
use std::any::Any;

/// Which way a bias vector runs along `C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BiasAxis {
    /// One value per row of `C` (length `m`), added along the row:
    /// the per-channel bias of a convolution computed as `W·cols`.
    Row,
    /// One value per column of `C` (length `n`): the bias of a linear
    /// layer computed as `X·Wᵀ`.
    Col,
}

impl BiasAxis {
    fn transposed(self) -> BiasAxis {
        match self {
            BiasAxis::Row => BiasAxis::Col,
            BiasAxis::Col => BiasAxis::Row,
        }
    }
}

/// `C = alpha·A·B + beta·C` with arbitrary strides, using the fastest
/// micro-kernel for this CPU (or the level forced by [`crate::set_simd_level`]
/// / [`crate::with_simd_level`]). Same contract as [`crate::reference::gemm`].
///
/// # Panics
/// If a slice is too short for its sizes and strides.
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
    gemm_bias_act(
        m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, None, false,
    );
}

/// [`gemm`] with a fused epilogue:
/// `C = relu?(alpha·A·B + beta·C + bias)`, where `bias` is added along
/// [`BiasAxis`] and `relu` (when set) clamps negatives to zero (NaN stays NaN).
/// Fusing saves the extra passes over `C` that separate bias and activation
/// kernels would make.
///
/// # Panics
/// If a slice is too short for its sizes and strides, or the bias length is
/// not `m` (`Row`) / `n` (`Col`).
#[allow(clippy::too_many_arguments)]
pub fn gemm_bias_act<T: Float>(
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
    bias: Option<(&[T], BiasAxis)>,
    relu: bool,
) {
    check_len("A", a.len(), m, k, rsa, csa);
    check_len("B", b.len(), k, n, rsb, csb);
    check_len("C", c.len(), m, n, rsc, csc);
    if let Some((v, axis)) = bias {
        let want = match axis {
            BiasAxis::Row => m,
            BiasAxis::Col => n,
        };
        assert!(
            v.len() == want,
            "gemm: {axis:?} bias has {} values, expected {want} for a {m}x{n} output",
            v.len()
        );
    }
    let level = simd_level();
    if let Some(done) = dispatch::<T, f32>(
        level, m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, bias, relu,
    ) {
        return done;
    }
    if let Some(done) = dispatch::<T, f64>(
        level, m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, bias, relu,
    ) {
        return done;
    }
    // A Float type without hand-written kernels: plain loops are correct for any.
    let problem = Problem {
        m,
        k,
        n,
        alpha,
        a: MatRef {
            data: a,
            rs: rsa,
            cs: csa,
        },
        b: MatRef {
            data: b,
            rs: rsb,
            cs: csb,
        },
        beta,
        bias,
        relu,
        parallel: false,
    };
    driver::naive(problem, c, rsc, csc);
}

/// Internal entry for kernels (conv) that already hold a SIMD level and
/// typed slices. With `packed`, A was packed by [`pack_a_typed`] for this
/// shape (`a` must be the matrix that was packed) and is not packed again.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_typed<E: GemmElement + PlainData>(
    level: SimdLevel,
    m: usize,
    k: usize,
    n: usize,
    alpha: E,
    a: (&[E], usize, usize),
    b: (&[E], usize, usize),
    beta: E,
    c: (&mut [E], usize, usize),
    bias: Option<(&[E], BiasAxis)>,
    relu: bool,
    parallel: bool,
    packed: Option<&PackedA<E>>,
) {
    let problem = Problem {
        m,
        k,
        n,
        alpha,
        a: MatRef {
            data: a.0,
            rs: a.1,
            cs: a.2,
        },
        b: MatRef {
            data: b.0,
            rs: b.1,
            cs: b.2,
        },
        beta,
        bias,
        relu,
        parallel,
    };
    match packed {
        Some(packed) if c.2 == 1 => driver::run_packed_a(packed, level, problem, c.0, c.1),
        _ => driver::run(level, problem, c.0, c.1, c.2),
    }
}

/// Packs `a` (`m×k`, strides `(rs, cs)`) once for several [`gemm_typed`]
/// calls with the same A and shape (`n` columns of B and C, C row-major);
/// `None` when those products would not use packed A as it is (too small,
/// or better run transposed).
pub(crate) fn pack_a_typed<E: GemmElement + PlainData>(
    level: SimdLevel,
    m: usize,
    k: usize,
    n: usize,
    a: (&[E], usize, usize),
) -> Option<PackedA<E>> {
    let a = MatRef {
        data: a.0,
        rs: a.1,
        cs: a.2,
    };
    driver::pack_a_once(level, m, k, n, a)
}

/// Casts the generic call to `E` when `T` is `E`, and runs it.
#[allow(clippy::too_many_arguments)]
fn dispatch<T: Float, E: GemmElement + PlainData>(
    level: SimdLevel,
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
    bias: Option<(&[T], BiasAxis)>,
    relu: bool,
) -> Option<()> {
    let alpha = *(&alpha as &dyn Any).downcast_ref::<E>()?;
    let beta = *(&beta as &dyn Any).downcast_ref::<E>()?;
    let a = cast_slice::<T, E>(a)?;
    let b = cast_slice::<T, E>(b)?;
    let c = cast_slice_mut::<T, E>(c)?;
    let bias = match bias {
        Some((v, axis)) => Some((cast_slice::<T, E>(v)?, axis)),
        None => None,
    };
    gemm_typed(
        level,
        m,
        k,
        n,
        alpha,
        (a, rsa, csa),
        (b, rsb, csb),
        beta,
        (c, rsc, csc),
        bias,
        relu,
        true,
        None,
    );
    Some(())
}

/// `&[T]` as `&[E]` when they are the same type.
pub(crate) fn cast_slice<T: 'static, E: 'static>(s: &[T]) -> Option<&[E]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<E>() {
        // SAFETY: T and E are the same type.
        Some(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<E>(), s.len()) })
    } else {
        None
    }
}

/// `&mut [T]` as `&mut [E]` when they are the same type.
pub(crate) fn cast_slice_mut<T: 'static, E: 'static>(s: &mut [T]) -> Option<&mut [E]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<E>() {
        // SAFETY: T and E are the same type.
        Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<E>(), s.len()) })
    } else {
        None
    }
}

fn check_len(name: &str, len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let need = (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(
        len >= need,
        "gemm: {name} is {rows}x{cols} with strides ({rs}, {cs}) and needs {need} elements, got {len}"
    );
}

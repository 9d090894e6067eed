//! Fast general matrix multiply: packed panels, cache blocking, SIMD
//! micro-kernels chosen at run time, rayon over blocks.
//!
//! The pieces are apart as in matrixmultiply: [`pack`](self) copies operand
//! blocks into panels, the micro-kernels (`x86`, `scalar`) multiply one tile,
//! and the driver owns the loop nest and the threads. The reference twin is
//! [`crate::reference::gemm`].

mod blocking;
mod dot;
mod driver;
mod kernel;
mod pack;
mod scalar;
mod x86;

use crate::scratch::PlainData;
use crate::simd::{simd_level, SimdLevel};
use crate::Float;
pub(crate) use dot::{gemm_abt, AbtProblem, BRows, DotElement};
pub(crate) use driver::{PackedA, PanelLayout, Problem};
pub(crate) use kernel::GemmElement;
pub(crate) use pack::{MatMut, MatRef};
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
    let problem = Problem {
        m,
        k,
        n,
        alpha,
        a: MatRef::new(a, rsa, csa),
        b: MatRef::new(b, rsb, csb),
        beta,
        bias,
        relu,
        parallel: true,
    };
    let c = MatMut::new(c, rsc, csc);
    let level = simd_level();
    let Some(c) = dispatch::<T, f32>(level, problem, c) else {
        return;
    };
    let Some(c) = dispatch::<T, f64>(level, problem, c) else {
        return;
    };
    // A Float type without hand-written kernels: plain loops are correct for any.
    driver::naive(
        Problem {
            parallel: false,
            ..problem
        },
        c.data,
        c.rs,
        c.cs,
    );
}

/// Internal entry for kernels (conv) that already hold a SIMD level and
/// typed slices: `c = relu?(alpha·A·B + beta·c + bias)` as `problem`
/// describes it. With `packed`, A was packed by [`pack_a_typed`] for this
/// shape (`problem.a` must be the matrix that was packed) and is not packed
/// again.
pub(crate) fn gemm_typed<E: GemmElement + PlainData>(
    level: SimdLevel,
    problem: Problem<'_, E>,
    c: MatMut<'_, E>,
    packed: Option<&PackedA<E>>,
) {
    match packed {
        Some(packed) if c.cs == 1 => driver::run_packed_a(packed, level, problem, c.data, c.rs),
        _ => driver::run(level, problem, c.data, c.rs, c.cs),
    }
}

/// Zeroed panels for A to be written into directly (see
/// [`driver::packed_a_zeroed`]).
pub(crate) fn packed_a_zeroed<E: GemmElement + PlainData>(
    level: SimdLevel,
    (m, k, n): (usize, usize, usize),
) -> Option<PackedA<E>> {
    driver::packed_a_zeroed(level, m, k, n)
}

/// Packs `a` (`m×k`) once for several [`gemm_typed`] calls with the same A
/// and shape (`n` columns of B and C, C row-major); `None` when those
/// products would not use packed A as it is (too small, or better run
/// transposed).
pub(crate) fn pack_a_typed<E: GemmElement + PlainData>(
    level: SimdLevel,
    (m, k, n): (usize, usize, usize),
    a: MatRef<'_, E>,
) -> Option<PackedA<E>> {
    driver::pack_a_once(level, m, k, n, a)
}

/// Runs the generic problem as `E` when `T` is `E`; otherwise hands `c` back.
fn dispatch<'p, 'c, T: Float, E: GemmElement + PlainData>(
    level: SimdLevel,
    p: Problem<'p, T>,
    c: MatMut<'c, T>,
) -> Option<MatMut<'c, T>> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<E>() {
        return Some(c);
    }
    let cast = |v: T| *(&v as &dyn Any).downcast_ref::<E>().expect("T is E");
    let view = |m: MatRef<'p, T>| -> MatRef<'p, E> {
        MatRef::new(cast_slice::<T, E>(m.data).expect("T is E"), m.rs, m.cs)
    };
    let problem = Problem {
        m: p.m,
        k: p.k,
        n: p.n,
        alpha: cast(p.alpha),
        a: view(p.a),
        b: view(p.b),
        beta: cast(p.beta),
        bias: p
            .bias
            .map(|(v, axis)| (cast_slice::<T, E>(v).expect("T is E"), axis)),
        relu: p.relu,
        parallel: p.parallel,
    };
    let c = MatMut::new(cast_slice_mut::<T, E>(c.data).expect("T is E"), c.rs, c.cs);
    gemm_typed(level, problem, c, None);
    None
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

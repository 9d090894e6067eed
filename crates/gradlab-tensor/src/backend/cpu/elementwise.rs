//! Elementwise maps, copies and casts on the fast path: one monomorphic
//! loop per op (so each vectorises), whole runs at a time for strided and
//! broadcast operands, large maps split over the thread pool.

use super::par_map;
use crate::backend::host::tensor;
use crate::{Element, Layout, Result, Shape, Tensor};
use gradlab_cpu::{BinaryOp, UnaryOp};

pub(super) fn unary<T: Element>(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let src = x.contiguous_slice::<T>(op.name())?;
    let out: Vec<T> = match op {
        // Monomorphic loops for the hot ops, so each vectorises on its own.
        UnaryOp::Relu => par_map::map(&src, |v| UnaryOp::Relu.eval(v)),
        UnaryOp::MulScalar(s) => {
            let s = T::from_f64(s);
            par_map::map(&src, |v| v * s)
        }
        _ => par_map::map(&src, |v| op.eval(v)),
    };
    tensor(out, x.shape().clone())
}

pub(super) fn binary<T: Element>(
    a: &Tensor,
    b: &Tensor,
    op: BinaryOp,
    shape: &Shape,
) -> Result<Tensor> {
    // One monomorphic copy of the loops per op, so that each vectorises
    // without re-dispatching on the op for every element.
    match op {
        BinaryOp::Add => zip_map(a, b, op, shape, |x: T, y| BinaryOp::Add.eval(x, y)),
        BinaryOp::Sub => zip_map(a, b, op, shape, |x: T, y| BinaryOp::Sub.eval(x, y)),
        BinaryOp::Mul => zip_map(a, b, op, shape, |x: T, y| BinaryOp::Mul.eval(x, y)),
        BinaryOp::Div => zip_map(a, b, op, shape, |x: T, y| BinaryOp::Div.eval(x, y)),
        BinaryOp::Maximum => zip_map(a, b, op, shape, |x: T, y| BinaryOp::Maximum.eval(x, y)),
        BinaryOp::ReluBackward => {
            zip_map(a, b, op, shape, |x: T, y| BinaryOp::ReluBackward.eval(x, y))
        }
    }
}

/// `f` over two operands broadcast to `shape`, into a new contiguous tensor.
fn zip_map<T: Element>(
    a: &Tensor,
    b: &Tensor,
    op: BinaryOp,
    shape: &Shape,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Tensor> {
    let (da, db) = (
        a.storage_slice::<T>(op.name())?,
        b.storage_slice::<T>(op.name())?,
    );
    let la = a.layout().broadcast_to(shape)?;
    let lb = b.layout().broadcast_to(shape)?;
    let out: Vec<T> = match (la.contiguous_range(), lb.contiguous_range()) {
        (Some(ra), Some(rb)) => par_map::zip_map(&da[ra], &db[rb], &f),
        (Some(ra), None) if lb.strides().iter().all(|&s| s == 0) => {
            let y = db[lb.offset()];
            par_map::map(&da[ra], |x| f(x, y))
        }
        _ => {
            let mut out = gradlab_cpu::alloc::try_vec(op.name(), shape.numel())?;
            la.for_each_run_pair(&lb, |r| match (r.stride_a, r.stride_b) {
                (1, 1) => out.extend(
                    da[r.a..r.a + r.len]
                        .iter()
                        .zip(&db[r.b..r.b + r.len])
                        .map(|(&x, &y)| f(x, y)),
                ),
                (1, 0) => {
                    let y = db[r.b];
                    out.extend(da[r.a..r.a + r.len].iter().map(|&x| f(x, y)));
                }
                (0, 1) => {
                    let x = da[r.a];
                    out.extend(db[r.b..r.b + r.len].iter().map(|&y| f(x, y)));
                }
                (ia, ib) => out.extend((0..r.len).map(|i| f(da[r.a + i * ia], db[r.b + i * ib]))),
            });
            out
        }
    };
    tensor(out, shape.clone())
}

/// The elements of `data` at `layout`'s offsets, in row-major order, whole
/// runs at a time: contiguous runs are copied, broadcast runs repeat one
/// value. A broadcast view may hold far more elements than its storage:
/// the buffer is allocated fallibly.
pub(crate) fn gather<T: Copy>(data: &[T], layout: &Layout) -> Result<Vec<T>> {
    Ok(match layout.contiguous_range() {
        Some(r) => data[r].to_vec(),
        None => {
            let mut out = gradlab_cpu::alloc::try_vec("copy", layout.numel())?;
            layout.for_each_run_pair(layout, |r| match r.stride_a {
                1 => out.extend_from_slice(&data[r.a..r.a + r.len]),
                0 => out.extend(std::iter::repeat_n(data[r.a], r.len)),
                s => out.extend((0..r.len).map(|i| data[r.a + i * s])),
            });
            out
        }
    })
}

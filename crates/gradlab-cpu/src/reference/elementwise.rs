use crate::op::{BinaryOp, UnaryOp};
use crate::Float;

/// `out[i] = op(x[i])`.
pub fn unary<T: Float>(op: UnaryOp, x: &[T], out: &mut [T]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = op.eval(v);
    }
}

/// `out[i] = op(a[i], b[i])` for operands already broadcast to one shape.
pub fn binary<T: Float>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = op.eval(x, y);
    }
}

//! Elementwise ops: unary maps and broadcasting binary ops.

use super::iter::{for_each_offset_pair, for_each_run_pair};
use super::par_map;
use crate::{with_float, Element, Layout, Result, Shape, Tensor};
use gradlab_cpu::Float;

/// A function applied to every element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Relu,
    Sigmoid,
    Tanh,
    Abs,
    /// `x^e` for a scalar exponent.
    Pow(f64),
    AddScalar(f64),
    MulScalar(f64),
    /// 1 where `x > threshold`, else 0 (the mask of ReLU's derivative).
    GtMask(f64),
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Relu => "relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Abs => "abs",
            UnaryOp::Pow(_) => "pow",
            UnaryOp::AddScalar(_) => "add_scalar",
            UnaryOp::MulScalar(_) => "mul_scalar",
            UnaryOp::GtMask(_) => "gt_mask",
        }
    }

    #[inline(always)]
    pub fn eval<T: Float>(self, x: T) -> T {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            // NaN propagates, as in PyTorch.
            UnaryOp::Relu => {
                if x < T::ZERO {
                    T::ZERO
                } else {
                    x
                }
            }
            UnaryOp::Sigmoid => T::ONE / (T::ONE + (-x).exp()),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Pow(e) => x.powf(T::from_f64(e)),
            UnaryOp::AddScalar(s) => x + T::from_f64(s),
            UnaryOp::MulScalar(s) => x * T::from_f64(s),
            UnaryOp::GtMask(t) => {
                if x > T::from_f64(t) {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
        }
    }
}

/// A function of two broadcast operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    /// `a` where `b > 0`, else 0: ReLU's backward, the gradient `a` masked
    /// by the ReLU input `b`, in one pass.
    ReluBackward,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::ReluBackward => "relu_backward",
        }
    }

    #[inline(always)]
    pub fn eval<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum => {
                if a.is_nan() || a >= b {
                    a
                } else {
                    b
                }
            }
            BinaryOp::ReluBackward => {
                if b > T::ZERO {
                    a
                } else {
                    T::ZERO
                }
            }
        }
    }
}

fn map_unary<T: Element>(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
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
    Tensor::from_vec(out, x.shape().clone())
}

fn map_binary<T: Element>(a: &Tensor, b: &Tensor, op: BinaryOp, shape: Shape) -> Result<Tensor> {
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
    shape: Shape,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Tensor> {
    let (da, db) = (
        a.storage_slice::<T>(op.name())?,
        b.storage_slice::<T>(op.name())?,
    );
    let la = a.layout().broadcast_to(&shape)?;
    let lb = b.layout().broadcast_to(&shape)?;
    let out: Vec<T> = match (la.contiguous_range(), lb.contiguous_range()) {
        (Some(ra), Some(rb)) => par_map::zip_map(&da[ra], &db[rb], &f),
        (Some(ra), None) if lb.strides().iter().all(|&s| s == 0) => {
            let y = db[lb.offset()];
            par_map::map(&da[ra], |x| f(x, y))
        }
        _ => {
            let mut out = Vec::with_capacity(shape.numel());
            for_each_run_pair(&la, &lb, |oa, ob, len, ia, ib| match (ia, ib) {
                (1, 1) => out.extend(
                    da[oa..oa + len]
                        .iter()
                        .zip(&db[ob..ob + len])
                        .map(|(&x, &y)| f(x, y)),
                ),
                (1, 0) => {
                    let y = db[ob];
                    out.extend(da[oa..oa + len].iter().map(|&x| f(x, y)));
                }
                (0, 1) => {
                    let x = da[oa];
                    out.extend(db[ob..ob + len].iter().map(|&y| f(x, y)));
                }
                _ => out.extend((0..len).map(|i| f(da[oa + i * ia], db[ob + i * ib]))),
            });
            out
        }
    };
    Tensor::from_vec(out, shape)
}

impl Tensor {
    /// Applies a unary elementwise op (result is contiguous).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        if self.is_cuda() {
            self.check_float(op.name())?;
            return crate::cuda::unary(self, op);
        }
        with_float!(self.dtype(), op.name(), |T| map_unary::<T>(self, op))
    }

    /// Applies a binary op with broadcasting (both operands must share dtype and device).
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        self.check_same_kind(op.name(), other)?;
        let shape = Shape::broadcast(op.name(), self.shape(), other.shape())?;
        if self.is_cuda() {
            self.check_float(op.name())?;
            return crate::cuda::binary(self, other, op, &shape);
        }
        with_float!(self.dtype(), op.name(), |T| map_binary::<T>(
            self, other, op, shape
        ))
    }

    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Add)
    }
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Sub)
    }
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Mul)
    }
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Div)
    }
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Maximum)
    }
    /// `self` where `input > 0`, else 0 (ReLU's backward for gradient `self`).
    pub fn relu_backward(&self, input: &Tensor) -> Result<Tensor> {
        self.binary(input, BinaryOp::ReluBackward)
    }
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    pub fn powf(&self, exponent: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Pow(exponent))
    }
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(s))
    }
    pub fn mul_scalar(&self, s: f64) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(s))
    }
    /// 1.0 where `self > threshold`, else 0.0, in `self`'s dtype.
    pub fn gt_mask(&self, threshold: f64) -> Result<Tensor> {
        self.unary(UnaryOp::GtMask(threshold))
    }
}

/// Copies `src` (any layout) into `dst` at the positions given by `dst_layout`.
pub(crate) fn copy_into<T: Copy>(
    src: &[T],
    src_layout: &Layout,
    dst: &mut [T],
    dst_layout: &Layout,
) {
    for_each_offset_pair(src_layout, dst_layout, |s, d| dst[d] = src[s]);
}

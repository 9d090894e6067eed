//! Elementwise ops: unary maps and broadcasting binary ops.

use crate::{Result, Shape, Tensor};
pub use gradlab_cpu::{BinaryOp, UnaryOp};

impl Tensor {
    /// Applies a unary elementwise op (result is contiguous).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.check_float(op.name())?;
        self.backend().unary(op, self)
    }

    /// Applies a binary op with broadcasting (both operands must share dtype and device).
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        self.check_same_kind(op.name(), other)?;
        self.check_float(op.name())?;
        let shape = Shape::broadcast(op.name(), self.shape(), other.shape())?;
        self.backend().binary(op, self, other, &shape)
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

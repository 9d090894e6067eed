//! The elementwise operations, named once for every backend.
//!
//! The reference loops, the fast CPU kernels and the CUDA kernels all
//! compute these; [`UnaryOp::eval`] and [`BinaryOp::eval`] are the scalar
//! definitions they are tested against.

use crate::Float;

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

    /// The op on one value: the definition every kernel follows.
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

/// A function of two (broadcast) operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// The larger operand; NaN propagates (`a` wins ties).
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

    /// The op on one pair of values: the definition every kernel follows.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_definitions_follow_pytorch() {
        assert_eq!(UnaryOp::Relu.eval(-2.0f64), 0.0);
        assert!(UnaryOp::Relu.eval(f64::NAN).is_nan());
        assert_eq!(UnaryOp::GtMask(0.5).eval(0.5f32), 0.0);
        assert_eq!(UnaryOp::GtMask(0.5).eval(0.6f32), 1.0);
        assert!(BinaryOp::Maximum.eval(1.0f64, f64::NAN).is_nan());
        assert!(BinaryOp::Maximum.eval(f64::NAN, 1.0f64).is_nan());
        assert_eq!(BinaryOp::ReluBackward.eval(3.0f64, 0.0), 0.0);
        assert_eq!(BinaryOp::ReluBackward.eval(3.0f64, 1e-9), 3.0);
    }
}

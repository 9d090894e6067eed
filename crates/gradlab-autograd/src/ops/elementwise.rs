//! Elementwise ops: forward and backward side by side.

use crate::graph::OpSite;
use crate::graph::{record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::{BinaryOp, UnaryOp};

/// Backward of a broadcasting binary op; gradients are summed back to each
/// operand's shape. Each gradient is itself elementwise arithmetic
/// ([`gradlab_tensor::kernels::reference::binary`], on the operands broadcast to one shape) followed by
/// that sum ([`gradlab_tensor::kernels::reference::sum`]).
struct BinaryBackward(BinaryOp);

impl BackwardOp for BinaryBackward {
    fn name(&self) -> &'static str {
        match self.0 {
            BinaryOp::Add => "AddBackward",
            BinaryOp::Sub => "SubBackward",
            BinaryOp::Mul => "MulBackward",
            BinaryOp::Div => "DivBackward",
            BinaryOp::Maximum => "MaximumBackward",
            BinaryOp::ReluBackward => "ReluBackwardBackward",
        }
    }

    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (ga, gb) = match self.0 {
            BinaryOp::Add => (g.clone(), g.clone()),
            BinaryOp::Sub => (g.clone(), g.neg()?),
            BinaryOp::Mul => (g.mul(b)?, g.mul(a)?),
            BinaryOp::Div => (g.div(b)?, g.mul(a)?.div(&b.mul(b)?)?.neg()?),
            BinaryOp::Maximum => {
                // The gradient goes to the larger operand (to `a` on ties).
                let b_wins = Var::constant(b.data().sub(&a.data())?.gt_mask(0.0)?);
                let a_wins = b_wins.neg()?.add_scalar(1.0)?;
                (g.mul(&a_wins)?, g.mul(&b_wins)?)
            }
            // Linear in the gradient `a`; the mask is piecewise constant in `b`.
            BinaryOp::ReluBackward => (
                g.binary(b, BinaryOp::ReluBackward)?,
                Var::constant(b.data().zeros_like()?),
            ),
        };
        let ga = if a.requires_grad() {
            Some(ga.sum_to(&a.shape())?)
        } else {
            None
        };
        let gb = if b.requires_grad() {
            Some(gb.sum_to(&b.shape())?)
        } else {
            None
        };
        Ok(vec![ga, gb])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].binary(&inputs[1], self.0))
    }
}

/// Backward of a unary op, from its input (recomputing what it needs with
/// differentiable ops, so that second derivatives are right): elementwise
/// maps and products ([`gradlab_tensor::kernels::reference::unary`], [`gradlab_tensor::kernels::reference::binary`]); ReLU's is one
/// masked copy (`BinaryOp::ReluBackward` in [`gradlab_tensor::kernels::reference::binary`]).
struct UnaryBackward(UnaryOp);

impl BackwardOp for UnaryBackward {
    fn name(&self) -> &'static str {
        match self.0 {
            UnaryOp::Neg => "NegBackward",
            UnaryOp::Exp => "ExpBackward",
            UnaryOp::Log => "LogBackward",
            UnaryOp::Sqrt => "SqrtBackward",
            UnaryOp::Relu => "ReluBackward",
            UnaryOp::Sigmoid => "SigmoidBackward",
            UnaryOp::Tanh => "TanhBackward",
            UnaryOp::Abs => "AbsBackward",
            UnaryOp::Pow(_) => "PowBackward",
            UnaryOp::AddScalar(_) => "AddScalarBackward",
            UnaryOp::MulScalar(_) => "MulScalarBackward",
            UnaryOp::GtMask(_) => "GtMaskBackward",
        }
    }

    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let x = &inputs[0];
        let gx = match self.0 {
            UnaryOp::Neg => g.neg()?,
            UnaryOp::Exp => g.mul(&x.exp()?)?,
            UnaryOp::Log => g.div(x)?,
            UnaryOp::Sqrt => g.div(&x.sqrt()?)?.mul_scalar(0.5)?,
            // The mask is piecewise constant: its own derivative is zero.
            UnaryOp::Relu => g.binary(x, BinaryOp::ReluBackward)?,
            UnaryOp::Sigmoid => {
                let s = x.sigmoid()?;
                g.mul(&s)?.mul(&s.neg()?.add_scalar(1.0)?)?
            }
            UnaryOp::Tanh => {
                let t = x.tanh()?;
                g.mul(&t.mul(&t)?.neg()?.add_scalar(1.0)?)?
            }
            UnaryOp::Abs => {
                let sign = x.data().gt_mask(0.0)?.sub(&x.data().neg()?.gt_mask(0.0)?)?;
                g.mul(&Var::constant(sign))?
            }
            UnaryOp::Pow(e) => g.mul(&x.powf(e - 1.0)?)?.mul_scalar(e)?,
            UnaryOp::AddScalar(_) => g.clone(),
            UnaryOp::MulScalar(s) => g.mul_scalar(s)?,
            UnaryOp::GtMask(_) => Var::constant(x.data().zeros_like()?),
        };
        Ok(vec![Some(gx)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].unary(self.0))
    }
}

impl Var {
    /// Applies a broadcasting binary op, recording its backward rule.
    #[track_caller]
    pub fn binary(&self, other: &Var, op: BinaryOp) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self.data().binary(&other.data(), op)?;
        record(out, &[self, other], BinaryBackward(op), loc)
    }

    #[track_caller]
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self.data().unary(op)?;
        record(out, &[self], UnaryBackward(op), loc)
    }

    /// `self + other` with broadcasting.
    #[track_caller]
    pub fn add(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Add)
    }
    #[track_caller]
    pub fn sub(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Sub)
    }
    #[track_caller]
    pub fn mul(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Mul)
    }
    #[track_caller]
    pub fn div(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Div)
    }
    /// Elementwise maximum; the gradient goes to the larger operand.
    #[track_caller]
    pub fn maximum(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Maximum)
    }
    #[track_caller]
    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }
    #[track_caller]
    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }
    #[track_caller]
    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }
    #[track_caller]
    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }
    #[track_caller]
    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }
    #[track_caller]
    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }
    #[track_caller]
    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }
    #[track_caller]
    pub fn abs(&self) -> Result<Var> {
        self.unary(UnaryOp::Abs)
    }
    /// `self ^ exponent` for a scalar exponent.
    #[track_caller]
    pub fn powf(&self, exponent: f64) -> Result<Var> {
        self.unary(UnaryOp::Pow(exponent))
    }
    #[track_caller]
    pub fn add_scalar(&self, s: f64) -> Result<Var> {
        self.unary(UnaryOp::AddScalar(s))
    }
    #[track_caller]
    pub fn mul_scalar(&self, s: f64) -> Result<Var> {
        self.unary(UnaryOp::MulScalar(s))
    }
}

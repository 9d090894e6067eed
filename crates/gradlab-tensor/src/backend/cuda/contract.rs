//! [`Cuda`]: the device contract on the GPU, one method per primitive,
//! each a call into this module's op files; the gaps are listed in [`GAPS`].

use super::{conv, elementwise, matmul, norm, optim, pool, reduce, softmax, transfer};
use crate::backend::{unsupported, Backend, CrossEntropyRows, Primitive};
use crate::{DType, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::optim::{AdamConfig, SgdConfig};
use gradlab_cpu::{BatchNormShape, BinaryOp, Conv2dShape, Pool2dShape, UnaryOp};

/// The kernels of `kernels/*.cu` (see the module docs).
pub struct Cuda;

/// What the CUDA backend does not implement, and why.
pub const GAPS: &[(Primitive, &str)] = &[
    (
        Primitive::Cast,
        "CUDA tensors are f32 (or i64 indices); convert on the CPU",
    ),
    (
        Primitive::GatherAlong,
        "no gather kernel (needed only by second derivatives of max_dim)",
    ),
    (
        Primitive::MaxPool2dGather,
        "no gather kernel (needed only by second derivatives of max_pool2d)",
    ),
];

fn f32_only(op: &'static str, dtype: DType) -> Result<()> {
    if dtype == DType::F32 {
        Ok(())
    } else {
        Err(TensorError::UnsupportedDType {
            op,
            dtype,
            expected: "f32 on CUDA",
        })
    }
}

impl Backend for Cuda {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn gaps(&self) -> &'static [(Primitive, &'static str)] {
        GAPS
    }

    fn full(&self, shape: &Shape, value: f64, dtype: DType) -> Result<Tensor> {
        // One device exists (cuda:0); tensors made here live there.
        transfer::full(shape.clone(), value, dtype, crate::Device::Cuda(0))
    }

    fn copy(&self, x: &Tensor) -> Result<Tensor> {
        transfer::copy(x)
    }

    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        if x.dtype() == dtype {
            return Ok(x.clone());
        }
        Err(unsupported(self, Primitive::Cast))
    }

    fn assemble(&self, shape: &Shape, dtype: DType, parts: &[(&Tensor, Layout)]) -> Result<Tensor> {
        elementwise::assemble(shape, dtype, parts)
    }

    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        f32_only(op.name(), x.dtype())?;
        elementwise::unary(x, op)
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, shape: &Shape) -> Result<Tensor> {
        f32_only(op.name(), a.dtype())?;
        elementwise::binary(a, b, op, shape)
    }

    fn sum(&self, x: &Tensor, dims: &[usize], scale: f64) -> Result<Tensor> {
        f32_only("sum", x.dtype())?;
        reduce::sum(x, dims, scale)
    }

    fn max_along(&self, x: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
        f32_only("max_dim", x.dtype())?;
        reduce::max_along(x, dim)
    }

    fn gather_along(&self, _: &Tensor, _: usize, _: &Tensor) -> Result<Tensor> {
        Err(unsupported(self, Primitive::GatherAlong))
    }

    fn scatter_add_along(
        &self,
        src: &Tensor,
        dim: usize,
        index: &Tensor,
        shape: &Shape,
    ) -> Result<Tensor> {
        f32_only("scatter_add_along", src.dtype())?;
        reduce::scatter_add_along(src, dim, index, shape)
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape) -> Result<Tensor> {
        f32_only("matmul", a.dtype())?;
        matmul::matmul(a, b, batch)
    }

    fn conv2d(
        &self,
        s: &Conv2dShape,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
    ) -> Result<Tensor> {
        f32_only("conv2d", x.dtype())?;
        conv::forward(s, x, w, b)
    }

    fn conv2d_backward_data(&self, s: &Conv2dShape, grad: &Tensor, w: &Tensor) -> Result<Tensor> {
        f32_only("conv2d_backward_data", grad.dtype())?;
        conv::backward_data(s, grad, w)
    }

    fn conv2d_backward_weight(&self, s: &Conv2dShape, grad: &Tensor, x: &Tensor) -> Result<Tensor> {
        f32_only("conv2d_backward_weight", grad.dtype())?;
        conv::backward_weight(s, grad, x)
    }

    fn max_pool2d(&self, s: &Pool2dShape, x: &Tensor) -> Result<(Tensor, Tensor)> {
        f32_only("max_pool2d", x.dtype())?;
        pool::forward(s, x)
    }

    fn max_pool2d_backward(
        &self,
        s: &Pool2dShape,
        grad: &Tensor,
        argmax: &Tensor,
    ) -> Result<Tensor> {
        f32_only("max_pool2d_backward", grad.dtype())?;
        pool::backward(s, grad, argmax)
    }

    fn max_pool2d_gather(&self, _: &Pool2dShape, _: &Tensor, _: &Tensor) -> Result<Tensor> {
        Err(unsupported(self, Primitive::MaxPool2dGather))
    }

    fn batch_norm2d_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        norm::train(s, x, weight, bias, eps)
    }

    fn batch_norm2d_inference(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        norm::inference(s, x, mean, var, weight, bias, eps)
    }

    fn batch_norm2d_backward(
        &self,
        s: BatchNormShape,
        grad: &Tensor,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        norm::backward(s, grad, x, mean, var, weight, eps)
    }

    fn batch_norm2d_relu_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        norm::train_relu(s, x, weight, bias, eps)
    }

    fn batch_norm2d_relu_backward(
        &self,
        s: BatchNormShape,
        grad: &Tensor,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        norm::backward_relu(s, grad, x, mean, var, weight, bias, eps)
    }

    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
        f32_only("softmax", x.dtype())?;
        softmax::softmax(x, dim, log)
    }

    fn cross_entropy(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
    ) -> Result<(Tensor, Tensor)> {
        f32_only("cross_entropy", logits.dtype())?;
        softmax::cross_entropy(logits, target, rows)
    }

    fn cross_entropy_backward(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
        grad: &Tensor,
    ) -> Result<Tensor> {
        f32_only("cross_entropy_backward", logits.dtype())?;
        softmax::cross_entropy_backward(logits, target, rows, grad)
    }

    fn one_hot(
        &self,
        target: &Tensor,
        classes: usize,
        dtype: DType,
        ignore_index: Option<i64>,
    ) -> Result<Tensor> {
        softmax::one_hot(target, classes, dtype, ignore_index)
    }

    fn sgd_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        momentum: Option<(&mut Tensor, bool)>,
        config: &SgdConfig,
    ) -> Result<()> {
        optim::sgd_step(param, grad, momentum, config)
    }

    fn adam_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        exp_avg: &mut Tensor,
        exp_avg_sq: &mut Tensor,
        step: u64,
        config: &AdamConfig,
    ) -> Result<()> {
        optim::adam_step(param, grad, exp_avg, exp_avg_sq, step, config)
    }
}

//! Metering: every primitive call timed and costed, for the profiler.
//!
//! While a thread has metering on ([`set_metering`]), [`Tensor::backend`]
//! hands out a [`Metered`] twin of the backend it would have returned: it
//! runs the same method, times it, and logs a [`KernelCall`] with the
//! primitive's [`cost`]. A CUDA call waits for the device
//! before the clock stops, so its time is the kernel's, not the launch's.
//! Primitives called from inside another primitive belong to the outer one
//! and are not logged twice.
//!
//! When metering is off the only cost is one thread-local read per op.
//!
//! ```
//! use gradlab_tensor::backend::meter;
//! use gradlab_tensor::{DType, Tensor};
//! let a = Tensor::ones([8, 4], DType::F32);
//! let b = Tensor::ones([4, 2], DType::F32);
//! meter::set_metering(true);
//! let _ = a.matmul(&b).unwrap();
//! let calls = meter::take_calls();
//! meter::set_metering(false);
//! assert_eq!(calls.len(), 1);
//! assert_eq!(calls[0].primitive.name(), "matmul");
//! assert_eq!(calls[0].cost.flops, 2.0 * 8.0 * 4.0 * 2.0);
//! ```
//!
//! [`Tensor::backend`]: crate::Tensor::backend

use super::cost::{self, Cost};
use super::{Backend, CrossEntropyRows, Primitive};
use crate::{DType, Layout, Result, Shape, Tensor};
use gradlab_cpu::optim::{AdamConfig, SgdConfig};
use gradlab_cpu::{BatchNormShape, BinaryOp, Conv2dShape, Pool2dShape, UnaryOp};
use std::cell::{Cell, RefCell};
use std::time::Instant;

/// One primitive call, as the meter saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCall {
    pub primitive: Primitive,
    /// The backend that ran it (`"cpu"`, `"reference"`, `"cuda"`).
    pub backend: &'static str,
    pub dtype: DType,
    /// Wall time of the call (for CUDA, until the device finished it).
    pub seconds: f64,
    pub cost: Cost,
}

thread_local! {
    /// The calls logged since the last [`take_calls`]; `None` when off.
    static LOG: RefCell<Option<Vec<KernelCall>>> = const { RefCell::new(None) };
    /// Metered calls in progress on this thread (nested ones are not logged).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Set while the profiler does its own bookkeeping (not logged).
    static PAUSED: Cell<bool> = const { Cell::new(false) };
}

/// Turns metering on or off for ops called from this thread. Turning it
/// on starts an empty log; turning it off drops what was not taken.
pub fn set_metering(on: bool) {
    LOG.with(|log| *log.borrow_mut() = on.then(Vec::new));
}

/// True when ops called from this thread are metered.
pub fn is_metering() -> bool {
    LOG.with(|log| log.borrow().is_some())
}

/// The calls logged since the previous take, oldest first.
pub fn take_calls() -> Vec<KernelCall> {
    LOG.with(|log| log.borrow_mut().as_mut().map(std::mem::take))
        .unwrap_or_default()
}

/// Runs `f` without logging its primitive calls (for a profiler's own
/// work, such as reading an activation back to compute its statistics).
pub fn paused<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PAUSED.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PAUSED.with(|p| p.replace(true)));
    f()
}

/// The backend ops should use now: `backend` itself, or its metered twin
/// while this thread meters.
pub(crate) fn route(backend: &'static dyn Backend) -> &'static dyn Backend {
    if !is_metering() {
        return backend;
    }
    match backend.name() {
        "reference" => &METERED_REFERENCE,
        "cpu" => &METERED_CPU,
        "cuda" => &METERED_CUDA,
        _ => backend,
    }
}

static METERED_REFERENCE: Metered = Metered(&super::reference::Reference);
static METERED_CPU: Metered = Metered(&super::cpu::Cpu);
static METERED_CUDA: Metered = Metered(&super::cuda::Cuda);

/// A backend that runs another one's methods and logs each call.
pub struct Metered(&'static dyn Backend);

impl Metered {
    fn run<R>(
        &self,
        primitive: Primitive,
        dtype: DType,
        cost: impl FnOnce() -> Cost,
        f: impl FnOnce(&dyn Backend) -> Result<R>,
    ) -> Result<R> {
        let outermost = DEPTH.with(|d| d.get()) == 0 && !PAUSED.with(Cell::get);
        if !outermost {
            return f(self.0);
        }
        DEPTH.with(|d| d.set(1));
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                DEPTH.with(|d| d.set(0));
            }
        }
        let _leave = Leave;
        let started = Instant::now();
        let result = f(self.0);
        if self.0.name() == "cuda" && result.is_ok() {
            // Launches return at once; the time that matters is the device's.
            gradlab_cuda::Gpu::global()
                .and_then(|gpu| gpu.synchronize())
                .map_err(super::cuda::backend("synchronize"))?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let call = KernelCall {
            primitive,
            backend: self.0.name(),
            dtype,
            seconds,
            cost: cost(),
        };
        LOG.with(|log| {
            if let Some(calls) = log.borrow_mut().as_mut() {
                calls.push(call);
            }
        });
        result
    }
}

impl Backend for Metered {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn gaps(&self) -> &'static [(Primitive, &'static str)] {
        self.0.gaps()
    }

    fn full(&self, shape: &Shape, value: f64, dtype: DType) -> Result<Tensor> {
        self.run(
            Primitive::Full,
            dtype,
            || cost::full(shape, dtype),
            |b| b.full(shape, value, dtype),
        )
    }

    fn copy(&self, x: &Tensor) -> Result<Tensor> {
        self.run(Primitive::Copy, x.dtype(), || cost::copy(x), |b| b.copy(x))
    }

    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        self.run(
            Primitive::Cast,
            x.dtype(),
            || cost::cast(x, dtype),
            |b| b.cast(x, dtype),
        )
    }

    fn assemble(&self, shape: &Shape, dtype: DType, parts: &[(&Tensor, Layout)]) -> Result<Tensor> {
        self.run(
            Primitive::Assemble,
            dtype,
            || cost::assemble(shape, dtype, parts),
            |b| b.assemble(shape, dtype, parts),
        )
    }

    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        self.run(
            Primitive::Unary,
            x.dtype(),
            || cost::unary(x),
            |b| b.unary(op, x),
        )
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, shape: &Shape) -> Result<Tensor> {
        self.run(
            Primitive::Binary,
            a.dtype(),
            || cost::binary(a, b, shape),
            |backend| backend.binary(op, a, b, shape),
        )
    }

    fn sum(&self, x: &Tensor, dims: &[usize], scale: f64) -> Result<Tensor> {
        self.run(
            Primitive::Sum,
            x.dtype(),
            || cost::sum(x, dims, scale),
            |b| b.sum(x, dims, scale),
        )
    }

    fn max_along(&self, x: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
        self.run(
            Primitive::MaxAlong,
            x.dtype(),
            || cost::max_along(x, dim),
            |b| b.max_along(x, dim),
        )
    }

    fn gather_along(&self, x: &Tensor, dim: usize, index: &Tensor) -> Result<Tensor> {
        self.run(
            Primitive::GatherAlong,
            x.dtype(),
            || cost::gather_along(x, index),
            |b| b.gather_along(x, dim, index),
        )
    }

    fn scatter_add_along(
        &self,
        src: &Tensor,
        dim: usize,
        index: &Tensor,
        shape: &Shape,
    ) -> Result<Tensor> {
        self.run(
            Primitive::ScatterAddAlong,
            src.dtype(),
            || cost::scatter_add_along(src, shape),
            |b| b.scatter_add_along(src, dim, index, shape),
        )
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape) -> Result<Tensor> {
        self.run(
            Primitive::Matmul,
            a.dtype(),
            || cost::matmul(a, b, batch),
            |backend| backend.matmul(a, b, batch),
        )
    }

    fn conv2d(
        &self,
        s: &Conv2dShape,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.run(
            Primitive::Conv2d,
            x.dtype(),
            || cost::conv2d(s, x, bias.is_some()),
            |b| b.conv2d(s, x, w, bias),
        )
    }

    fn conv2d_backward_data(&self, s: &Conv2dShape, grad: &Tensor, w: &Tensor) -> Result<Tensor> {
        self.run(
            Primitive::Conv2dBackwardData,
            grad.dtype(),
            || cost::conv2d_backward_data(s, grad),
            |b| b.conv2d_backward_data(s, grad, w),
        )
    }

    fn conv2d_backward_weight(&self, s: &Conv2dShape, grad: &Tensor, x: &Tensor) -> Result<Tensor> {
        self.run(
            Primitive::Conv2dBackwardWeight,
            grad.dtype(),
            || cost::conv2d_backward_weight(s, grad),
            |b| b.conv2d_backward_weight(s, grad, x),
        )
    }

    fn max_pool2d(&self, s: &Pool2dShape, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.run(
            Primitive::MaxPool2d,
            x.dtype(),
            || cost::max_pool2d(s, x),
            |b| b.max_pool2d(s, x),
        )
    }

    fn max_pool2d_backward(
        &self,
        s: &Pool2dShape,
        grad: &Tensor,
        argmax: &Tensor,
    ) -> Result<Tensor> {
        self.run(
            Primitive::MaxPool2dBackward,
            grad.dtype(),
            || cost::max_pool2d_backward(s, grad),
            |b| b.max_pool2d_backward(s, grad, argmax),
        )
    }

    fn max_pool2d_gather(&self, s: &Pool2dShape, x: &Tensor, argmax: &Tensor) -> Result<Tensor> {
        self.run(
            Primitive::MaxPool2dGather,
            x.dtype(),
            || cost::max_pool2d_gather(s, x),
            |b| b.max_pool2d_gather(s, x, argmax),
        )
    }

    fn batch_norm2d_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.run(
            Primitive::BatchNorm2dTrain,
            x.dtype(),
            || cost::batch_norm2d_train(s, x, weight.is_some(), bias.is_some()),
            |b| b.batch_norm2d_train(s, x, weight, bias, eps),
        )
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
        self.run(
            Primitive::BatchNorm2dInference,
            x.dtype(),
            || cost::batch_norm2d_inference(s, x),
            |b| b.batch_norm2d_inference(s, x, mean, var, weight, bias, eps),
        )
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
        self.run(
            Primitive::BatchNorm2dBackward,
            x.dtype(),
            || cost::batch_norm2d_backward(s, x),
            |b| b.batch_norm2d_backward(s, grad, x, mean, var, weight, eps),
        )
    }

    fn batch_norm2d_relu_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.run(
            Primitive::BatchNorm2dReluTrain,
            x.dtype(),
            // Batch norm's traffic and arithmetic; the max with 0 rides on
            // the output's write.
            || cost::batch_norm2d_train(s, x, weight.is_some(), bias.is_some()),
            |b| b.batch_norm2d_relu_train(s, x, weight, bias, eps),
        )
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
        self.run(
            Primitive::BatchNorm2dReluBackward,
            x.dtype(),
            || cost::batch_norm2d_backward(s, x),
            |b| b.batch_norm2d_relu_backward(s, grad, x, mean, var, weight, bias, eps),
        )
    }

    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
        self.run(
            Primitive::Softmax,
            x.dtype(),
            || cost::softmax(x),
            |b| b.softmax(x, dim, log),
        )
    }

    fn cross_entropy(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
    ) -> Result<(Tensor, Tensor)> {
        self.run(
            Primitive::CrossEntropy,
            logits.dtype(),
            || cost::cross_entropy(logits, target),
            |b| b.cross_entropy(logits, target, rows),
        )
    }

    fn cross_entropy_backward(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
        grad: &Tensor,
    ) -> Result<Tensor> {
        self.run(
            Primitive::CrossEntropyBackward,
            logits.dtype(),
            || cost::cross_entropy_backward(logits, target),
            |b| b.cross_entropy_backward(logits, target, rows, grad),
        )
    }

    fn one_hot(
        &self,
        target: &Tensor,
        classes: usize,
        dtype: DType,
        ignore_index: Option<i64>,
    ) -> Result<Tensor> {
        self.run(
            Primitive::OneHot,
            dtype,
            || cost::one_hot(target, classes, dtype),
            |b| b.one_hot(target, classes, dtype, ignore_index),
        )
    }

    fn sgd_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        momentum: Option<(&mut Tensor, bool)>,
        config: &SgdConfig,
    ) -> Result<()> {
        let cost = cost::sgd_step(param, config, momentum.is_some());
        let dtype = param.dtype();
        self.run(
            Primitive::SgdStep,
            dtype,
            || cost,
            |b| b.sgd_step(param, grad, momentum, config),
        )
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
        let cost = cost::adam_step(param, config);
        let dtype = param.dtype();
        self.run(
            Primitive::AdamStep,
            dtype,
            || cost,
            |b| b.adam_step(param, grad, exp_avg, exp_avg_sq, step, config),
        )
    }
}

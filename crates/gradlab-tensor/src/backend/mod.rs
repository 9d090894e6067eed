//! The device contract: every primitive a backend implements, in one place.
//!
//! A [`Tensor`] op checks its operands' shapes, dtypes and devices once
//! (in `crate::ops`), then calls one method of the [`Backend`] that owns
//! the operands' storage. Nothing above this crate asks which device a
//! tensor is on. Three backends implement the contract:
//!
//! | backend | where | what it runs |
//! | --- | --- | --- |
//! | `reference` | [`reference`](mod@reference) | the plain loops of `gradlab_cpu::reference`: slow, obviously right, easy to step through in a debugger; f32 and f64 |
//! | `cpu` | [`cpu`] | the fast kernels of `gradlab_cpu` (SIMD, packed GEMM, threads); f32 and f64 |
//! | `cuda` | [`cuda`] | the kernels of `kernels/*.cu` through `gradlab_cuda`; f32 (and i64 indices) |
//!
//! Host tensors run on `cpu` unless the reference kernels are selected:
//! `GRADLAB_KERNELS=reference` in the environment, [`set_kernels`] for the
//! process, or [`with_kernels`] for one closure on the current thread (the
//! command line's `--kernels reference|fast`).
//!
//! A primitive that a backend lacks returns [`TensorError::Unsupported`]
//! naming the primitive and the backend; the gaps are listed in each
//! backend's file and gathered by [`coverage`] into this table (a test
//! checks it against the backends, so it cannot drift):
//!
#![doc = include_str!("coverage.txt")]

pub mod cost;
pub mod cpu;
pub mod cuda;
pub(crate) mod host;
pub mod meter;
#[doc(hidden)]
pub mod recycle;
pub mod reference;

pub use recycle::poison_recycled_buffers;

use crate::{DType, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::optim::{AdamConfig, SgdConfig};
use gradlab_cpu::{BatchNormShape, BinaryOp, Conv2dShape, Pool2dShape, UnaryOp};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Everything a device must provide. Inputs arrive checked: shapes fit the
/// primitive, dtypes and devices agree, float ops get float tensors.
/// Results are new contiguous tensors unless the method says otherwise.
pub trait Backend: Send + Sync + 'static {
    /// `"reference"`, `"cpu"` or `"cuda"`.
    fn name(&self) -> &'static str;

    /// The primitives this backend does not implement, with the reason
    /// (each listed method returns [`TensorError::Unsupported`]).
    fn gaps(&self) -> &'static [(Primitive, &'static str)];

    // ---- memory and layout ------------------------------------------------

    /// A tensor of `shape` filled with `value` (converted to `dtype`).
    fn full(&self, shape: &Shape, value: f64, dtype: DType) -> Result<Tensor>;

    /// A contiguous copy of `x`, whatever its layout (any dtype).
    fn copy(&self, x: &Tensor) -> Result<Tensor>;

    /// The values of `x` converted to `dtype`.
    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor>;

    /// Zeros of `shape` with each part copied into its region, given as a
    /// layout of the result's contiguous storage (a narrowed view): `cat`
    /// and `embed`, the adjoint of `narrow`.
    fn assemble(&self, shape: &Shape, dtype: DType, parts: &[(&Tensor, Layout)]) -> Result<Tensor>;

    // ---- elementwise ------------------------------------------------------

    /// `op(x)` for every element.
    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor>;

    /// `op(a, b)` for operands broadcast to `shape`.
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, shape: &Shape) -> Result<Tensor>;

    // ---- reductions and indexing ------------------------------------------

    /// `scale * Σ x` over `dims` (sorted, unique), the reduced dims kept
    /// with size 1.
    fn sum(&self, x: &Tensor, dims: &[usize], scale: f64) -> Result<Tensor>;

    /// The maximum along `dim` (not empty) and its i64 position along that
    /// dim, the dim kept with size 1. The first maximum wins; NaN beats
    /// every number.
    fn max_along(&self, x: &Tensor, dim: usize) -> Result<(Tensor, Tensor)>;

    /// `out[.., j, ..] = x[.., index[.., j, ..], ..]` along `dim` (`torch.gather`).
    fn gather_along(&self, x: &Tensor, dim: usize, index: &Tensor) -> Result<Tensor>;

    /// Zeros of `shape` with `out[.., index[.., j, ..], ..] += src[.., j, ..]`
    /// along `dim`: the adjoint of [`Backend::gather_along`].
    fn scatter_add_along(
        &self,
        src: &Tensor,
        dim: usize,
        index: &Tensor,
        shape: &Shape,
    ) -> Result<Tensor>;

    // ---- products ----------------------------------------------------------

    /// `a @ b` for `a` `[.., m, k]` and `b` `[.., k, n]` (rank >= 2) whose
    /// batch dims broadcast to `batch`; the result is `[batch.., m, n]`.
    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape) -> Result<Tensor>;

    /// `conv2d(x, w, b)` (NCHW), shaped by `s`.
    fn conv2d(&self, s: &Conv2dShape, x: &Tensor, w: &Tensor, b: Option<&Tensor>)
        -> Result<Tensor>;

    /// The input gradient of a convolution from its output gradient.
    fn conv2d_backward_data(&self, s: &Conv2dShape, grad: &Tensor, w: &Tensor) -> Result<Tensor>;

    /// The weight gradient of a convolution from its output gradient.
    fn conv2d_backward_weight(&self, s: &Conv2dShape, grad: &Tensor, x: &Tensor) -> Result<Tensor>;

    // ---- pooling -----------------------------------------------------------

    /// Max-pool values and, for each, the i64 index of the winner within
    /// its input plane (`h * W + w`; -1 for a window without one).
    fn max_pool2d(&self, s: &Pool2dShape, x: &Tensor) -> Result<(Tensor, Tensor)>;

    /// Routes pooled gradients to the winners: zeros of the input's shape
    /// plus `grad` at each argmax (checked to be -1 or inside its plane).
    fn max_pool2d_backward(
        &self,
        s: &Pool2dShape,
        grad: &Tensor,
        argmax: &Tensor,
    ) -> Result<Tensor>;

    /// Reads `x` (shaped like the pool's input) at the argmax positions:
    /// the adjoint of [`Backend::max_pool2d_backward`].
    fn max_pool2d_gather(&self, s: &Pool2dShape, x: &Tensor, argmax: &Tensor) -> Result<Tensor>;

    // ---- normalisation -----------------------------------------------------

    /// Training-mode batch norm: `(y, mean, var)` with the batch's
    /// per-channel mean and biased variance (shape `[C]`).
    fn batch_norm2d_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    /// Evaluation-mode batch norm with given per-channel statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_inference(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor>;

    /// `(dx, dweight, dbias)` of training-mode batch norm from the output
    /// gradient and the forward's input and batch statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_backward(
        &self,
        s: BatchNormShape,
        grad: &Tensor,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    /// Training-mode batch norm followed by ReLU, as one op:
    /// `(relu(y), mean, var)` with `y, mean, var` those of
    /// [`Backend::batch_norm2d_train`] (`y` normalised with the statistics
    /// as returned, rounded to the dtype).
    fn batch_norm2d_relu_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    /// `(dx, dweight, dbias)` of [`Backend::batch_norm2d_relu_train`] from
    /// the output gradient, the forward's input and statistics and the same
    /// parameters: batch norm's gradients of `grad` where the normalised
    /// value (recomputed from `x`) is positive, 0 elsewhere.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<(Tensor, Tensor, Tensor)>;

    // ---- softmax and cross-entropy ------------------------------------------

    /// Softmax (or log-softmax when `log`) along `dim`.
    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Result<Tensor>;

    /// Per-row cross-entropy of logits `[R, C]` against i64 classes `[R]`,
    /// as PyTorch defines it (see [`gradlab_cpu::loss`]): with the row's
    /// target distribution `q_c = w_c ((1 - eps) [c == t] + eps / C)`
    /// (class weights `w`, all 1 without them), the loss is
    /// `Σ_c q_c (logsumexp(x) - x_c)`, and 0 for a row whose target is the
    /// ignored index. Returns the `[R]` losses and the total weight `[]`
    /// of the rows that count (`Σ w_t`; their count without weights): the
    /// denominator of a mean. A target outside `0..C` that is not ignored
    /// is an error.
    fn cross_entropy(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
    ) -> Result<(Tensor, Tensor)>;

    /// The logits' gradient `(softmax(x) Σ q - q) * g` given each row's
    /// loss gradient `grad` (`[R]`, the reduction's scaling included); 0
    /// for an ignored row.
    fn cross_entropy_backward(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
        grad: &Tensor,
    ) -> Result<Tensor>;

    /// `[R, classes]` rows of `dtype`, 1 at each i64 target's class and 0
    /// elsewhere; a row whose target is `ignore_index` is all 0. Any other
    /// class outside `0..classes` is an error.
    fn one_hot(
        &self,
        target: &Tensor,
        classes: usize,
        dtype: DType,
        ignore_index: Option<i64>,
    ) -> Result<Tensor>;

    // ---- optimizer updates (in place) ---------------------------------------

    /// One SGD step on `param` (see [`gradlab_cpu::optim::sgd_update`]).
    /// `momentum` is the buffer and whether this is its first step; the
    /// parameter and buffer are made the sole owners of their storage first
    /// (copy-on-write), so no other tensor observes the change.
    fn sgd_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        momentum: Option<(&mut Tensor, bool)>,
        config: &SgdConfig,
    ) -> Result<()>;

    /// One Adam(W) step on `param` and its moments, `step` counting this
    /// one (see [`gradlab_cpu::optim::adam_update`]); copy-on-write as
    /// [`Backend::sgd_step`].
    #[allow(clippy::too_many_arguments)]
    fn adam_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        exp_avg: &mut Tensor,
        exp_avg_sq: &mut Tensor,
        step: u64,
        config: &AdamConfig,
    ) -> Result<()>;
}

/// What the cross-entropy primitives compute with, besides the logits and
/// the targets (PyTorch's names and meaning).
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyRows<'a> {
    /// A target equal to this counts for nothing (PyTorch's default: -100).
    pub ignore_index: i64,
    /// One weight per class (`[C]`, the logits' dtype and device), or none.
    pub weight: Option<&'a Tensor>,
    /// `eps` in `[0, 1]`: the target puts `eps / C` on every class.
    pub label_smoothing: f64,
}

/// The primitives of the contract, one per method of [`Backend`] (for the
/// coverage table and [`TensorError::Unsupported`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Primitive {
    Full,
    Copy,
    Cast,
    Assemble,
    Unary,
    Binary,
    Sum,
    MaxAlong,
    GatherAlong,
    ScatterAddAlong,
    Matmul,
    Conv2d,
    Conv2dBackwardData,
    Conv2dBackwardWeight,
    MaxPool2d,
    MaxPool2dBackward,
    MaxPool2dGather,
    BatchNorm2dTrain,
    BatchNorm2dInference,
    BatchNorm2dBackward,
    BatchNorm2dReluTrain,
    BatchNorm2dReluBackward,
    Softmax,
    CrossEntropy,
    CrossEntropyBackward,
    OneHot,
    SgdStep,
    AdamStep,
}

impl Primitive {
    /// Every primitive, in the order of [`Backend`]'s methods.
    pub const ALL: [Primitive; 28] = [
        Primitive::Full,
        Primitive::Copy,
        Primitive::Cast,
        Primitive::Assemble,
        Primitive::Unary,
        Primitive::Binary,
        Primitive::Sum,
        Primitive::MaxAlong,
        Primitive::GatherAlong,
        Primitive::ScatterAddAlong,
        Primitive::Matmul,
        Primitive::Conv2d,
        Primitive::Conv2dBackwardData,
        Primitive::Conv2dBackwardWeight,
        Primitive::MaxPool2d,
        Primitive::MaxPool2dBackward,
        Primitive::MaxPool2dGather,
        Primitive::BatchNorm2dTrain,
        Primitive::BatchNorm2dInference,
        Primitive::BatchNorm2dBackward,
        Primitive::BatchNorm2dReluTrain,
        Primitive::BatchNorm2dReluBackward,
        Primitive::Softmax,
        Primitive::CrossEntropy,
        Primitive::CrossEntropyBackward,
        Primitive::OneHot,
        Primitive::SgdStep,
        Primitive::AdamStep,
    ];

    /// The method's name, e.g. `"conv2d_backward_data"`.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::Full => "full",
            Primitive::Copy => "copy",
            Primitive::Cast => "cast",
            Primitive::Assemble => "assemble",
            Primitive::Unary => "unary",
            Primitive::Binary => "binary",
            Primitive::Sum => "sum",
            Primitive::MaxAlong => "max_along",
            Primitive::GatherAlong => "gather_along",
            Primitive::ScatterAddAlong => "scatter_add_along",
            Primitive::Matmul => "matmul",
            Primitive::Conv2d => "conv2d",
            Primitive::Conv2dBackwardData => "conv2d_backward_data",
            Primitive::Conv2dBackwardWeight => "conv2d_backward_weight",
            Primitive::MaxPool2d => "max_pool2d",
            Primitive::MaxPool2dBackward => "max_pool2d_backward",
            Primitive::MaxPool2dGather => "max_pool2d_gather",
            Primitive::BatchNorm2dTrain => "batch_norm2d_train",
            Primitive::BatchNorm2dInference => "batch_norm2d_inference",
            Primitive::BatchNorm2dBackward => "batch_norm2d_backward",
            Primitive::BatchNorm2dReluTrain => "batch_norm2d_relu_train",
            Primitive::BatchNorm2dReluBackward => "batch_norm2d_relu_backward",
            Primitive::Softmax => "softmax",
            Primitive::CrossEntropy => "cross_entropy",
            Primitive::CrossEntropyBackward => "cross_entropy_backward",
            Primitive::OneHot => "one_hot",
            Primitive::SgdStep => "sgd_step",
            Primitive::AdamStep => "adam_step",
        }
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of a primitive that `backend` lacks, with the reason its
/// [`Backend::gaps`] gives.
pub fn unsupported(backend: &dyn Backend, primitive: Primitive) -> TensorError {
    let reason = backend
        .gaps()
        .iter()
        .find(|(p, _)| *p == primitive)
        .map_or("not implemented", |(_, why)| why);
    TensorError::Unsupported {
        primitive: primitive.name(),
        backend: backend.name(),
        reason,
    }
}

/// The primitive x backend table: `yes`, or the reason a backend lacks it.
pub fn coverage() -> String {
    let backends: [&dyn Backend; 3] = [&reference::Reference, &cpu::Cpu, &cuda::Cuda];
    let mut out =
        String::from("| primitive | reference | cpu | cuda |\n| --- | --- | --- | --- |\n");
    for p in Primitive::ALL {
        let cells: Vec<String> = backends
            .iter()
            .map(|b| match b.gaps().iter().find(|(q, _)| *q == p) {
                Some((_, why)) => format!("no: {why}"),
                None => "yes".to_string(),
            })
            .collect();
        out.push_str(&format!("| {p} | {} |\n", cells.join(" | ")));
    }
    out
}

// ---- choosing the host kernels ---------------------------------------------

/// Which kernels run host (CPU) tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Kernels {
    /// The plain reference loops (`gradlab_cpu::reference`).
    Reference,
    /// The fast kernels (`gradlab_cpu`'s root functions).
    #[default]
    Fast,
}

impl Kernels {
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Reference => "reference",
            Kernels::Fast => "fast",
        }
    }
}

impl fmt::Display for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernels {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "reference" => Ok(Kernels::Reference),
            "fast" => Ok(Kernels::Fast),
            _ => Err(format!(
                "unknown kernels '{s}' (expected reference or fast)"
            )),
        }
    }
}

/// 0: not set (read `GRADLAB_KERNELS`), 1: reference, 2: fast.
static GLOBAL_KERNELS: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static THREAD_KERNELS: Cell<Option<Kernels>> = const { Cell::new(None) };
}

fn code(k: Kernels) -> u8 {
    match k {
        Kernels::Reference => 1,
        Kernels::Fast => 2,
    }
}

/// The kernels named by `GRADLAB_KERNELS`, read once (`None` when unset).
/// An unknown value is reported once on stderr and ignored.
fn from_environment() -> Option<Kernels> {
    static ENV: OnceLock<Option<Kernels>> = OnceLock::new();
    *ENV.get_or_init(|| {
        let value = std::env::var("GRADLAB_KERNELS").ok()?;
        match value.parse() {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("GRADLAB_KERNELS: {e}; using the fast kernels");
                None
            }
        }
    })
}

/// Selects the kernels for host tensors, process-wide (`None`: back to
/// `GRADLAB_KERNELS`, or the fast kernels when it is unset).
pub fn set_kernels(kernels: Option<Kernels>) {
    GLOBAL_KERNELS.store(kernels.map_or(0, code), Ordering::Relaxed);
}

/// Runs `f` with ops called from this thread on `kernels`.
///
/// ```
/// use gradlab_tensor::backend::{with_kernels, Kernels};
/// use gradlab_tensor::Tensor;
/// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]).unwrap();
/// let fast = a.matmul(&a).unwrap();
/// let plain = with_kernels(Kernels::Reference, || a.matmul(&a).unwrap());
/// assert_eq!(fast.to_vec::<f64>().unwrap(), plain.to_vec::<f64>().unwrap());
/// ```
pub fn with_kernels<R>(kernels: Kernels, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Kernels>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_KERNELS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_KERNELS.with(|c| c.replace(Some(kernels))));
    f()
}

/// The kernels an op called now, from this thread, runs host tensors on.
pub fn kernels() -> Kernels {
    chosen_kernels().unwrap_or_default()
}

/// The kernels asked for explicitly ([`with_kernels`], [`set_kernels`] or
/// `GRADLAB_KERNELS`, in that order), or `None` when nothing asked.
pub fn chosen_kernels() -> Option<Kernels> {
    THREAD_KERNELS
        .with(Cell::get)
        .or_else(|| match GLOBAL_KERNELS.load(Ordering::Relaxed) {
            1 => Some(Kernels::Reference),
            2 => Some(Kernels::Fast),
            _ => from_environment(),
        })
}

/// The backend that runs host tensors now.
pub(crate) fn host() -> &'static dyn Backend {
    match kernels() {
        Kernels::Reference => &reference::Reference,
        Kernels::Fast => &cpu::Cpu,
    }
}

//! The recorded graph: nodes, the backward-op trait, and the switches that
//! decide what gets recorded (grad mode) and checked (anomaly mode).

pub(crate) use crate::profile::OpSite;
use crate::{AutogradError, Result, Var};
use gradlab_tensor::{Shape, Tensor};
use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The backward half of an op: given the op's inputs and the gradient of
/// its output, returns one gradient per input (`None` where the input needs
/// none). Implementations use differentiable `Var` ops, so that running them
/// with graph recording on gives gradients of gradients.
pub trait BackwardOp: Send + Sync {
    /// The name users know, e.g. `"Conv2dBackward"`.
    fn name(&self) -> &'static str;
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>>;

    /// Replays the op's forward pass on plain tensors: `inputs` in the
    /// order the node records them (the same values or perturbed copies of
    /// them, f64 during a gradient check), `output_shape` the shape the
    /// recorded forward produced (reshape, `sum_to` and the adjoints of
    /// narrow and max-pool are defined by it).
    ///
    /// This is what lets [`crate::gradcheck::localize`] check one node
    /// alone: its backward against finite differences of this replay. The
    /// replay must compute the same function the node recorded, from these
    /// inputs only (state saved at recording time, such as a max-pool's
    /// argmax, may be reused where the recorded function itself reuses it).
    /// The default, `None`, means "cannot replay": localisation then
    /// reports the node as not checked. Every built-in op replays; a
    /// user-defined op recorded through [`Var::from_op`] may too.
    fn forward(&self, inputs: &[Tensor], output_shape: &Shape) -> Option<Result<Tensor>> {
        let _ = (inputs, output_shape);
        None
    }

    /// Tensors the op keeps for its backward besides its inputs (a
    /// max-pool's argmax, batch norm's batch statistics, a softmax's
    /// output). The profiler counts them, with the inputs, as the memory
    /// the node holds until its backward runs. The default is none.
    fn saved_tensors(&self) -> Vec<Tensor> {
        Vec::new()
    }
}

/// An op's replayed forward result as [`BackwardOp::forward`] returns it.
pub(crate) fn replay(result: gradlab_tensor::Result<Tensor>) -> Option<Result<Tensor>> {
    Some(result.map_err(Into::into))
}

/// One recorded operation: its backward op, its inputs (with the version
/// each had when the op ran), and where it was created.
pub struct Node {
    pub(crate) op: Mutex<Option<Box<dyn BackwardOp>>>,
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Var>,
    /// `inputs[i].version()` when the op ran: backward reads the inputs'
    /// values, so it must see the ones the forward pass saw.
    pub(crate) saved_versions: Vec<u64>,
    pub(crate) location: &'static Location<'static>,
}

impl Node {
    /// The op name, e.g. `"MulBackward"`.
    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn inputs(&self) -> &[Var] {
        &self.inputs
    }
    /// Where in the user's code the op was called.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// Checks that no input was changed in place since the op ran: every
    /// backward rule reads its inputs' current values, so a changed one
    /// would give a gradient of a different function (PyTorch: "one of the
    /// variables needed for gradient computation has been modified by an
    /// inplace operation").
    pub(crate) fn check_saved_versions(&self) -> Result<()> {
        for (index, (input, &saved)) in self.inputs.iter().zip(&self.saved_versions).enumerate() {
            let now = input.version();
            if now != saved {
                return Err(AutogradError::ModifiedInPlace {
                    op: self.name,
                    location: self.location.to_string(),
                    index,
                    input: format!("{input:?}"),
                    saved,
                    now,
                });
            }
        }
        Ok(())
    }
}

impl Drop for Node {
    // A long chain of nodes would otherwise be dropped recursively, one stack
    // frame per node; unlinking them onto a heap stack keeps deep graphs safe.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.inputs);
        while let Some(var) = stack.pop() {
            if let Some(mut node) = var.into_unique_node() {
                stack.append(&mut node.inputs);
            }
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

static ANOMALY: AtomicBool = AtomicBool::new(false);

/// True when new ops record a graph (outside `no_grad`).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped.
pub struct GradModeGuard {
    previous: bool,
}

impl GradModeGuard {
    pub fn new(enabled: bool) -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
        GradModeGuard { previous }
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` without recording a graph, like `torch.no_grad()`.
///
/// ```
/// use gradlab_autograd::{no_grad, Var};
/// use gradlab_tensor::Tensor;
/// let w = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2]).unwrap());
/// let y = no_grad(|| w.mul(&w).unwrap());
/// assert!(y.is_leaf() && !y.requires_grad());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = GradModeGuard::new(false);
    f()
}

/// Anomaly mode: every forward result and every gradient is checked for NaN
/// and infinity, and the first op that makes one is reported with the place
/// in the user's code that created it (like `torch.autograd.detect_anomaly`).
pub fn set_anomaly_mode(on: bool) {
    ANOMALY.store(on, Ordering::Relaxed);
}

pub fn is_anomaly_mode() -> bool {
    ANOMALY.load(Ordering::Relaxed)
}

/// Runs `f` with anomaly mode on, restoring the previous setting afterwards.
///
/// ```
/// use gradlab_autograd::{detect_anomaly, Var};
/// use gradlab_tensor::Tensor;
/// let x = Var::parameter(Tensor::from_vec(vec![1.0f64, -1.0], [2]).unwrap());
/// let err = detect_anomaly(|| x.exp().and_then(|e| e.add_scalar(-1.0)).and_then(|e| e.log())).unwrap_err();
/// // log(e^-1 - 1) is the first NaN; the message names the op and this file.
/// let message = err.to_string();
/// assert!(message.starts_with("anomaly: Log produced NaN at flat index 1"), "{message}");
/// assert!(message.contains(".rs:"), "{message}");
/// ```
pub fn detect_anomaly<R>(f: impl FnOnce() -> R) -> R {
    let previous = ANOMALY.swap(true, Ordering::Relaxed);
    let r = f();
    ANOMALY.store(previous, Ordering::Relaxed);
    r
}

/// Describes the first non-finite value in `t`, if any.
pub(crate) fn non_finite(t: &Tensor) -> Option<String> {
    if !t.dtype().is_float() {
        return None;
    }
    let values = t.to_vec_f64().ok()?;
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| format!("{} at flat index {i} of a {} tensor", values[i], t.shape()))
}

pub(crate) fn check_forward(
    name: &'static str,
    location: &'static Location<'static>,
    out: &Tensor,
) -> Result<()> {
    if is_anomaly_mode() {
        if let Some(what) = non_finite(out) {
            return Err(AutogradError::Anomaly {
                op: name.trim_end_matches("Backward").to_string(),
                phase: "forward result",
                what,
                location: location.to_string(),
            });
        }
    }
    Ok(())
}

/// Wraps an op's forward result in a `Var`, recording a node when grad mode
/// is on and some input requires grad. `site` is where the op was called
/// (and, while profiling, when it started: [`OpSite::caller`]).
pub(crate) fn record(
    output: Tensor,
    inputs: &[&Var],
    op: impl BackwardOp + 'static,
    site: impl Into<OpSite>,
) -> Result<Var> {
    let site = site.into();
    let location = site.location;
    check_forward(op.name(), location, &output)?;
    let needs_grad = is_grad_enabled() && inputs.iter().any(|v| v.requires_grad());
    if !needs_grad {
        return Ok(Var::constant(output));
    }
    let held_by_op = crate::profile::is_active().then(|| op.saved_tensors());
    let node = Node {
        name: op.name(),
        op: Mutex::new(Some(Box::new(op))),
        inputs: inputs.iter().map(|v| (*v).clone()).collect(),
        saved_versions: inputs.iter().map(|v| v.version()).collect(),
        location,
    };
    let var = Var::from_node(output, node);
    if let Some(held_by_op) = held_by_op {
        crate::profile::hook::recorded(&var, held_by_op, site.started);
    }
    Ok(var)
}

impl Var {
    /// Records a user-defined op (like `torch.autograd.Function`): `output`
    /// is its forward result, computed by the caller from `inputs`, and
    /// `op` its backward rule. Checked by [`crate::gradcheck()`] like any
    /// built-in op; when `op` also implements [`BackwardOp::forward`],
    /// gradcheck's localisation can check this node alone and name it when
    /// its backward is wrong (see [the module](mod@crate::gradcheck)).
    ///
    /// ```
    /// use gradlab_autograd::{gradcheck, BackwardOp, GradcheckOptions, Result, Var};
    /// use gradlab_tensor::Tensor;
    ///
    /// /// `x³`, with its derivative `3x²` written by hand.
    /// struct CubeBackward;
    /// impl BackwardOp for CubeBackward {
    ///     fn name(&self) -> &'static str {
    ///         "CubeBackward"
    ///     }
    ///     fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
    ///         let x = &inputs[0];
    ///         Ok(vec![Some(grad.mul(&x.mul(x)?.mul_scalar(3.0)?)?)])
    ///     }
    /// }
    /// fn cube(x: &Var) -> Result<Var> {
    ///     let d = x.data();
    ///     Var::from_op(d.mul(&d)?.mul(&d)?, &[x], CubeBackward)
    /// }
    ///
    /// let x = Tensor::from_vec(vec![0.5f64, -2.0], [2]).unwrap();
    /// let report = gradcheck(|v: &[Var]| cube(&v[0]), &[x], GradcheckOptions::default()).unwrap();
    /// assert!(report.passed(), "{report}");
    /// ```
    #[track_caller]
    pub fn from_op(output: Tensor, inputs: &[&Var], op: impl BackwardOp + 'static) -> Result<Var> {
        record(output, inputs, op, Location::caller())
    }
}

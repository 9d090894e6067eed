//! `Var`: a tensor with a place in the autograd graph.

use crate::graph::Node;
use gradlab_tensor::{DType, Device, Shape, Tensor};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A gradient hook: sees the gradient flowing into a `Var` and may return a
/// replacement.
pub type GradHook = Box<dyn Fn(&Tensor) -> Option<Tensor> + Send + Sync>;

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

pub(crate) struct VarInner {
    pub(crate) id: usize,
    data: RwLock<Tensor>,
    /// Bumped by every in-place change of `data`; nodes record it for their
    /// inputs and backward refuses to run on a changed one.
    version: AtomicU64,
    pub(crate) requires_grad: bool,
    pub(crate) node: Option<Arc<Node>>,
    pub(crate) grad: Mutex<Option<Var>>,
    pub(crate) retain_grad: AtomicBool,
    pub(crate) hooks: Mutex<Vec<GradHook>>,
    pub(crate) name: Mutex<Option<String>>,
}

/// A tensor that may record the operations applied to it.
///
/// A *leaf* is created by the user ([`Var::parameter`] / [`Var::constant`]);
/// every op on vars returns a new `Var` whose node remembers its inputs and
/// its backward rule. Cloning a `Var` is cheap and keeps its identity.
///
/// ```
/// use gradlab_autograd::Var;
/// use gradlab_tensor::Tensor;
/// let x = Var::parameter(Tensor::from_vec(vec![3.0f64], [1]).unwrap());
/// let y = x.mul(&x).unwrap().sum_all().unwrap(); // y = x²
/// y.backward().unwrap();
/// assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![6.0]);
/// ```
#[derive(Clone)]
pub struct Var {
    pub(crate) inner: Arc<VarInner>,
}

impl Var {
    fn make(data: Tensor, requires_grad: bool, node: Option<Arc<Node>>) -> Var {
        Var {
            inner: Arc::new(VarInner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                data: RwLock::new(data),
                version: AtomicU64::new(0),
                requires_grad,
                node,
                grad: Mutex::new(None),
                retain_grad: AtomicBool::new(false),
                hooks: Mutex::new(Vec::new()),
                name: Mutex::new(None),
            }),
        }
    }

    /// A leaf that does not require grad.
    pub fn constant(data: Tensor) -> Var {
        Var::make(data, false, None)
    }

    /// A leaf that requires grad: gradients accumulate into [`Var::grad`].
    /// PyTorch's `torch.tensor(data, requires_grad=True)`; also spelled
    /// `tensor.requires_grad_()` ([`crate::RequiresGrad`]).
    pub fn parameter(data: Tensor) -> Var {
        Var::make(data, true, None)
    }

    /// A named leaf that requires grad (names show in graph exports).
    pub fn named_parameter(data: Tensor, name: impl Into<String>) -> Var {
        let v = Var::parameter(data);
        v.set_name(name);
        v
    }

    /// A leaf requiring grad or not: `torch.tensor(data, requires_grad=...)`.
    pub fn leaf(data: Tensor, requires_grad: bool) -> Var {
        Var::make(data, requires_grad, None)
    }

    pub(crate) fn from_node(data: Tensor, node: Node) -> Var {
        Var::make(data, true, Some(Arc::new(node)))
    }

    /// Takes this var's node if this was the last handle to both (used to
    /// drop long graphs without recursion).
    pub(crate) fn into_unique_node(self) -> Option<Node> {
        let inner = Arc::try_unwrap(self.inner).ok()?;
        let VarInner { node, .. } = inner;
        Arc::try_unwrap(node?).ok()
    }

    /// A process-unique id (stable across clones).
    pub fn id(&self) -> usize {
        self.inner.id
    }

    /// The value (a cheap clone sharing storage).
    pub fn data(&self) -> Tensor {
        self.inner.data.read().expect("var data lock").clone()
    }

    /// Replaces the value outside the graph (as optimizers do), counting
    /// one in-place change ([`Var::version`]).
    ///
    /// A graph recorded earlier saw the old value: running `backward`
    /// through a node that used this var is then an error (as in PyTorch),
    /// not a gradient computed from the new value.
    ///
    /// ```
    /// use gradlab_autograd::Var;
    /// use gradlab_tensor::Tensor;
    /// let w = Var::parameter(Tensor::from_vec(vec![2.0f64], [1]).unwrap());
    /// let y = w.mul(&w).unwrap().sum_all().unwrap();
    /// w.set_data(Tensor::from_vec(vec![5.0f64], [1]).unwrap());
    /// let err = y.backward().unwrap_err().to_string();
    /// assert!(err.contains("modified in place"), "{err}");
    /// ```
    pub fn set_data(&self, data: Tensor) {
        let mut slot = self.inner.data.write().expect("var data lock");
        *slot = data;
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// Mutates the value in place, outside the graph, counting one in-place
    /// change as [`Var::set_data`] does.
    pub fn update_data<R>(&self, f: impl FnOnce(&mut Tensor) -> R) -> R {
        let mut slot = self.inner.data.write().expect("var data lock");
        // Counted before `f` runs: even an update that fails half-way may
        // have changed the value.
        self.inner.version.fetch_add(1, Ordering::Release);
        f(&mut slot)
    }

    /// How many times the value was changed in place (`set_data`,
    /// `update_data`, an optimizer step) since the var was created.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    pub fn shape(&self) -> Shape {
        self.data().shape().clone()
    }
    pub fn dims(&self) -> Vec<usize> {
        self.data().dims().to_vec()
    }
    pub fn rank(&self) -> usize {
        self.data().rank()
    }
    pub fn dtype(&self) -> DType {
        self.data().dtype()
    }
    pub fn device(&self) -> Device {
        self.data().device()
    }

    /// Whether gradients flow to this var (PyTorch's `t.requires_grad`).
    /// To make a tensor require grad, wrap it with [`Var::parameter`] or
    /// call `tensor.requires_grad_()` ([`crate::RequiresGrad`]).
    pub fn requires_grad(&self) -> bool {
        self.inner.requires_grad
    }
    /// True for vars created by the user rather than by an op.
    pub fn is_leaf(&self) -> bool {
        self.inner.node.is_none()
    }
    /// The node that produced this var (None for leaves).
    pub fn node(&self) -> Option<&Arc<Node>> {
        self.inner.node.as_ref()
    }
    /// The op name of this var's node, e.g. `Some("AddBackward")`.
    pub fn op_name(&self) -> Option<&'static str> {
        self.inner.node.as_ref().map(|n| n.name)
    }

    /// The accumulated gradient, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.grad_var().map(|g| g.data())
    }

    /// The accumulated gradient as a `Var` (with a graph when it was
    /// computed with `create_graph`).
    pub fn grad_var(&self) -> Option<Var> {
        self.inner.grad.lock().expect("grad lock").clone()
    }

    pub fn set_grad(&self, grad: Option<Var>) {
        *self.inner.grad.lock().expect("grad lock") = grad;
    }

    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// Keeps the gradient of a non-leaf var after backward (leaves always keep theirs).
    ///
    /// ```
    /// use gradlab_autograd::Var;
    /// use gradlab_tensor::Tensor;
    /// let x = Var::parameter(Tensor::from_vec(vec![2.0f64], [1]).unwrap());
    /// let h = x.mul_scalar(3.0).unwrap();
    /// h.retain_grad();
    /// h.mul(&h).unwrap().sum_all().unwrap().backward().unwrap();
    /// assert_eq!(h.grad().unwrap().to_vec::<f64>().unwrap(), vec![12.0]); // 2h
    /// ```
    pub fn retain_grad(&self) {
        self.inner.retain_grad.store(true, Ordering::Relaxed);
    }

    /// Registers a hook that sees this var's gradient when it is computed and
    /// may replace it (return `Some(new)`); hooks run in registration order.
    /// A replacement flows on to everything below this var.
    ///
    /// ```
    /// use gradlab_autograd::Var;
    /// use gradlab_tensor::Tensor;
    /// let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2]).unwrap());
    /// let h = x.mul_scalar(3.0).unwrap();
    /// h.register_hook(|g| Some(g.mul_scalar(0.5).unwrap())); // halve dL/dh
    /// h.sum_all().unwrap().backward().unwrap();
    /// assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![1.5, 1.5]);
    /// ```
    pub fn register_hook(&self, hook: impl Fn(&Tensor) -> Option<Tensor> + Send + Sync + 'static) {
        self.inner
            .hooks
            .lock()
            .expect("hooks lock")
            .push(Box::new(hook));
    }

    pub fn name(&self) -> Option<String> {
        self.inner.name.lock().expect("name lock").clone()
    }
    pub fn set_name(&self, name: impl Into<String>) {
        *self.inner.name.lock().expect("name lock") = Some(name.into());
    }

    /// The same value, cut from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.data())
    }

    /// The value as one f64 (for scalars such as a loss).
    pub fn item(&self) -> crate::Result<f64> {
        Ok(self.data().item_f64()?)
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.data();
        write!(
            f,
            "Var(#{}, shape={}, dtype={}",
            self.id(),
            data.shape(),
            data.dtype()
        )?;
        if let Some(op) = self.op_name() {
            write!(f, ", op={op}")?;
        } else if self.requires_grad() {
            write!(f, ", leaf")?;
        }
        if let Some(name) = self.name() {
            write!(f, ", name={name}")?;
        }
        write!(f, ")")
    }
}

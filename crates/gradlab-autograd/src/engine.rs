//! The backward pass: topological order without recursion, gradient
//! accumulation, hooks, trace and anomaly checks.

use crate::graph::{non_finite, GradModeGuard};
use crate::trace::{self, TraceEvent};
use crate::{AutogradError, Result, Var};
use gradlab_tensor::Tensor;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// What `backward` keeps and records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackwardOptions {
    /// Keep the graph so that backward can run through it again.
    pub retain_graph: bool,
    /// Record the backward computation itself, so that the gradients can be
    /// differentiated again (implies keeping the graph).
    pub create_graph: bool,
}

/// Vars reachable from `root` through vars that require grad, ordered so that
/// every var comes before all of its inputs (root first). Iterative DFS: a
/// chain of any length fits.
///
/// ```
/// use gradlab_autograd::{topological_order, Var};
/// use gradlab_tensor::Tensor;
/// let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2]).unwrap());
/// let y = x.exp().unwrap().sum_all().unwrap();
/// let ops: Vec<Option<&str>> = topological_order(&y).iter().map(|v| v.op_name()).collect();
/// // The root first, the leaf x (no op) last: the order backward runs in.
/// assert_eq!(ops, [Some("SumBackward"), Some("ExpBackward"), None]);
/// ```
pub fn topological_order(root: &Var) -> Vec<Var> {
    let mut post = Vec::new();
    let mut visited = HashSet::new();
    let mut stack: Vec<(Var, usize)> = vec![(root.clone(), 0)];
    visited.insert(root.id());
    while let Some((var, next)) = stack.last_mut() {
        let child = var.node().and_then(|n| n.inputs.get(*next)).cloned();
        *next += 1;
        match child {
            Some(c) => {
                if c.requires_grad() && visited.insert(c.id()) {
                    stack.push((c, 0));
                }
            }
            None => {
                let (v, _) = stack.pop().expect("stack is not empty");
                post.push(v);
            }
        }
    }
    post.reverse();
    post
}

fn accumulate(map: &mut HashMap<usize, Var>, id: usize, g: Var) -> Result<()> {
    let merged = match map.remove(&id) {
        Some(old) => old.add(&g)?,
        None => g,
    };
    map.insert(id, merged);
    Ok(())
}

fn apply_hooks(var: &Var, mut g: Var) -> Result<Var> {
    let hooks = var.inner.hooks.lock().expect("hooks lock");
    for hook in hooks.iter() {
        if let Some(replacement) = hook(&g.data()) {
            if replacement.shape() != g.data().shape() || replacement.dtype() != g.dtype() {
                return Err(AutogradError::Backward(format!(
                    "a hook on {var:?} replaced a {} {} gradient by a {} {} one",
                    g.dtype(),
                    g.shape(),
                    replacement.dtype(),
                    replacement.shape()
                )));
            }
            g = Var::constant(replacement);
        }
    }
    Ok(g)
}

/// Runs the backward pass from `root` seeded with `seed`. Returns the
/// gradients of the vars listed in `capture`; when `into_leaves`, also
/// accumulates into `.grad` of leaves (and of vars that retain grad).
pub(crate) fn run_backward(
    root: &Var,
    seed: Var,
    opts: BackwardOptions,
    capture: &[usize],
    into_leaves: bool,
) -> Result<HashMap<usize, Var>> {
    if !root.requires_grad() {
        return Err(AutogradError::Backward(format!(
            "{root:?} does not require grad: no leaf it depends on was created with Var::parameter"
        )));
    }
    let order = topological_order(root);
    // Checked for the whole graph before any gradient is accumulated, so a
    // refused backward leaves every `.grad` as it was.
    for node in order.iter().filter_map(Var::node) {
        node.check_saved_versions()?;
    }
    let total = order.iter().filter(|v| v.node().is_some()).count();
    let profiling = crate::profile::BackwardScope::enter(root);
    let tracing = trace::is_trace_on() || trace::is_capturing();
    let _mode = GradModeGuard::new(opts.create_graph);
    let retain = opts.retain_graph || opts.create_graph;
    let mut grads: HashMap<usize, Var> = HashMap::new();
    grads.insert(root.id(), seed);
    let mut captured = HashMap::new();
    let mut step = 0;
    for var in &order {
        let Some(g) = grads.remove(&var.id()) else {
            continue;
        };
        let g = apply_hooks(var, g)?;
        if capture.contains(&var.id()) {
            captured.insert(var.id(), g.clone());
        }
        let keeps_grad = var.is_leaf()
            || var
                .inner
                .retain_grad
                .load(std::sync::atomic::Ordering::Relaxed);
        if into_leaves && keeps_grad {
            let total_grad = match var.grad_var() {
                Some(old) => old.add(&g)?,
                None => g.clone(),
            };
            var.set_grad(Some(total_grad));
            if var.is_leaf() {
                profiling.leaf_received(var);
            }
        }
        let Some(node) = var.node() else {
            continue;
        };
        step += 1;
        let mut op_slot = node.op.lock().expect("node lock");
        let Some(op) = op_slot.as_ref() else {
            return Err(AutogradError::Backward(format!(
                "the graph through {} (created at {}) was already freed by an earlier backward; \
                 call backward_with(.., BackwardOptions {{ retain_graph: true, .. }}) the first time to run it twice",
                node.name, node.location
            )));
        };
        let began = profiling.node_begin();
        let started = Instant::now();
        // A backward rule is built from ops whose own anomaly checks would
        // blame the rule's source file; the user needs this node and the
        // place their code created it.
        let input_grads = op.backward(&node.inputs, &g).map_err(|e| match e {
            AutogradError::Anomaly { what, .. } => AutogradError::Anomaly {
                op: node.name.to_string(),
                phase: "backward (a gradient)",
                what,
                location: node.location.to_string(),
            },
            other => other,
        })?;
        let elapsed = started.elapsed();
        if input_grads.len() != node.inputs.len() {
            return Err(AutogradError::Backward(format!(
                "{} returned {} gradients for {} inputs",
                node.name,
                input_grads.len(),
                node.inputs.len()
            )));
        }
        let mut norms = Vec::with_capacity(input_grads.len());
        let mut produced = Vec::new();
        let keep_produced = profiling.wants_gradients();
        for (input, gi) in node.inputs.iter().zip(input_grads) {
            let gi = gi.filter(|_| input.requires_grad());
            if let Some(gi) = &gi {
                let (gd, id) = (gi.data(), input.data());
                if gd.shape() != id.shape() {
                    return Err(AutogradError::Backward(format!(
                        "{} produced a gradient of shape {} for an input of shape {}",
                        node.name,
                        gd.shape(),
                        id.shape()
                    )));
                }
                if crate::is_anomaly_mode() {
                    if let Some(what) = non_finite(&gd) {
                        return Err(AutogradError::Anomaly {
                            op: node.name.to_string(),
                            phase: "backward (a gradient)",
                            what,
                            location: node.location.to_string(),
                        });
                    }
                }
            }
            if tracing {
                norms.push(gi.as_ref().and_then(|g| l2_norm(&g.data())));
            }
            if let Some(gi) = gi {
                if keep_produced {
                    produced.push(gi.clone());
                }
                accumulate(&mut grads, input.id(), gi)?;
            }
        }
        profiling.node_end(var, began, &produced);
        if tracing {
            trace::emit(TraceEvent {
                step,
                total,
                var_id: var.id(),
                op: node.name,
                location: node.location.to_string(),
                input_shapes: node.inputs.iter().map(|v| v.dims()).collect(),
                output_shape: var.dims(),
                elapsed,
                grad_norms: norms,
            });
        }
        if !retain {
            *op_slot = None;
        }
    }
    profiling.finish(&order, into_leaves);
    Ok(captured)
}

fn l2_norm(t: &Tensor) -> Option<f64> {
    Some(
        t.to_vec_f64()
            .ok()?
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt(),
    )
}

fn seed_for(root: &Var, grad: Option<&Tensor>) -> Result<Var> {
    let data = root.data();
    match grad {
        Some(g) => {
            if g.shape() != data.shape() || g.dtype() != data.dtype() {
                return Err(AutogradError::Backward(format!(
                    "the output gradient is {} {} but the output is {} {}",
                    g.dtype(),
                    g.shape(),
                    data.dtype(),
                    data.shape()
                )));
            }
            Ok(Var::constant(g.clone()))
        }
        None if data.numel() == 1 => Ok(Var::constant(data.ones_like()?)),
        None => Err(AutogradError::Backward(format!(
            "the output has shape {}: backward() without an output gradient needs a single-element output (a loss)",
            data.shape()
        ))),
    }
}

impl Var {
    /// Computes the gradient of this (single-element) var with respect to
    /// every leaf that requires grad, accumulating into their `.grad`, and
    /// frees the graph.
    pub fn backward(&self) -> Result<()> {
        self.backward_with(None, BackwardOptions::default())
    }

    /// `backward` with an explicit output gradient (any shape) and options.
    ///
    /// ```
    /// use gradlab_autograd::{BackwardOptions, Var};
    /// use gradlab_tensor::Tensor;
    /// let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2]).unwrap());
    /// let y = x.mul(&x).unwrap(); // not a scalar: give dL/dy
    /// let dy = Tensor::from_vec(vec![1.0f64, 10.0], [2]).unwrap();
    /// let keep = BackwardOptions { retain_graph: true, create_graph: false };
    /// y.backward_with(Some(&dy), keep).unwrap();
    /// y.backward_with(Some(&dy), BackwardOptions::default()).unwrap(); // the graph was kept
    /// // Twice 2x * dy, accumulated.
    /// assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![4.0, 80.0]);
    /// ```
    pub fn backward_with(&self, grad: Option<&Tensor>, opts: BackwardOptions) -> Result<()> {
        let seed = seed_for(self, grad)?;
        run_backward(self, seed, opts, &[], true).map(|_| ())
    }
}

/// The gradients of `output` with respect to `inputs`, returned rather than
/// accumulated into `.grad` (like `torch.autograd.grad`). With
/// `create_graph`, the results are themselves differentiable.
///
/// ```
/// use gradlab_autograd::{grad, BackwardOptions, Var};
/// use gradlab_tensor::Tensor;
/// // y = x³: dy/dx = 3x², d²y/dx² = 6x, at x = 2.
/// let x = Var::parameter(Tensor::from_vec(vec![2.0f64], [1]).unwrap());
/// let y = x.powf(3.0).unwrap().sum_all().unwrap();
/// let keep = BackwardOptions { retain_graph: true, create_graph: true };
/// let dy = grad(&y, &[&x], None, keep).unwrap()[0].clone().unwrap();
/// assert_eq!(dy.item().unwrap(), 12.0);
/// let d2y = grad(&dy.sum_all().unwrap(), &[&x], None, BackwardOptions::default()).unwrap();
/// assert_eq!(d2y[0].as_ref().unwrap().item().unwrap(), 12.0);
/// assert!(x.grad().is_none()); // returned, not accumulated
/// ```
pub fn grad(
    output: &Var,
    inputs: &[&Var],
    grad_output: Option<&Tensor>,
    opts: BackwardOptions,
) -> Result<Vec<Option<Var>>> {
    let seed = seed_for(output, grad_output)?;
    let ids: Vec<usize> = inputs.iter().map(|v| v.id()).collect();
    let mut captured = run_backward(output, seed, opts, &ids, false)?;
    Ok(ids.iter().map(|id| captured.remove(id)).collect())
}

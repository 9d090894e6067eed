//! What the profiler hands back: one [`StepProfile`] per training step,
//! each a list of [`NodeProfile`]s pairing a node's forward with its
//! backward, and the step's memory, gradients and warnings.

use super::stats::ValueStats;
use crate::dot::RecordedGraph;
use gradlab_tensor::backend::cost::Cost;
use gradlab_tensor::backend::meter::KernelCall;
use serde::Serialize;
use std::fmt;

/// The kernels of one primitive inside a phase of a node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelTotal {
    /// The primitive, e.g. `"conv2d_backward_weight"`.
    pub primitive: &'static str,
    pub calls: usize,
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
}

/// Adds calls up by primitive, in the order each primitive first ran.
pub(crate) fn kernel_totals(calls: &[KernelCall]) -> Vec<KernelTotal> {
    let mut totals: Vec<KernelTotal> = Vec::new();
    for call in calls {
        let name = call.primitive.name();
        let total = match totals.iter_mut().find(|t| t.primitive == name) {
            Some(t) => t,
            None => {
                totals.push(KernelTotal {
                    primitive: name,
                    calls: 0,
                    seconds: 0.0,
                    flops: 0.0,
                    bytes: 0.0,
                });
                totals.last_mut().expect("just pushed")
            }
        };
        total.calls += 1;
        total.seconds += call.seconds;
        total.flops += call.cost.flops;
        total.bytes += call.cost.bytes;
    }
    totals
}

/// The forward or the backward of one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Phase {
    /// Wall time: for a forward, from the op's call to its recording; for
    /// a backward, the rule and the accumulation of the gradients it made.
    pub seconds: f64,
    /// FLOPs and bytes of the kernels it ran (from the primitives' cost
    /// formulas, [`gradlab_tensor::backend::cost`]).
    pub flops: f64,
    pub bytes: f64,
    /// Those kernels, by primitive.
    pub kernels: Vec<KernelTotal>,
}

impl Phase {
    pub(crate) fn new(seconds: f64, calls: &[KernelCall]) -> Phase {
        let cost: Cost = calls.iter().map(|c| c.cost).sum();
        Phase {
            seconds,
            flops: cost.flops,
            bytes: cost.bytes,
            kernels: kernel_totals(calls),
        }
    }

    /// Achieved GFLOP/s (`None` for a phase without time).
    pub fn gflops(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.flops / self.seconds / 1e9)
    }

    /// Achieved GB/s of compulsory traffic.
    pub fn gbps(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.bytes / self.seconds / 1e9)
    }

    /// FLOPs per byte.
    pub fn intensity(&self) -> Option<f64> {
        (self.bytes > 0.0).then(|| self.flops / self.bytes)
    }
}

/// One node of the step: its forward op and its backward, paired.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeProfile {
    /// Position in the order the forward recorded the nodes (nodes first
    /// seen by the backward come after those).
    pub index: usize,
    /// The id of the var the node produced ([`crate::Var::id`]).
    pub var_id: usize,
    /// The backward op's name, e.g. `"Conv2dBackward"`.
    pub op: &'static str,
    /// The layer it was recorded in ([`super::layer`]), or the layer its
    /// named parameters belong to (`conv1` for `conv1.weight`).
    pub layer: Option<String>,
    /// Where in the user's code the op was called.
    pub location: String,
    pub input_shapes: Vec<Vec<usize>>,
    pub output_shape: Vec<usize>,
    pub dtype: String,
    pub device: String,
    /// The backend its kernels ran on (`cpu`, `reference`, `cuda`).
    pub backend: String,
    /// `None` when the op ran before profiling started.
    pub forward: Option<Phase>,
    /// `None` when no backward pass reached the node.
    pub backward: Option<Phase>,
    /// Bytes of the distinct buffers the node keeps for its backward: its
    /// inputs and what its op saves (see [`crate::BackwardOp::saved_tensors`]).
    pub saved_bytes: usize,
    /// Of those, the bytes of parameters (which live on without the graph).
    pub saved_parameter_bytes: usize,
    /// Statistics of the output (when inspecting).
    pub activation: Option<ValueStats>,
}

impl NodeProfile {
    /// The op name without `Backward`: `Conv2d`, `Relu`.
    pub fn short_op(&self) -> &'static str {
        self.op.strip_suffix("Backward").unwrap_or(self.op)
    }

    /// `conv1 Conv2d`, or `#3 Relu` for a node outside any layer.
    pub fn title(&self) -> String {
        match &self.layer {
            Some(layer) => format!("{layer} {}", self.short_op()),
            None => format!("#{} {}", self.index, self.short_op()),
        }
    }

    pub fn forward_seconds(&self) -> f64 {
        self.forward.as_ref().map_or(0.0, |p| p.seconds)
    }

    pub fn backward_seconds(&self) -> f64 {
        self.backward.as_ref().map_or(0.0, |p| p.seconds)
    }

    /// Forward and backward together.
    pub fn seconds(&self) -> f64 {
        self.forward_seconds() + self.backward_seconds()
    }

    /// FLOPs and bytes of forward and backward together.
    pub fn cost(&self) -> Cost {
        [&self.forward, &self.backward]
            .into_iter()
            .flatten()
            .map(|p| Cost::new(p.flops, p.bytes))
            .sum()
    }
}

/// A parameter's gradient after a backward pass.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParameterGradient {
    pub name: String,
    pub shape: Vec<usize>,
    /// `None` when the parameter received no gradient.
    pub norm: Option<f64>,
    pub max_abs: Option<f64>,
}

/// Something that deserves a look.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// A parameter that received no gradient: unused, or the graph was
    /// cut between it and the loss.
    NoGradient {
        parameter: String,
        /// The recorded op that used it, when one did (the cut is below it).
        used_by: Option<String>,
    },
    /// A gradient that is exactly zero everywhere.
    ZeroGradient { parameter: String },
    /// NaN or infinity in a node's output or in a gradient it produced
    /// (the first such node of the forward and of the backward).
    NonFinite {
        node: String,
        location: String,
        phase: &'static str,
        count: usize,
    },
    /// NaN or infinity in a parameter's gradient.
    NonFiniteGradient { parameter: String, count: usize },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NoGradient {
                parameter,
                used_by: Some(op),
            } => write!(
                f,
                "{parameter} received no gradient: it was used by {op}, but the loss does not depend on that op (the graph was cut, e.g. by detach or no_grad)"
            ),
            Warning::NoGradient {
                parameter,
                used_by: None,
            } => write!(
                f,
                "{parameter} received no gradient: no recorded op of this step used it"
            ),
            Warning::ZeroGradient { parameter } => {
                write!(f, "{parameter}: the gradient is exactly zero everywhere")
            }
            Warning::NonFinite {
                node,
                location,
                phase,
                count,
            } => write!(
                f,
                "{node} (created at {location}): {count} NaN/infinite values in its {phase}"
            ),
            Warning::NonFiniteGradient { parameter, count } => write!(
                f,
                "{parameter}: {count} NaN/infinite values in its gradient"
            ),
        }
    }
}

/// Kernels that ran in the step outside any recorded op (an optimizer's
/// update, tensor arithmetic on plain tensors, gradient bookkeeping).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outside {
    pub kernels: Vec<KernelTotal>,
    pub seconds: f64,
}

/// One training step: the ops from its first forward op to the next
/// step's, with every backward pass between.
#[derive(Clone, Debug, Serialize)]
pub struct StepProfile {
    pub nodes: Vec<NodeProfile>,
    pub outside: Outside,
    /// Wall time of the whole step, the profiler's own work included.
    pub wall_seconds: f64,
    /// Time spent in the profiler's bookkeeping and inspection: not part
    /// of any node, and left out of [`StepProfile::seconds`].
    pub profiler_seconds: f64,
    pub backward_passes: usize,
    /// The most bytes the graph held for backward at once (distinct
    /// buffers; parameters included), and the same without parameters.
    pub saved_peak_bytes: usize,
    pub saved_peak_activation_bytes: usize,
    pub parameters: Vec<ParameterGradient>,
    pub warnings: Vec<Warning>,
    /// The graph the (first) backward pass ran through.
    #[serde(skip)]
    pub graph: Option<RecordedGraph>,
}

impl StepProfile {
    /// The step's own time: wall time less the profiler's.
    pub fn seconds(&self) -> f64 {
        (self.wall_seconds - self.profiler_seconds).max(0.0)
    }

    /// Time inside nodes (forward and backward).
    pub fn node_seconds(&self) -> f64 {
        self.nodes.iter().map(NodeProfile::seconds).sum()
    }
}

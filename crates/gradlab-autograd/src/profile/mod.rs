//! Where the time and memory of a training step go, node by node.
//!
//! [`profile`] runs a closure (one or more training steps) with the
//! profiler on and returns, besides the closure's result, a [`Profile`]:
//! for every node of the graph, its forward op and its backward paired
//! ([`NodeProfile`]: op, layer, call site, shapes, dtype, device, backend,
//! wall time of each phase, the FLOPs and bytes of the kernels each ran,
//! the bytes the node holds for its backward), and for every step the
//! peak of that saved memory, each parameter's gradient norm and
//! [`Warning`]s: a parameter that received no gradient, a gradient that is
//! zero everywhere or holds NaN or infinity.
//!
//! Inspection ([`ProfileOptions::inspecting`]) adds the activation
//! statistics of every node's output (mean, std, max |x|, share of exact
//! zeros) and names the first node whose output or gradients hold NaN or
//! infinity. It reads every activation and gradient once more, which
//! costs far more than the timing itself (several times the 5% of a step
//! that timing, costs and memory take), so it is off unless asked for.
//!
//! `GRADLAB_PROFILE=1` turns the profiler on for a whole program
//! (`GRADLAB_PROFILE=inspect` with inspection): each step's table is
//! printed to stderr when its backward pass ends.
//!
//! How the numbers are taken:
//! - A forward node's time runs from the op's call to its recording; a
//!   backward node's is its rule plus the accumulation of the gradients it
//!   made. Ops run by a backward rule belong to its node.
//! - FLOPs and bytes come from the kernels: while profiling, every
//!   primitive call is metered ([`gradlab_tensor::backend::meter`]) and
//!   costed by the primitive's formula ([`gradlab_tensor::backend::cost`]).
//!   Kernels run outside any op (an optimizer's update) are listed apart.
//! - A step runs from its first forward op to the next step's first op;
//!   the profiler's own work is timed and left out of it.
//! - On CUDA every kernel is waited for, so times are the device's.
//!
//! When no profile runs, each op pays one thread-local check.
//!
//! ```
//! use gradlab_autograd::profile::{layer, profile, Warning};
//! use gradlab_autograd::Var;
//! use gradlab_tensor::Tensor;
//! let w = Var::named_parameter(Tensor::from_vec(vec![0.5f32; 6], [2, 3]).unwrap(), "fc.weight");
//! let unused = Var::named_parameter(Tensor::from_vec(vec![1.0f32], [1]).unwrap(), "spare");
//! let x = Var::constant(Tensor::from_vec(vec![1.0f32; 12], [4, 3]).unwrap());
//! let (result, report) = profile(|| {
//!     let h = layer("fc", || x.linear(&w, None))?;
//!     let loss = h.relu()?.sum_all()?;
//!     loss.backward()
//! });
//! result.unwrap();
//! let step = &report.steps[0];
//! let ops: Vec<&str> = step.nodes.iter().map(|n| n.op).collect();
//! assert_eq!(ops, ["LinearBackward", "ReluBackward", "SumBackward"]);
//! // Each node has its forward and its backward.
//! assert!(step.nodes.iter().all(|n| n.forward.is_some() && n.backward.is_some()));
//! // The linear layer: 4 x 2 outputs of 3 multiply-adds each.
//! assert_eq!(step.nodes[0].forward.as_ref().unwrap().flops, 2.0 * 4.0 * 3.0 * 2.0);
//! assert_eq!(step.nodes[0].title(), "fc Linear");
//! // `spare` is not declared, so only declared or used parameters are checked:
//! assert!(report.warnings().is_empty());
//! # let _ = unused;
//! ```

mod hooks;
mod memory;
mod report;
mod session;
mod stats;
mod summary;

pub(crate) use hooks::{active as is_active, BackwardScope, OpSite};
pub use report::{
    KernelTotal, NodeProfile, Outside, ParameterGradient, Phase, StepProfile, Warning,
};
pub use stats::{value_stats, ValueStats};
pub use summary::{Bound, DotMetric, NodeSummary, Roof, Summary};

pub(crate) mod hook {
    //! The hooks' entry points for the graph and the engine.
    pub(crate) use super::hooks::recorded;
}

use crate::Var;
use gradlab_tensor::backend::meter;
use session::{Session, Settings};
use std::collections::HashMap;
use std::time::Instant;

/// What to record besides times, costs and saved memory.
#[derive(Clone, Default)]
pub struct ProfileOptions {
    /// Activation statistics of every node's output and a NaN/infinity
    /// check of every gradient: one more pass over each activation and
    /// gradient, timed as the profiler's own work (off by default; see
    /// [`ProfileOptions::inspecting`]).
    pub inspect: bool,
    /// The model's parameters with their names: each is checked for a
    /// gradient after every backward pass, so that one the loss does not
    /// use is reported. Parameters used by recorded ops are checked anyway.
    pub parameters: Vec<(String, Var)>,
}

impl ProfileOptions {
    /// Times, costs and memory only: no pass over the activations (the
    /// default, spelled out).
    pub fn timing_only() -> ProfileOptions {
        ProfileOptions {
            inspect: false,
            ..ProfileOptions::default()
        }
    }

    /// Turns inspection on: activation statistics of every node's output,
    /// and the node that first made NaN or infinity, forward or backward.
    pub fn inspecting(self) -> ProfileOptions {
        ProfileOptions {
            inspect: true,
            ..self
        }
    }

    /// Declares the model's parameters (`Module::parameters()`).
    pub fn parameters(self, parameters: Vec<(String, Var)>) -> ProfileOptions {
        ProfileOptions { parameters, ..self }
    }
}

/// Everything one profiling run recorded.
#[derive(Clone, Debug)]
pub struct Profile {
    /// One per training step.
    pub steps: Vec<StepProfile>,
}

impl Profile {
    /// One row per node, means over the steps.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.steps)
    }

    /// The warnings of every step (each once).
    pub fn warnings(&self) -> Vec<&Warning> {
        let mut all: Vec<&Warning> = Vec::new();
        for w in self.steps.iter().flat_map(|s| &s.warnings) {
            if !all.contains(&w) {
                all.push(w);
            }
        }
        all
    }

    /// The last step's graph as DOT, each op coloured by `metric` (means
    /// over the steps); `None` when no backward pass ran.
    pub fn to_dot(&self, metric: DotMetric) -> Option<String> {
        let last = self.steps.iter().rev().find(|s| s.graph.is_some())?;
        let graph = last.graph.as_ref()?;
        let var_ids: HashMap<usize, usize> =
            last.nodes.iter().map(|n| (n.var_id, n.index)).collect();
        Some(self.summary().to_dot(graph, &var_ids, metric))
    }
}

/// Runs `f` with the profiler on (times, costs, saved memory, gradient
/// norms; no inspection) and returns its result with the profile. See
/// [the module](self).
pub fn profile<R>(f: impl FnOnce() -> R) -> (R, Profile) {
    profile_with(ProfileOptions::default(), f)
}

/// [`profile`] with options.
pub fn profile_with<R>(options: ProfileOptions, f: impl FnOnce() -> R) -> (R, Profile) {
    /// Puts back the thread's previous profiler state, even on a panic.
    struct Restore {
        previous: Option<Option<Session>>,
        was_metering: bool,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.previous.take() {
                hooks::install(previous);
                meter::set_metering(self.was_metering);
            }
        }
    }
    let was_metering = meter::is_metering();
    let settings = Settings {
        inspect: options.inspect,
        parameters: options.parameters,
        print_steps: false,
    };
    let mut restore = Restore {
        previous: Some(hooks::install(Some(Session::new(settings)))),
        was_metering,
    };
    meter::set_metering(true);
    let result = f();
    let end = Instant::now();
    let session = hooks::install(None).expect("the session installed above");
    let steps = session.into_steps(end);
    let previous = restore.previous.take().expect("not restored yet");
    hooks::install(previous);
    meter::set_metering(was_metering);
    (result, Profile { steps })
}

/// Runs `f` as the layer `name`: nodes recorded inside are labelled with
/// it (`block1.conv` inside `block1`). Without a profile it only runs `f`.
pub fn layer<R>(name: &str, f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            hooks::leave_layer();
        }
    }
    let _leave = hooks::enter_layer(name).then_some(Leave);
    f()
}

/// True while a profile records on this thread.
pub fn is_profiling() -> bool {
    hooks::active()
}

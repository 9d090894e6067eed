//! The profiler's state on one thread while it runs, and how each event of
//! the forward and backward passes lands in it.
//!
//! Time is accounted so that nothing is counted twice: every hook notes
//! when it handed control back (`boundary`), a forward node's time starts
//! no earlier than that, and the hooks' own work is added to the step's
//! `profiler_seconds` instead of to any node.

use super::memory::{distinct, Held, SavedMemory};
use super::report::{
    kernel_totals, NodeProfile, Outside, ParameterGradient, Phase, StepProfile, Warning,
};
use super::stats::{norm_and_max, value_stats};
use crate::dot::RecordedGraph;
use crate::Var;
use gradlab_tensor::backend::meter::{self, KernelCall};
use gradlab_tensor::Tensor;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// What a profiling run records besides times and costs.
#[derive(Clone, Default)]
pub(crate) struct Settings {
    pub inspect: bool,
    pub parameters: Vec<(String, Var)>,
    /// Print each step to stderr when its backward ends (`GRADLAB_PROFILE=1`).
    pub print_steps: bool,
}

/// The step being recorded.
struct Step {
    start: Instant,
    nodes: Vec<NodeProfile>,
    index_of: HashMap<usize, usize>,
    held: HashMap<usize, Vec<Held>>,
    memory: SavedMemory,
    outside: Vec<KernelCall>,
    profiler_seconds: f64,
    boundary: Instant,
    backward_passes: usize,
    received: HashSet<usize>,
    /// Parameters seen as inputs of recorded ops: id -> (var, the op's title).
    used: Vec<(Var, String)>,
    warnings: Vec<Warning>,
    parameters: Vec<ParameterGradient>,
    graph: Option<RecordedGraph>,
    forward_non_finite_seen: bool,
    backward_non_finite_seen: bool,
}

impl Step {
    fn new(start: Instant) -> Step {
        Step {
            start,
            nodes: Vec::new(),
            index_of: HashMap::new(),
            held: HashMap::new(),
            memory: SavedMemory::default(),
            outside: Vec::new(),
            profiler_seconds: 0.0,
            boundary: start,
            backward_passes: 0,
            received: HashSet::new(),
            used: Vec::new(),
            warnings: Vec::new(),
            parameters: Vec::new(),
            graph: None,
            forward_non_finite_seen: false,
            backward_non_finite_seen: false,
        }
    }

    /// Kernels logged since the last node: they ran outside any node.
    fn flush_outside(&mut self) {
        self.outside.extend(meter::take_calls());
    }

    /// Ends a stretch of profiler work that began at `entered`.
    fn hand_back(&mut self, entered: Instant) {
        let now = Instant::now();
        self.profiler_seconds += (now - entered).as_secs_f64();
        self.boundary = now;
    }

    fn finish(self, end: Instant) -> StepProfile {
        let outside_seconds = self.outside.iter().map(|c| c.seconds).sum();
        StepProfile {
            nodes: self.nodes,
            outside: Outside {
                kernels: kernel_totals(&self.outside),
                seconds: outside_seconds,
            },
            wall_seconds: (end - self.start).as_secs_f64(),
            profiler_seconds: self.profiler_seconds,
            backward_passes: self.backward_passes,
            saved_peak_bytes: self.memory.peak,
            saved_peak_activation_bytes: self.memory.activation_peak,
            parameters: self.parameters,
            warnings: self.warnings,
            graph: self.graph,
        }
    }
}

/// The profiler's state on one thread.
pub(crate) struct Session {
    pub settings: Settings,
    pub finished: Vec<StepProfile>,
    step: Step,
    /// Set once a backward pass finished: the next forward op starts a step.
    step_done: bool,
    /// Backward passes running (a backward inside a hook nests).
    in_backward: u32,
    /// Layer names entered with [`super::layer`], outermost first.
    pub layers: Vec<String>,
}

/// The layer a parameter's name places it in: `conv1` for `conv1.weight`.
fn layer_of_parameter(name: &str) -> Option<String> {
    name.rsplit_once('.').map(|(layer, _)| layer.to_string())
}

/// A parameter's display name.
fn parameter_name(var: &Var, declared: &[(String, Var)]) -> String {
    declared
        .iter()
        .find(|(_, p)| p.id() == var.id())
        .map(|(n, _)| n.clone())
        .or_else(|| var.name())
        .unwrap_or_else(|| format!("parameter #{} {:?}", var.id(), var.dims()))
}

impl Session {
    pub fn new(settings: Settings) -> Session {
        let now = Instant::now();
        Session {
            settings,
            finished: Vec::new(),
            step: Step::new(now),
            step_done: false,
            in_backward: 0,
            layers: Vec::new(),
        }
    }

    /// Closes the current step at `end` and opens the next.
    fn next_step(&mut self, end: Instant) {
        let step = std::mem::replace(&mut self.step, Step::new(end));
        let profile = step.finish(end);
        if self.settings.print_steps {
            eprintln!(
                "[profile] step {}\n{}",
                self.finished.len() + 1,
                super::summary::Summary::of(std::slice::from_ref(&profile)).table(None)
            );
            self.finished.clear();
        }
        self.finished.push(profile);
        self.step_done = false;
    }

    /// Everything recorded, the step under way closed at `end`.
    pub fn into_steps(mut self, end: Instant) -> Vec<StepProfile> {
        meter::paused(|| self.step.flush_outside());
        let nonempty = !self.step.nodes.is_empty() || !self.step.outside.is_empty();
        if nonempty || self.finished.is_empty() {
            self.next_step(end);
        }
        self.finished
    }

    /// A forward op begins: the time it starts from, or `None` inside a
    /// backward pass (whose rules' ops belong to the backward node).
    pub fn op_started(&mut self) -> Option<Instant> {
        if self.in_backward > 0 {
            return None;
        }
        let entered = Instant::now();
        if self.step_done {
            self.next_step(entered);
        }
        self.step.flush_outside();
        self.step.hand_back(entered);
        Some(self.step.boundary)
    }

    /// A node was recorded for `var`'s op.
    pub fn recorded(&mut self, var: &Var, held_by_op: Vec<Tensor>, started: Option<Instant>) {
        if self.in_backward > 0 {
            return;
        }
        let entered = Instant::now();
        let calls = meter::take_calls();
        meter::paused(|| self.add_forward_node(entered, var, held_by_op, started, &calls));
        self.step.hand_back(entered);
    }

    fn add_forward_node(
        &mut self,
        entered: Instant,
        var: &Var,
        held_by_op: Vec<Tensor>,
        started: Option<Instant>,
        calls: &[KernelCall],
    ) {
        let node = var.node().expect("a recorded var has a node");
        let kernel_seconds: f64 = calls.iter().map(|c| c.seconds).sum();
        let seconds = match started {
            Some(t) => (entered - t.max(self.step.boundary)).as_secs_f64(),
            // An op recorded through `Var::from_op` computed its output
            // before recording it: its kernels are what can be attributed.
            None => kernel_seconds,
        };
        let inputs = node.inputs();
        let held = distinct(
            inputs
                .iter()
                .map(|v| (v.data(), v.is_leaf() && v.requires_grad()))
                .chain(held_by_op.into_iter().map(|t| (t, false))),
        );
        self.step.memory.hold(&held);
        let layer = self.layers.last().cloned().or_else(|| {
            inputs
                .iter()
                .filter(|v| v.is_leaf() && v.requires_grad())
                .find_map(|v| layer_of_parameter(&parameter_name(v, &self.settings.parameters)))
        });
        let data = var.data();
        let mut profile = NodeProfile {
            index: self.step.nodes.len(),
            var_id: var.id(),
            op: node.name(),
            layer,
            location: node.location().to_string(),
            input_shapes: inputs.iter().map(Var::dims).collect(),
            output_shape: data.dims().to_vec(),
            dtype: data.dtype().to_string(),
            device: data.device().to_string(),
            backend: calls
                .first()
                .map_or_else(|| data.backend().name(), |c| c.backend)
                .to_string(),
            forward: Some(Phase::new(seconds, calls)),
            backward: None,
            saved_bytes: held.iter().map(|h| h.bytes).sum(),
            saved_parameter_bytes: held.iter().filter(|h| h.parameter).map(|h| h.bytes).sum(),
            activation: None,
        };
        if self.settings.inspect {
            profile.activation = value_stats(&data);
            if let Some(s) = &profile.activation {
                if s.non_finite > 0 && !self.step.forward_non_finite_seen {
                    self.step.forward_non_finite_seen = true;
                    self.step.warnings.push(Warning::NonFinite {
                        node: profile.title(),
                        location: profile.location.clone(),
                        phase: "forward output",
                        count: s.non_finite,
                    });
                }
            }
        }
        for input in inputs.iter().filter(|v| v.is_leaf() && v.requires_grad()) {
            if !self.step.used.iter().any(|(v, _)| v.id() == input.id()) {
                let by = format!("{} at {}", profile.title(), profile.location);
                self.step.used.push((input.clone(), by));
            }
        }
        self.step.index_of.insert(var.id(), profile.index);
        self.step.held.insert(var.id(), held);
        self.step.nodes.push(profile);
    }

    /// A backward pass from `root` begins.
    pub fn backward_started(&mut self, root: &Var) {
        self.in_backward += 1;
        if self.in_backward > 1 {
            return;
        }
        let entered = Instant::now();
        meter::paused(|| {
            self.step.flush_outside();
            if self.step.graph.is_none() {
                self.step.graph = Some(RecordedGraph::of(root));
            }
        });
        self.step.hand_back(entered);
    }

    /// A node's backward is about to run: returns its start time.
    pub fn node_backward_begin(&mut self) -> Option<Instant> {
        if self.in_backward != 1 {
            return None;
        }
        let entered = Instant::now();
        self.step.flush_outside();
        self.step.hand_back(entered);
        Some(self.step.boundary)
    }

    /// `var`'s node finished its backward (started at `began`) and produced `grads`.
    pub fn node_backward_end(&mut self, var: &Var, began: Instant, grads: &[Var]) {
        let entered = Instant::now();
        let calls = meter::take_calls();
        let seconds = (entered - began).as_secs_f64();
        meter::paused(|| {
            let index = match self.step.index_of.get(&var.id()) {
                Some(&i) => i,
                None => self.add_unseen_node(var),
            };
            let held = self.step.held.remove(&var.id()).unwrap_or_default();
            self.step.memory.release(&held);
            let inspect = self.settings.inspect;
            let node = &mut self.step.nodes[index];
            node.backward = Some(Phase::new(seconds, &calls));
            if inspect && !self.step.backward_non_finite_seen {
                let bad: usize = grads
                    .iter()
                    .filter_map(|g| value_stats(&g.data()))
                    .map(|s| s.non_finite)
                    .sum();
                if bad > 0 {
                    self.step.backward_non_finite_seen = true;
                    let warning = Warning::NonFinite {
                        node: node.title(),
                        location: node.location.clone(),
                        phase: "backward (the gradients it produced)",
                        count: bad,
                    };
                    self.step.warnings.push(warning);
                }
            }
        });
        self.step.hand_back(entered);
    }

    /// A node the backward reached whose forward was not profiled.
    fn add_unseen_node(&mut self, var: &Var) -> usize {
        let node = var.node().expect("backward runs op nodes");
        let data = var.data();
        let index = self.step.nodes.len();
        self.step.nodes.push(NodeProfile {
            index,
            var_id: var.id(),
            op: node.name(),
            layer: None,
            location: node.location().to_string(),
            input_shapes: node.inputs().iter().map(Var::dims).collect(),
            output_shape: data.dims().to_vec(),
            dtype: data.dtype().to_string(),
            device: data.device().to_string(),
            backend: data.backend().name().to_string(),
            forward: None,
            backward: None,
            saved_bytes: 0,
            saved_parameter_bytes: 0,
            activation: None,
        });
        self.step.index_of.insert(var.id(), index);
        index
    }

    /// A leaf's `.grad` received a gradient.
    pub fn leaf_received(&mut self, var: &Var) {
        self.step.received.insert(var.id());
    }

    /// The backward pass ended (`into_leaves`: it accumulated into `.grad`;
    /// `order`: the vars it ran through).
    pub fn backward_finished(&mut self, order: &[Var], into_leaves: bool) {
        self.in_backward = self.in_backward.saturating_sub(1);
        if self.in_backward > 0 {
            return;
        }
        let entered = Instant::now();
        meter::paused(|| {
            self.step.flush_outside();
            self.step.backward_passes += 1;
            if into_leaves {
                self.check_parameters(order);
            }
        });
        self.step.hand_back(entered);
        self.step_done = true;
        if self.settings.print_steps {
            self.next_step(Instant::now());
        }
    }

    /// Gradient norms of every parameter, and the warnings they call for.
    fn check_parameters(&mut self, order: &[Var]) {
        let mut parameters: Vec<Var> = self
            .settings
            .parameters
            .iter()
            .map(|(_, p)| p.clone())
            .collect();
        let extra = self
            .step
            .used
            .iter()
            .map(|(v, _)| v.clone())
            .chain(order.iter().filter(|v| v.is_leaf()).cloned());
        for v in extra {
            if v.requires_grad() && !parameters.iter().any(|p| p.id() == v.id()) {
                parameters.push(v);
            }
        }
        self.step.parameters.clear();
        for p in &parameters {
            let name = parameter_name(p, &self.settings.parameters);
            let stats = self
                .step
                .received
                .contains(&p.id())
                .then(|| p.grad())
                .flatten()
                .and_then(|g| norm_and_max(&g));
            match stats {
                None => {
                    let used_by = self
                        .step
                        .used
                        .iter()
                        .find(|(v, _)| v.id() == p.id())
                        .map(|(_, by)| by.clone());
                    self.step.warnings.push(Warning::NoGradient {
                        parameter: name.clone(),
                        used_by,
                    });
                }
                Some((_, _, bad)) if bad > 0 => {
                    self.step.warnings.push(Warning::NonFiniteGradient {
                        parameter: name.clone(),
                        count: bad,
                    });
                }
                // A float pattern compares with ==, so -0.0 counts as zero too.
                Some((_, 0.0, _)) => {
                    self.step.warnings.push(Warning::ZeroGradient {
                        parameter: name.clone(),
                    });
                }
                Some(_) => {}
            }
            self.step.parameters.push(ParameterGradient {
                name,
                shape: p.dims(),
                norm: stats.map(|s| s.0),
                max_abs: stats.map(|s| s.1),
            });
        }
    }
}

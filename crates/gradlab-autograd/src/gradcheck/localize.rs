//! Localisation: every node of a recorded graph checked alone.
//!
//! A whole-function check says that some gradient is wrong, not which op
//! made it wrong. Here each node is re-checked on its own, in topological
//! order (inputs before the ops that use them), on the values its inputs
//! had in the recorded run: the node's backward rule, given a random output
//! gradient, against central differences (f64) of the node's forward alone,
//! replayed through [`BackwardOp::forward`]. The first node that disagrees
//! is the first wrong op: everything upstream of it was checked right.

use super::finite::{compare, Plan, Scalar};
use super::report::{write_kinks, InputReport};
use super::GradcheckOptions;
use crate::engine::topological_order;
use crate::graph::{BackwardOp, GradModeGuard};
use crate::{AutogradError, Result, Var};
use gradlab_tensor::{DType, Rng, Tensor};
use std::collections::HashMap;
use std::fmt;

/// What checking one node alone found.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeOutcome {
    /// Its backward agrees with finite differences of its forward on every
    /// checked input (non-differentiable points apart).
    Agrees,
    /// Its backward (or its forward replay) is wrong; the text says how.
    Disagrees(String),
    /// It could not be checked alone; the text says why (typically a
    /// user-defined op without [`BackwardOp::forward`]).
    NotChecked(String),
}

/// One node of the graph, checked alone.
#[derive(Clone, Debug)]
pub struct NodeCheck {
    /// Its position in topological order, from 1 (inputs before users).
    pub number: usize,
    /// The backward op's name, e.g. `"Conv2dBackward"`.
    pub op: &'static str,
    /// Where the user's code called the op (`file:line:column`).
    pub location: String,
    pub input_shapes: Vec<Vec<usize>>,
    pub output_shape: Vec<usize>,
    /// The numbers of the nodes that take this node's output as an input.
    pub feeds: Vec<usize>,
    /// One report per input that requires grad (`input` is the argument position).
    pub inputs: Vec<InputReport>,
    pub outcome: NodeOutcome,
}

impl NodeCheck {
    pub fn agrees(&self) -> bool {
        self.outcome == NodeOutcome::Agrees
    }

    /// The input report to show for this node: the first failing one,
    /// else the one with the largest error.
    pub fn worst_input(&self) -> Option<&InputReport> {
        self.inputs.iter().find(|r| !r.passed).or_else(|| {
            self.inputs
                .iter()
                .max_by(|a, b| a.max_abs_error.total_cmp(&b.max_abs_error))
        })
    }
}

/// Every node of a graph, checked alone ([`localize`]).
#[derive(Clone, Debug)]
pub struct Localization {
    /// In topological order: `nodes[i].number == i + 1`.
    pub nodes: Vec<NodeCheck>,
    /// Whether non-differentiable points counted as failures.
    pub kinks_fail: bool,
}

impl Localization {
    /// The first node (in topological order) whose backward disagrees.
    pub fn first_disagreement(&self) -> Option<&NodeCheck> {
        self.nodes
            .iter()
            .find(|n| matches!(n.outcome, NodeOutcome::Disagrees(_)))
    }

    /// True when every node was checked and agrees.
    pub fn passed(&self) -> bool {
        self.nodes.iter().all(NodeCheck::agrees)
    }

    /// The nodes that could not be checked alone.
    pub fn not_checked(&self) -> impl Iterator<Item = &NodeCheck> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.outcome, NodeOutcome::NotChecked(_)))
    }

    /// Node `number` (from 1).
    pub fn node(&self, number: usize) -> Option<&NodeCheck> {
        number.checked_sub(1).and_then(|i| self.nodes.get(i))
    }
}

/// Checks every node of the graph that produced `root`, alone, on the
/// values of the run that recorded it (see the module docs).
///
/// The graph must be f64 (record it from f64 inputs and parameters) and
/// still hold its backward ops: call it before `backward`, or after a
/// backward with `retain_graph`. Inputs larger than
/// [`GradcheckOptions::node_elements`] are checked on a seeded sample of
/// elements plus random directions.
///
/// ```
/// use gradlab_autograd::{gradcheck::localize, GradcheckOptions, Var};
/// use gradlab_tensor::Tensor;
/// let x = Var::parameter(Tensor::from_vec(vec![0.5f64, -1.0, 2.0], [3]).unwrap());
/// let y = x.tanh().unwrap().mul(&x).unwrap().sum_all().unwrap();
/// let nodes = localize(&y, &GradcheckOptions::default()).unwrap();
/// let ops: Vec<&str> = nodes.nodes.iter().map(|n| n.op).collect();
/// assert_eq!(ops, ["TanhBackward", "MulBackward", "SumBackward"]);
/// assert!(nodes.passed(), "{nodes}");
/// assert_eq!(nodes.nodes[0].feeds, [2]); // tanh(x) feeds the product
/// ```
pub fn localize(root: &Var, opts: &GradcheckOptions) -> Result<Localization> {
    if root.dtype() != DType::F64 {
        return Err(AutogradError::Gradcheck(format!(
            "localisation compares against finite differences in f64, but the graph's output is {}; \
             record the graph from f64 inputs and parameters (Tensor::to_dtype)",
            root.dtype()
        )));
    }
    let mut order = topological_order(root);
    order.reverse();
    let ops: Vec<&Var> = order.iter().filter(|v| v.node().is_some()).collect();
    let number_of: HashMap<usize, usize> = ops
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id(), i + 1))
        .collect();
    let mut feeds: Vec<Vec<usize>> = vec![Vec::new(); ops.len()];
    for (i, var) in ops.iter().enumerate() {
        for input in var.node().map(|n| n.inputs()).unwrap_or(&[]) {
            if let Some(&fed) = number_of.get(&input.id()) {
                if !feeds[fed - 1].contains(&(i + 1)) {
                    feeds[fed - 1].push(i + 1);
                }
            }
        }
    }
    let nodes = ops
        .iter()
        .zip(feeds)
        .enumerate()
        .map(|(i, (var, feeds))| check_node(i + 1, var, feeds, opts))
        .collect();
    Ok(Localization {
        nodes,
        kinks_fail: opts.kinks_fail,
    })
}

/// Checks one node; whatever stops the check becomes its outcome.
fn check_node(number: usize, var: &Var, feeds: Vec<usize>, opts: &GradcheckOptions) -> NodeCheck {
    let node = var.node().expect("only op nodes are checked");
    let mut check = NodeCheck {
        number,
        op: node.name(),
        location: node.location().to_string(),
        input_shapes: node.inputs().iter().map(Var::dims).collect(),
        output_shape: var.dims(),
        feeds,
        inputs: Vec::new(),
        outcome: NodeOutcome::Agrees,
    };
    let slot = node.op.lock().expect("node lock");
    let Some(op) = slot.as_deref() else {
        check.outcome = NodeOutcome::NotChecked(
            "its backward op was freed by an earlier backward pass (check before backward, \
             or run it with retain_graph)"
                .into(),
        );
        return check;
    };
    check.outcome = match compare_node(number, var, op, opts, &mut check.inputs) {
        Ok(outcome) => outcome,
        Err(e) => NodeOutcome::NotChecked(e.to_string()),
    };
    check
}

/// The node's backward against finite differences of its replayed forward.
fn compare_node(
    number: usize,
    var: &Var,
    op: &dyn BackwardOp,
    opts: &GradcheckOptions,
    reports: &mut Vec<InputReport>,
) -> Result<NodeOutcome> {
    let node = var.node().expect("only op nodes are checked");
    let inputs: Vec<Tensor> = node.inputs().iter().map(Var::data).collect();
    if let Some((k, t)) = inputs
        .iter()
        .enumerate()
        .find(|(_, t)| t.dtype().is_float() && t.dtype() != DType::F64)
    {
        return Ok(NodeOutcome::NotChecked(format!(
            "input {k} is {}: localisation runs in f64",
            t.dtype()
        )));
    }
    let recorded = var.data();
    let output_shape = recorded.shape().clone();
    let replay =
        |inputs: &[Tensor]| -> Option<Result<Tensor>> { op.forward(inputs, &output_shape) };
    let base = match replay(&inputs) {
        None => {
            return Ok(NodeOutcome::NotChecked(format!(
                "{} cannot replay its forward (BackwardOp::forward returns None)",
                node.name()
            )))
        }
        Some(result) => result?,
    };
    if let Some(why) = replay_differs(&base, &recorded, opts)? {
        return Ok(NodeOutcome::Disagrees(why));
    }
    let cotangent = Tensor::randn(
        output_shape.clone(),
        0.0,
        1.0,
        DType::F64,
        &mut Rng::new(node_seed(opts.seed, number)),
    );
    let project = |out: &Tensor| -> Result<f64> { Ok(out.mul(&cotangent)?.sum_all()?.item_f64()?) };
    let at_base = project(&base)?;
    let analytic = node_gradients(op, node.inputs(), &cotangent)?;
    for (k, input) in node.inputs().iter().enumerate() {
        if !input.requires_grad() {
            continue;
        }
        let gradient = match &analytic[k] {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; inputs[k].numel()],
        };
        let eval = |perturbed: Tensor| -> Result<f64> {
            let mut args = inputs.clone();
            args[k] = perturbed;
            let out = replay(&args).expect("the op replayed once")?;
            project(&out)
        };
        let scalar = Scalar {
            at_base,
            eval: &eval,
        };
        let plan = Plan::at_most(opts.node_elements, inputs[k].numel());
        let seed = node_seed(opts.seed, number) ^ (k as u64 + 1);
        reports.push(compare(
            k, &inputs[k], &gradient, &scalar, plan, opts, seed,
        )?);
    }
    Ok(match reports.iter().find(|r| !r.passed) {
        Some(r) => NodeOutcome::Disagrees(format!(
            "input {} at {}: analytic {:.6e}, numeric {:.6e}",
            r.input, r.worst, r.analytic, r.numeric
        )),
        None => NodeOutcome::Agrees,
    })
}

/// Runs the node's backward as the engine does (graph recording off), on
/// fresh leaves holding the recorded input values, and checks what it returns.
fn node_gradients(
    op: &dyn BackwardOp,
    inputs: &[Var],
    cotangent: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let _mode = GradModeGuard::new(false);
    let leaves: Vec<Var> = inputs
        .iter()
        .map(|v| Var::leaf(v.data(), v.requires_grad()))
        .collect();
    let grads = op.backward(&leaves, &Var::constant(cotangent.clone()))?;
    if grads.len() != inputs.len() {
        return Err(AutogradError::Backward(format!(
            "{} returned {} gradients for {} inputs",
            op.name(),
            grads.len(),
            inputs.len()
        )));
    }
    grads
        .into_iter()
        .zip(inputs)
        .map(|(g, input)| {
            let g = g.filter(|_| input.requires_grad()).map(|g| g.data());
            match &g {
                Some(g) if g.shape() != input.data().shape() => {
                    Err(AutogradError::Backward(format!(
                        "{} produced a gradient of shape {} for an input of shape {}",
                        op.name(),
                        g.shape(),
                        input.data().shape()
                    )))
                }
                _ => Ok(g.map(|g| g.to_dtype(DType::F64)).transpose()?),
            }
        })
        .collect()
}

/// Why the replay at the recorded inputs is not the recorded output, if it is not.
fn replay_differs(
    replay: &Tensor,
    recorded: &Tensor,
    opts: &GradcheckOptions,
) -> Result<Option<String>> {
    if replay.shape() != recorded.shape() {
        return Ok(Some(format!(
            "its forward replay has shape {}, the recorded output {}",
            replay.shape(),
            recorded.shape()
        )));
    }
    let (a, b) = (replay.to_vec_f64()?, recorded.to_vec_f64()?);
    let worst = a
        .iter()
        .zip(&b)
        .enumerate()
        .filter(|&(_, (&x, &y))| !same_value(x, y, opts))
        .max_by(|(_, (x1, y1)), (_, (x2, y2))| (*x1 - *y1).abs().total_cmp(&(*x2 - *y2).abs()));
    Ok(worst.map(|(j, (x, y))| {
        format!(
            "its forward replay differs from the recorded output: {x:.6e} instead of {y:.6e} at {:?}",
            super::finite::unravel(j, recorded.shape())
        )
    }))
}

/// Equal within the check's tolerance; the same infinity, or NaN on both
/// sides, counts as equal (a max-pool window wholly in the padding is -inf
/// in the recording and in the replay alike).
fn same_value(x: f64, y: f64, opts: &GradcheckOptions) -> bool {
    x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= opts.atol + opts.rtol * y.abs()
}

fn node_seed(seed: u64, number: usize) -> u64 {
    seed ^ (number as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// `[2,3,9,9]`: shapes without spaces, for tables.
pub(crate) fn compact(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(usize::to_string).collect();
    format!("[{}]", inner.join(","))
}

impl fmt::Display for Localization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "each node alone: its backward against central differences of its own forward (f64), on the recorded values"
        )?;
        let header = [
            "node",
            "op",
            "inputs -> output",
            "checked",
            "max abs err",
            "max rel err",
            "worst at",
            "analytic",
            "numeric",
            "kinks",
            "result",
            "call site",
        ];
        let rows: Vec<[String; 12]> = self.nodes.iter().map(row).collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // Text columns align left, numbers right; the call site is last and unpadded.
        let left = [
            false, true, true, true, false, false, true, false, false, false, true, true,
        ];
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else if left[i] {
                    out.push_str(&format!("{cell:<w$}", w = widths[i]));
                } else {
                    out.push_str(&format!("{cell:>w$}", w = widths[i]));
                }
            }
            writeln!(f, "{}", out.trim_end())
        };
        line(f, &header.map(String::from))?;
        for r in &rows {
            line(f, r)?;
        }
        for n in &self.nodes {
            if let NodeOutcome::NotChecked(why) = &n.outcome {
                writeln!(f, "node {} {} not checked: {why}", n.number, n.op)?;
            }
            for r in n.inputs.iter().filter(|r| !r.kinks.is_empty()) {
                let label = format!("{} of node {} {}", r.input, n.number, n.op);
                write_kinks(f, &label, &r.kinks, self.kinks_fail)?;
            }
        }
        match self.first_disagreement() {
            Some(n) => self.describe_disagreement(f, n),
            None => {
                let unchecked = self.not_checked().count();
                let checked = self.nodes.len() - unchecked;
                if unchecked == 0 {
                    let nodes = if checked == 1 { "node" } else { "nodes" };
                    writeln!(f, "every node agrees ({checked} {nodes} checked)")
                } else {
                    writeln!(
                        f,
                        "every checked node agrees ({checked} checked, {unchecked} not checked)"
                    )
                }
            }
        }
    }
}

impl Localization {
    fn describe_disagreement(&self, f: &mut fmt::Formatter<'_>, n: &NodeCheck) -> fmt::Result {
        writeln!(
            f,
            "first node that disagrees: node {} {}, called at {}",
            n.number, n.op, n.location
        )?;
        let inputs: Vec<String> = n.input_shapes.iter().map(|s| format!("{s:?}")).collect();
        writeln!(
            f,
            "  inputs {} -> output {:?}",
            inputs.join(" "),
            n.output_shape
        )?;
        if let NodeOutcome::Disagrees(why) = &n.outcome {
            if n.inputs.iter().all(|r| r.passed) {
                writeln!(f, "  {why}")?;
            }
        }
        for r in n.inputs.iter().filter(|r| !r.passed) {
            let rel = (r.analytic - r.numeric).abs() / r.numeric.abs().max(f64::MIN_POSITIVE);
            writeln!(
                f,
                "  input {}: worst at {}: analytic {:.6e}, numeric {:.6e}, abs err {:.3e}, rel err {:.3e} (checked {})",
                r.input,
                r.worst,
                r.analytic,
                r.numeric,
                (r.analytic - r.numeric).abs(),
                rel,
                r.coverage
            )?;
        }
        if n.feeds.is_empty() {
            writeln!(f, "  feeds no other node (it is the output)")
        } else {
            let users: Vec<String> = n
                .feeds
                .iter()
                .filter_map(|&k| self.node(k))
                .map(|u| format!("node {} {} ({})", u.number, u.op, u.location))
                .collect();
            writeln!(f, "  feeds {}", users.join(", "))
        }
    }
}

/// A node's table row.
fn row(n: &NodeCheck) -> [String; 12] {
    let shapes: Vec<String> = n.input_shapes.iter().map(|s| compact(s)).collect();
    let shapes = format!("{} -> {}", shapes.join(" "), compact(&n.output_shape));
    let checked: Vec<String> = n.inputs.iter().map(|r| r.coverage.to_string()).collect();
    let kinks: usize = n.inputs.iter().map(|r| r.kinks.len()).sum();
    let result = match &n.outcome {
        NodeOutcome::Agrees => "ok",
        NodeOutcome::Disagrees(_) => "FAIL",
        NodeOutcome::NotChecked(_) => "not checked",
    };
    let (abs, rel, worst, analytic, numeric) = match n.worst_input() {
        Some(r) => (
            format!("{:.3e}", r.max_abs_error),
            format!("{:.3e}", r.max_rel_error),
            format!("in{} {}", r.input, r.worst),
            format!("{:.6e}", r.analytic),
            format!("{:.6e}", r.numeric),
        ),
        None => Default::default(),
    };
    [
        n.number.to_string(),
        n.op.to_string(),
        shapes,
        checked.join(", "),
        abs,
        rel,
        worst,
        analytic,
        numeric,
        kinks.to_string(),
        result.to_string(),
        n.location.clone(),
    ]
}

//! Precision drift: the same function run in a low precision (f32) and in
//! f64 from the same inputs, compared node by node, so that a user sees
//! which op loses precision, forward and backward.

use super::localize::compact;
use crate::engine::{grad, topological_order, BackwardOptions};
use crate::{AutogradError, Result, Var};
use gradlab_tensor::{DType, Rng, Tensor};
use std::fmt;

/// One var of the graph: how far its low-precision value and gradient are
/// from the f64 ones.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftRow {
    /// Its position in topological order, from 1 (inputs before users).
    pub number: usize,
    /// The op name for op nodes, else the leaf's name (or `"input k"`).
    pub what: String,
    /// Where the user's code called the op (`None` for leaves).
    pub location: Option<String>,
    pub shape: Vec<usize>,
    /// `||low - high|| / ||high||` of the var's value (2-norms; the
    /// absolute `||low - high||` when the f64 value is all zeros).
    pub output_rel_error: f64,
    /// The same for the gradient of the output with respect to this var.
    pub grad_rel_error: f64,
}

/// Per-node drift of a function between a low precision and f64 ([`drift`]).
#[derive(Clone, Debug)]
pub struct DriftReport {
    /// The low precision the f64 run is compared with.
    pub low: DType,
    /// Every var the output depends on through grad-requiring vars (leaves
    /// that require grad and op outputs), in topological order.
    pub rows: Vec<DriftRow>,
}

impl DriftReport {
    /// The row with the largest output error.
    pub fn worst_output(&self) -> Option<&DriftRow> {
        self.rows
            .iter()
            .max_by(|a, b| a.output_rel_error.total_cmp(&b.output_rel_error))
    }

    /// The row with the largest gradient error.
    pub fn worst_gradient(&self) -> Option<&DriftRow> {
        self.rows
            .iter()
            .max_by(|a, b| a.grad_rel_error.total_cmp(&b.grad_rel_error))
    }
}

/// Runs `f` twice from the same inputs: once with every input in `low`
/// (f32, typically) and once in f64 (the low-precision values, widened
/// exactly, so that only the arithmetic differs), and compares every
/// node's value and gradient. A non-scalar output is reduced with a fixed
/// random cotangent (from `seed`), the same in both runs.
///
/// `f` must build the same graph in both precisions (the same ops in the
/// same order); state it holds apart from its inputs (a model's
/// parameters) must exist in both precisions with equal values.
///
/// ```
/// use gradlab_autograd::{gradcheck::drift, Var};
/// use gradlab_tensor::{DType, Tensor};
/// let x = Tensor::from_vec(vec![0.1f64, 0.2, 0.3], [3]).unwrap();
/// let f = |v: &[Var]| v[0].exp()?.sum_all()?.log();
/// let report = drift(f, &[x.clone()], DType::F32, 0).unwrap();
/// let ops: Vec<&str> = report.rows.iter().map(|r| r.what.as_str()).collect();
/// assert_eq!(ops, ["input 0", "ExpBackward", "SumBackward", "LogBackward"]);
/// assert!(report.rows.iter().all(|r| r.output_rel_error < 1e-6 && r.grad_rel_error < 1e-6));
/// // f64 against itself: nothing drifts.
/// let same = drift(f, &[x], DType::F64, 0).unwrap();
/// assert!(same.rows.iter().all(|r| r.output_rel_error == 0.0 && r.grad_rel_error == 0.0));
/// ```
pub fn drift(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    low: DType,
    seed: u64,
) -> Result<DriftReport> {
    if !low.is_float() {
        return Err(AutogradError::Gradcheck(format!(
            "drift compares float precisions, not {low}"
        )));
    }
    let low_inputs: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(low))
        .collect::<std::result::Result<_, _>>()?;
    let high_inputs: Vec<Tensor> = low_inputs
        .iter()
        .map(|t| t.to_dtype(DType::F64))
        .collect::<std::result::Result<_, _>>()?;
    let low_run = Run::record(&f, &low_inputs, seed, low)?;
    let high_run = Run::record(&f, &high_inputs, seed, low)?;
    if low_run.vars.len() != high_run.vars.len() {
        return Err(AutogradError::Gradcheck(format!(
            "the function built a graph of {} vars in {low} but {} in f64; drift needs the same graph in both",
            low_run.vars.len(),
            high_run.vars.len()
        )));
    }
    let mut rows = Vec::with_capacity(low_run.vars.len());
    for (i, ((lo, lo_grad), (hi, hi_grad))) in low_run
        .vars
        .iter()
        .zip(&low_run.grads)
        .zip(high_run.vars.iter().zip(&high_run.grads))
        .enumerate()
    {
        if lo.op_name() != hi.op_name() || lo.dims() != hi.dims() {
            return Err(AutogradError::Gradcheck(format!(
                "var {} of the graph is {:?} {:?} in {low} but {:?} {:?} in f64; drift needs the same graph in both",
                i + 1,
                lo.op_name(),
                lo.dims(),
                hi.op_name(),
                hi.dims()
            )));
        }
        let what = match (hi.op_name(), hi.name()) {
            (Some(op), _) => op.to_string(),
            (None, Some(name)) => name,
            (None, None) => high_run
                .inputs
                .iter()
                .position(|v| v.id() == hi.id())
                .map_or_else(|| "leaf".to_string(), |k| format!("input {k}")),
        };
        rows.push(DriftRow {
            number: i + 1,
            what,
            location: hi.node().map(|n| n.location().to_string()),
            shape: hi.dims(),
            output_rel_error: relative_error(&lo.data(), &hi.data())?,
            grad_rel_error: relative_error(lo_grad, hi_grad)?,
        });
    }
    Ok(DriftReport { low, rows })
}

/// One recorded run: its vars in topological order and the gradient of
/// the output with respect to each.
struct Run {
    inputs: Vec<Var>,
    vars: Vec<Var>,
    grads: Vec<Tensor>,
}

impl Run {
    fn record(
        f: &impl Fn(&[Var]) -> Result<Var>,
        inputs: &[Tensor],
        seed: u64,
        low: DType,
    ) -> Result<Run> {
        let leaves: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
        let out = f(&leaves)?;
        // The cotangent is drawn in the low precision and widened, so that
        // both runs start their backward pass from the same values.
        let cotangent =
            Tensor::randn(out.shape(), 0.0, 1.0, low, &mut Rng::new(seed)).to_dtype(out.dtype())?;
        let mut vars = topological_order(&out);
        vars.reverse();
        let refs: Vec<&Var> = vars.iter().collect();
        let grads = grad(&out, &refs, Some(&cotangent), BackwardOptions::default())?;
        let grads = grads
            .into_iter()
            .zip(&vars)
            .map(|(g, v)| g.map_or_else(|| v.data().zeros_like(), |g| Ok(g.data())))
            .collect::<gradlab_tensor::Result<_>>()?;
        Ok(Run {
            inputs: leaves,
            vars,
            grads,
        })
    }
}

/// `||a - b|| / ||b||` in f64 (2-norms), or `||a - b||` when `b` is all zeros.
fn relative_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = (a.to_vec_f64()?, b.to_vec_f64()?);
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let norm = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    Ok(if norm > 0.0 { diff / norm } else { diff })
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "drift: each var's value and gradient in {} against f64 from the same inputs (relative 2-norm error)",
            self.low
        )?;
        let what_width = self
            .rows
            .iter()
            .map(|r| r.what.len())
            .max()
            .unwrap_or(0)
            .max(8);
        let shape_width = self
            .rows
            .iter()
            .map(|r| compact(&r.shape).len())
            .max()
            .unwrap_or(0)
            .max(5);
        writeln!(
            f,
            "{:>4}  {:<what_width$}  {:<shape_width$}  {:>10}  {:>10}  call site",
            "node", "op / leaf", "shape", "output err", "grad err"
        )?;
        for r in &self.rows {
            let line = format!(
                "{:>4}  {:<what_width$}  {:<shape_width$}  {:>10.3e}  {:>10.3e}  {}",
                r.number,
                r.what,
                compact(&r.shape),
                r.output_rel_error,
                r.grad_rel_error,
                r.location.as_deref().unwrap_or("")
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        if let (Some(out), Some(grad)) = (self.worst_output(), self.worst_gradient()) {
            writeln!(
                f,
                "largest output error: node {} {} ({:.3e}); largest gradient error: node {} {} ({:.3e})",
                out.number,
                out.what,
                out.output_rel_error,
                grad.number,
                grad.what,
                grad.grad_rel_error
            )?;
        }
        Ok(())
    }
}

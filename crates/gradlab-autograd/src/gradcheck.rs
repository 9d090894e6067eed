//! Checking analytic gradients against central finite differences in f64.

use crate::engine::{grad, BackwardOptions};
use crate::graph::no_grad;
use crate::{AutogradError, Result, Var};
use gradlab_tensor::{DType, Rng, Tensor};
use std::fmt;

/// Step and tolerances of a gradient check. An element passes when
/// `|analytic - numeric| <= atol + rtol * |numeric|`.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
    /// Seed of the random output cotangent that reduces a non-scalar output to a scalar.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            seed: 0,
        }
    }
}

/// The result for one input: its worst element.
#[derive(Clone, Debug)]
pub struct InputReport {
    pub input: usize,
    pub shape: Vec<usize>,
    pub max_abs_error: f64,
    /// `|analytic - numeric| / |numeric|`, over the elements whose numeric
    /// gradient is above `atol` (relative error means little near zero).
    pub max_rel_error: f64,
    /// Multi-index of the element with the largest tolerance-scaled error
    /// `|analytic - numeric| / (atol + rtol * |numeric|)` (above 1 fails).
    pub worst_index: Vec<usize>,
    pub analytic: f64,
    pub numeric: f64,
    pub passed: bool,
}

/// Per-input results of [`gradcheck()`].
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub inputs: Vec<InputReport>,
}

impl GradcheckReport {
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.passed)
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<6} {:<16} {:>11} {:>11} {:<14} {:>14} {:>14}  result",
            "input", "shape", "max abs err", "max rel err", "worst at", "analytic", "numeric"
        )?;
        for r in &self.inputs {
            writeln!(
                f,
                "{:<6} {:<16} {:>11.3e} {:>11.3e} {:<14} {:>14.6e} {:>14.6e}  {}",
                r.input,
                format!("{:?}", r.shape),
                r.max_abs_error,
                r.max_rel_error,
                format!("{:?}", r.worst_index),
                r.analytic,
                r.numeric,
                if r.passed { "ok" } else { "FAIL" }
            )?;
        }
        Ok(())
    }
}

fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = flat % dims[d].max(1);
        flat /= dims[d].max(1);
    }
    idx
}

/// Compares the gradients of `f` at `inputs` with central differences.
///
/// Inputs are converted to f64. A non-scalar output is reduced to
/// `sum(output * v)` with a fixed random `v`. Returns the per-input report
/// (check [`GradcheckReport::passed`]); errors only when `f` itself fails.
///
/// ```
/// use gradlab_autograd::{gradcheck, GradcheckOptions, Var};
/// use gradlab_tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], [3]).unwrap();
/// let report = gradcheck(|v: &[Var]| v[0].tanh()?.mul(&v[0]), &[x], GradcheckOptions::default()).unwrap();
/// assert!(report.passed(), "{report}");
/// ```
pub fn gradcheck(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    opts: GradcheckOptions,
) -> Result<GradcheckReport> {
    let base: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(DType::F64))
        .collect::<std::result::Result<_, _>>()?;
    let vars: Vec<Var> = base.iter().map(|t| Var::parameter(t.clone())).collect();
    let out = f(&vars)?;
    let mut rng = Rng::new(opts.seed);
    let cotangent = Tensor::randn(out.shape(), 0.0, 1.0, DType::F64, &mut rng);
    let cot = Var::constant(cotangent.clone());
    let scalar =
        |xs: &[Var]| -> Result<f64> { f(xs)?.to_dtype_f64()?.mul(&cot)?.sum_all()?.item() };
    let loss = out.to_dtype_f64()?.mul(&cot)?.sum_all()?;
    let refs: Vec<&Var> = vars.iter().collect();
    let analytic = grad(&loss, &refs, None, BackwardOptions::default())?;

    let mut reports = Vec::new();
    for (i, t) in base.iter().enumerate() {
        let values = t.to_vec::<f64>()?;
        let an = match &analytic[i] {
            Some(g) => g.data().to_vec_f64()?,
            None => vec![0.0; values.len()],
        };
        let mut report = InputReport {
            input: i,
            shape: t.dims().to_vec(),
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst_index: vec![],
            analytic: 0.0,
            numeric: 0.0,
            passed: true,
        };
        let mut worst_scaled = f64::NEG_INFINITY;
        for j in 0..values.len() {
            let eval_at = |delta: f64| -> Result<f64> {
                let mut v = values.clone();
                v[j] += delta;
                let mut xs: Vec<Var> = base.iter().map(|b| Var::constant(b.clone())).collect();
                xs[i] = Var::constant(Tensor::from_vec(v, t.shape().clone())?);
                no_grad(|| scalar(&xs))
            };
            let numeric = (eval_at(opts.eps)? - eval_at(-opts.eps)?) / (2.0 * opts.eps);
            let abs = (an[j] - numeric).abs();
            let rel = abs / numeric.abs().max(1e-12);
            let tolerance = opts.atol + opts.rtol * numeric.abs();
            let excess = abs - tolerance;
            // Scaled by the tolerance, so that a passing check still points
            // at the element nearest to failing rather than at a zero.
            let scaled = if abs.is_nan() || (tolerance == 0.0 && abs > 0.0) {
                f64::INFINITY
            } else if abs == 0.0 {
                0.0
            } else {
                abs / tolerance
            };
            report.max_abs_error = report.max_abs_error.max(abs);
            report.max_rel_error =
                report
                    .max_rel_error
                    .max(if numeric.abs() > opts.atol { rel } else { 0.0 });
            if scaled > worst_scaled {
                worst_scaled = scaled;
                report.worst_index = unravel(j, t.dims());
                report.analytic = an[j];
                report.numeric = numeric;
            }
            if excess > 0.0 || abs.is_nan() {
                report.passed = false;
            }
        }
        reports.push(report);
    }
    Ok(GradcheckReport { inputs: reports })
}

/// Checks second derivatives: runs [`gradcheck()`] on the map from
/// `(inputs, v)` to the first gradients' projection `Σ_i <∂(sum(f·v))/∂x_i, u_i>`,
/// with fixed random `v` and `u_i`. This exercises the backward rules'
/// own derivatives, with respect to both the inputs and the output gradient.
/// The report has one row per input, then one for `v`.
///
/// ```
/// use gradlab_autograd::{gradgradcheck, GradcheckOptions, Var};
/// use gradlab_tensor::{Conv2dParams, Rng, Tensor};
/// let mut rng = Rng::new(0);
/// let x = Tensor::randn([1, 2, 5, 5], 0.0, 1.0, gradlab_tensor::DType::F64, &mut rng);
/// let w = Tensor::randn([2, 1, 3, 3], 0.0, 1.0, gradlab_tensor::DType::F64, &mut rng);
/// let params = Conv2dParams { stride: (2, 2), padding: (1, 1), groups: 2, ..Default::default() };
/// let conv = |v: &[Var]| v[0].conv2d(&v[1], None, params)?.tanh();
/// let report = gradgradcheck(conv, &[x, w], GradcheckOptions::default()).unwrap();
/// assert!(report.passed(), "{report}");
/// assert_eq!(report.inputs.len(), 3);
/// ```
pub fn gradgradcheck(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    opts: GradcheckOptions,
) -> Result<GradcheckReport> {
    let base: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(DType::F64))
        .collect::<std::result::Result<_, _>>()?;
    let out_shape = no_grad(|| {
        f(&base
            .iter()
            .map(|t| Var::constant(t.clone()))
            .collect::<Vec<_>>())
    })?
    .shape();
    let mut rng = Rng::new(opts.seed ^ 0x5EED);
    let v = Tensor::randn(out_shape, 0.0, 1.0, DType::F64, &mut rng);
    let us: Vec<Tensor> = base
        .iter()
        .map(|t| Tensor::randn(t.shape().clone(), 0.0, 1.0, DType::F64, &mut rng))
        .collect();
    let n = base.len();
    let first_grad_projection = |xs: &[Var]| -> Result<Var> {
        let (inputs, v) = (&xs[..n], &xs[n]);
        // Inputs may arrive as constants (finite differences): make them leaves.
        let leaves: Vec<Var> = inputs.iter().map(|x| Var::parameter(x.data())).collect();
        let leaves: Vec<Var> = if inputs.iter().all(|x| x.requires_grad()) {
            inputs.to_vec()
        } else {
            leaves
        };
        let _mode = crate::graph::GradModeGuard::new(true);
        let loss = f(&leaves)?.mul(v)?.sum_all()?;
        let refs: Vec<&Var> = leaves.iter().collect();
        let grads = grad(
            &loss,
            &refs,
            None,
            BackwardOptions {
                retain_graph: true,
                create_graph: true,
            },
        )?;
        let mut total: Option<Var> = None;
        for (g, u) in grads.into_iter().zip(&us) {
            let Some(g) = g else { continue };
            let term = g.mul(&Var::constant(u.clone()))?.sum_all()?;
            total = Some(match total {
                Some(t) => t.add(&term)?,
                None => term,
            });
        }
        total.ok_or_else(|| {
            AutogradError::Backward("the function depends on none of its inputs".into())
        })
    };
    let mut all = base.clone();
    all.push(v);
    gradcheck(first_grad_projection, &all, opts)
}

/// A Hessian-vector product: `H v` where `H` is the Hessian of the scalar
/// `f` at `inputs`, computed by differentiating `<∇f, v>` (double backward).
///
/// ```
/// use gradlab_autograd::{hvp, Var};
/// use gradlab_tensor::Tensor;
/// // f(x, y) = x² y: H = [[2y, 2x], [2x, 0]]; at (3, 5) along (1, 2): H v = (10 + 12, 6).
/// let (x, y) = (Tensor::from_vec(vec![3.0f64], [1]).unwrap(), Tensor::from_vec(vec![5.0f64], [1]).unwrap());
/// let v = [Tensor::from_vec(vec![1.0f64], [1]).unwrap(), Tensor::from_vec(vec![2.0f64], [1]).unwrap()];
/// let f = |xs: &[Var]| xs[0].mul(&xs[0])?.mul(&xs[1])?.sum_all();
/// let hv = hvp(f, &[x, y], &v).unwrap();
/// assert_eq!(hv[0].to_vec::<f64>().unwrap(), vec![22.0]);
/// assert_eq!(hv[1].to_vec::<f64>().unwrap(), vec![6.0]);
/// ```
pub fn hvp(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    v: &[Tensor],
) -> Result<Vec<Tensor>> {
    let xs: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    let refs: Vec<&Var> = xs.iter().collect();
    let y = f(&xs)?;
    let grads = grad(
        &y,
        &refs,
        None,
        BackwardOptions {
            retain_graph: true,
            create_graph: true,
        },
    )?;
    let mut dot: Option<Var> = None;
    for (g, vi) in grads.into_iter().zip(v) {
        let Some(g) = g else { continue };
        let term = g.mul(&Var::constant(vi.clone()))?.sum_all()?;
        dot = Some(match dot {
            Some(d) => d.add(&term)?,
            None => term,
        });
    }
    let dot =
        dot.ok_or_else(|| AutogradError::Backward("f depends on none of its inputs".into()))?;
    if !dot.requires_grad() {
        // The gradient is constant in the inputs: the Hessian is zero.
        return Ok(inputs
            .iter()
            .map(|t| t.zeros_like())
            .collect::<gradlab_tensor::Result<_>>()?);
    }
    let hv = grad(&dot, &refs, None, BackwardOptions::default())?;
    Ok(hv
        .into_iter()
        .zip(inputs)
        .map(|(h, t)| h.map_or_else(|| t.zeros_like(), |h| Ok(h.data())))
        .collect::<gradlab_tensor::Result<_>>()?)
}

impl Var {
    /// This var as f64 (a differentiable cast only when it already is f64).
    fn to_dtype_f64(&self) -> Result<Var> {
        if self.dtype() == DType::F64 {
            Ok(self.clone())
        } else {
            Err(AutogradError::Gradcheck(format!(
                "the function returned a {} output; gradcheck runs in f64",
                self.dtype()
            )))
        }
    }
}

//! Checking analytic gradients against central finite differences in f64,
//! and explaining a failure.
//!
//! - [`gradcheck()`] compares the gradients of a function with central
//!   differences, input by input, and prints the worst element of each;
//!   [`gradcheck_parameters`] does the same for parameters a closure reads
//!   (a model's weights); [`gradgradcheck`] checks second derivatives.
//! - **Localisation.** When a check fails (or always, with
//!   [`Localize::Always`]), every node of the recorded graph is re-checked
//!   alone, in topological order, on the values of that run: its backward
//!   rule against central differences of its own forward, replayed through
//!   [`crate::BackwardOp::forward`] ([`localize`] does this for any
//!   recorded graph). The report names the first node that disagrees: its
//!   op, the line of the user's code that called it, its input shapes, its
//!   worst element and the nodes it feeds.
//! - **Non-differentiable points.** Where a central difference straddles a
//!   kink (ReLU at 0, a tie in a max or a max-pool window, |x| at 0, a
//!   clamp bound), the two one-sided differences disagree. Such a point is
//!   reported apart, as a [`Kink`], and not as a failure as long as the
//!   analytic derivative is one of the one-sided ones or between them;
//!   [`GradcheckOptions::kinks_fail`] makes kinks failures.
//! - **Precision drift.** [`drift`] runs a function in f32 and in f64 from
//!   the same inputs and reports, node by node, how far the f32 value and
//!   gradient are from the f64 ones.
//! - **Overlapping inputs.** An input whose elements share memory (an
//!   expanded view, stride 0) cannot be perturbed in place: a step on a
//!   shared location would move several elements at once. gradcheck
//!   perturbs a contiguous copy, one element at a time (autograd's gradient
//!   has one entry per element of a view too), and notes it in the report.
//! - **Fast mode.** With [`GradcheckOptions::directions`] set, each input
//!   is checked along a few random directions `u` (the vector-Jacobian
//!   product `<grad, u>` against `(f(x + eps u) - f(x - eps u)) / 2 eps`)
//!   instead of element by element: two evaluations per direction instead
//!   of two per element, so a model with thousands of weights is checked
//!   in a few forward passes. The trade-off: a direction mixes all
//!   elements, so it cannot say which element is wrong, and an error
//!   confined to a few elements of a large input is diluted: it shows only
//!   when it is large next to `rtol` times the whole directional derivative.
//!   Localisation (which samples elements of large node inputs, see
//!   [`GradcheckOptions::node_elements`]) then finds the op.
//!
//! # A failing check, explained
//!
//! A two-layer function with one user-defined op, `x³`, whose backward
//! rule says `2x²` instead of `3x²`:
//!
//! ```
//! use gradlab_autograd::{gradcheck, BackwardOp, GradcheckOptions, Result, Var};
//! use gradlab_tensor::{Shape, Tensor};
//!
//! struct CubeBackward;
//! impl BackwardOp for CubeBackward {
//!     fn name(&self) -> &'static str {
//!         "CubeBackward"
//!     }
//!     fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
//!         let x = &inputs[0];
//!         Ok(vec![Some(grad.mul(&x.mul(x)?.mul_scalar(2.0)?)?)]) // wrong: 3x²
//!     }
//!     fn forward(&self, inputs: &[Tensor], _: &Shape) -> Option<Result<Tensor>> {
//!         let x = &inputs[0];
//!         Some(x.mul(x).and_then(|xx| xx.mul(x)).map_err(Into::into))
//!     }
//! }
//! #[track_caller]
//! fn cube(x: &Var) -> Result<Var> {
//!     let d = x.data();
//!     Var::from_op(d.mul(&d)?.mul(&d)?, &[x], CubeBackward)
//! }
//!
//! let x = Tensor::from_vec(vec![0.5f64, -1.0, 2.0, 0.25, 1.5, -0.75], [2, 3]).unwrap();
//! let w = Tensor::from_vec(vec![0.3f64, -0.2, 0.8, 0.1, -0.5, 0.4], [3, 2]).unwrap();
//! let f = |v: &[Var]| cube(&v[0].matmul(&v[1])?.tanh()?)?.sum_all();
//! let report = gradcheck(f, &[x, w], GradcheckOptions::default()).unwrap();
//! assert!(!report.passed());
//! let first = report.localization.as_ref().unwrap().first_disagreement().unwrap();
//! assert_eq!((first.number, first.op), (3, "CubeBackward"));
//! println!("{report}");
//! # // The output below, with this example's file shown as `example.rs`.
//! # let file = first.location.split(':').next().unwrap();
//! # let shown = report.to_string().replace(file, "example.rs");
//! # assert_eq!(shown, include_str!("failing_example.txt"));
//! ```
//!
//! prints the per-input table (both inputs fail: the error flows into
//! both), then every node checked alone, which pins the error on
//! `CubeBackward` and the line that called `cube` (`cube` is
//! `#[track_caller]`, so its op is located at its caller; `example.rs`
//! stands for the file of the example):
//!
//! ```text
#![doc = include_str!("failing_example.txt")]
//! ```

mod drift;
mod finite;
mod localize;
mod overlap;
mod report;

pub use drift::{drift, DriftReport, DriftRow};
pub use localize::{localize, Localization, NodeCheck, NodeOutcome};
pub use report::{Coverage, GradcheckReport, InputReport, Kink, Probe};

use crate::engine::{grad, BackwardOptions};
use crate::graph::no_grad;
use crate::{AutogradError, Result, Var};
use finite::{compare, Plan, Scalar};
use gradlab_tensor::{DType, Rng, Tensor};

/// When a check re-checks every node of the graph alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Localize {
    /// Never: the report holds the per-input table only.
    Never,
    /// When the whole check fails (the default): the report then names the
    /// first node that disagrees.
    #[default]
    OnFailure,
    /// Every time, pass or fail.
    Always,
}

/// Step, tolerances and modes of a gradient check. A probe (an element, or
/// a direction in fast mode) passes when
/// `|analytic - numeric| <= atol + rtol * |numeric|`.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
    /// Seed of the random output cotangent that reduces a non-scalar output
    /// to a scalar (and of the directions and samples).
    pub seed: u64,
    /// Count non-differentiable points (kinks) as failures instead of
    /// reporting them apart.
    pub kinks_fail: bool,
    /// Fast mode: check each input along this many random directions
    /// instead of element by element (see the module docs for the trade-off).
    pub directions: Option<usize>,
    /// When to check every node of the graph alone.
    pub localize: Localize,
    /// Localisation checks every element of a node input with at most this
    /// many elements; a larger input is checked on a seeded random sample
    /// of this many elements plus two random directions over all of them.
    /// `None`: every element, whatever the size.
    pub node_elements: Option<usize>,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            seed: 0,
            kinks_fail: false,
            directions: None,
            localize: Localize::OnFailure,
            node_elements: Some(256),
        }
    }
}

impl GradcheckOptions {
    fn validate(&self) -> Result<()> {
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(AutogradError::Gradcheck(format!(
                "the step eps must be positive and finite, got {}",
                self.eps
            )));
        }
        if !(self.atol >= 0.0 && self.rtol >= 0.0) {
            return Err(AutogradError::Gradcheck(format!(
                "the tolerances must be non-negative, got atol {} and rtol {}",
                self.atol, self.rtol
            )));
        }
        if self.directions == Some(0) {
            return Err(AutogradError::Gradcheck(
                "fast mode needs at least one direction".into(),
            ));
        }
        Ok(())
    }

    fn plan(&self) -> Plan {
        match self.directions {
            Some(n) => Plan::Directions(n),
            None => Plan::Every,
        }
    }

    fn backward_options(&self) -> BackwardOptions {
        // Localisation reads the backward ops after the whole check.
        BackwardOptions {
            retain_graph: self.localize != Localize::Never,
            create_graph: false,
        }
    }
}

/// Compares the gradients of `f` at `inputs` with central differences.
///
/// Inputs are converted to f64. A non-scalar output is reduced to
/// `sum(output * v)` with a fixed random `v`. Returns the per-input report
/// (check [`GradcheckReport::passed`]), with the node-by-node check when
/// it failed (see [`GradcheckOptions::localize`]); errors only when `f`
/// itself fails.
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
    opts.validate()?;
    let base: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(DType::F64))
        .collect::<std::result::Result<_, _>>()?;
    let vars: Vec<Var> = base.iter().map(|t| Var::parameter(t.clone())).collect();
    let out = f(&vars)?;
    let cot = cotangent(&out, &opts)?;
    let scalar = |xs: &[Var]| -> Result<f64> {
        no_grad(|| f(xs)?.to_dtype_f64()?.mul(&cot)?.sum_all()?.item())
    };
    let loss = out.to_dtype_f64()?.mul(&cot)?.sum_all()?;
    let refs: Vec<&Var> = vars.iter().collect();
    let analytic = grad(&loss, &refs, None, opts.backward_options())?;
    let constants = || -> Vec<Var> { base.iter().map(|b| Var::constant(b.clone())).collect() };
    let at_base = scalar(&constants())?;
    let eval = |i: usize, t: Tensor| -> Result<f64> {
        let mut xs = constants();
        xs[i] = Var::constant(t);
        scalar(&xs)
    };
    let names = vec![None; base.len()];
    check_inputs(&out, &base, &names, &analytic, at_base, &eval, &opts)
}

/// [`gradcheck()`] for the parameters a closure reads, such as a model's
/// weights: `loss` is run with each parameter's value perturbed in place
/// (and restored), and its gradients with respect to `parameters` are
/// compared with central differences. The report names each row after the
/// parameter's [`Var::name`].
///
/// The parameters must hold f64 values (convert a model with
/// `set_data(data.to_dtype(DType::F64)?)`). `loss` runs once per probe:
/// for a model, use the fast mode ([`GradcheckOptions::directions`]);
/// state it updates while running (batch-norm running statistics) keeps
/// moving.
///
/// ```
/// use gradlab_autograd::{gradcheck_parameters, GradcheckOptions, Var};
/// use gradlab_tensor::Tensor;
/// let w = Var::named_parameter(Tensor::from_vec(vec![0.5f64, -1.0], [2]).unwrap(), "w");
/// let x = Var::constant(Tensor::from_vec(vec![2.0f64, 3.0], [2]).unwrap());
/// let loss = || w.mul(&x)?.tanh()?.sum_all();
/// let report = gradcheck_parameters(loss, &[w.clone()], GradcheckOptions::default()).unwrap();
/// assert!(report.passed(), "{report}");
/// assert_eq!(report.inputs[0].name.as_deref(), Some("w"));
/// ```
pub fn gradcheck_parameters(
    loss: impl Fn() -> Result<Var>,
    parameters: &[Var],
    opts: GradcheckOptions,
) -> Result<GradcheckReport> {
    opts.validate()?;
    for (i, p) in parameters.iter().enumerate() {
        if p.dtype() != DType::F64 || !p.requires_grad() {
            return Err(AutogradError::Gradcheck(format!(
                "parameter {i} ({}) must be an f64 var that requires grad, got {:?}",
                p.name().unwrap_or_else(|| "unnamed".into()),
                p
            )));
        }
    }
    let base: Vec<Tensor> = parameters.iter().map(Var::data).collect();
    let out = loss()?;
    let cot = cotangent(&out, &opts)?;
    let scalar =
        || -> Result<f64> { no_grad(|| loss()?.to_dtype_f64()?.mul(&cot)?.sum_all()?.item()) };
    let total = out.to_dtype_f64()?.mul(&cot)?.sum_all()?;
    let refs: Vec<&Var> = parameters.iter().collect();
    let analytic = grad(&total, &refs, None, opts.backward_options())?;
    let at_base = scalar()?;
    let eval = |i: usize, t: Tensor| -> Result<f64> {
        let p = &parameters[i];
        p.set_data(t);
        let value = scalar();
        p.set_data(base[i].clone());
        value
    };
    let names: Vec<Option<String>> = parameters.iter().map(Var::name).collect();
    check_inputs(&out, &base, &names, &analytic, at_base, &eval, &opts)
}

/// The fixed random `v` that reduces `out` to `sum(out * v)`.
fn cotangent(out: &Var, opts: &GradcheckOptions) -> Result<Var> {
    let mut rng = Rng::new(opts.seed);
    Ok(Var::constant(Tensor::randn(
        out.shape(),
        0.0,
        1.0,
        DType::F64,
        &mut rng,
    )))
}

/// Compares every input's analytic gradient with finite differences of
/// `eval` (the reduced output with input `i` replaced), and localises when
/// the options say so.
#[allow(clippy::too_many_arguments)]
fn check_inputs(
    out: &Var,
    base: &[Tensor],
    names: &[Option<String>],
    analytic: &[Option<Var>],
    at_base: f64,
    eval: &dyn Fn(usize, Tensor) -> Result<f64>,
    opts: &GradcheckOptions,
) -> Result<GradcheckReport> {
    let mut inputs = Vec::with_capacity(base.len());
    let mut notes = Vec::new();
    for (i, t) in base.iter().enumerate() {
        if let Some(what) = overlap::shared_memory(t) {
            notes.push(format!(
                "input {i} {:?}: {what}; finite differences perturb a contiguous copy, one element at a time \
                 (the analytic gradient has one entry per element as well)",
                t.dims()
            ));
        }
        let gradient = match &analytic[i] {
            Some(g) => g.data().to_vec_f64()?,
            None => vec![0.0; t.numel()],
        };
        let eval_i = |values: Tensor| eval(i, values);
        let scalar = Scalar {
            at_base,
            eval: &eval_i,
        };
        let seed = opts.seed ^ ((i as u64 + 1) << 40);
        let mut report = compare(i, t, &gradient, &scalar, opts.plan(), opts, seed)?;
        report.name = names[i].clone();
        inputs.push(report);
    }
    let passed = inputs.iter().all(|r| r.passed);
    let localization = match opts.localize {
        Localize::Always => Some(localize(out, opts)?),
        Localize::OnFailure if !passed => Some(localize(out, opts)?),
        _ => None,
    };
    Ok(GradcheckReport {
        inputs,
        notes,
        localization,
        kinks_fail: opts.kinks_fail,
    })
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

//! `gradlab gradcheck --model`: one training step of the trainer's models
//! (forward and mean cross-entropy on a small random batch) checked in f64:
//! every parameter along random directions, every node of the graph alone
//! (`--localize`, or when the parameters fail), or the f32-vs-f64 drift per
//! node (`--drift`).

use super::gradcheck::{exit_code, verdict, GradcheckArgs};
use super::misscaled::misscaled;
use super::step::{named_model, random_batch};
use crate::train::args::value_name;
use crate::train::ModelKind;
use gradlab_autograd::gradcheck::{drift, DriftReport};
use gradlab_autograd::{gradcheck_parameters, GradcheckOptions, GradcheckReport, Var};
use gradlab_nn::{Module, Sequential};
use gradlab_tensor::{DType, Rng, Tensor};
use std::fmt::Write;
use std::process::ExitCode;

/// Random directions per parameter when `--directions` is not given: a
/// model has tens of thousands of weights, too many to check one by one.
pub const DEFAULT_DIRECTIONS: usize = 3;

/// The layer after which `--inject-wrong-op` records its wrong op (both
/// models have it).
const INJECT_AFTER: &str = "relu1";

/// A training step of the trainer's `kind` model, ready to be checked.
///
/// ```
/// use gradlab::introspect::model_check::ModelStep;
/// use gradlab::autograd::GradcheckOptions;
/// use gradlab::train::ModelKind;
/// let step = ModelStep::new(ModelKind::Lenet, 2, 0, false).unwrap();
/// let opts = GradcheckOptions { directions: Some(2), ..GradcheckOptions::default() };
/// let report = step.check(opts).unwrap();
/// assert!(report.passed(), "{report}");
/// assert_eq!(report.inputs[0].label(), "conv1.weight");
/// ```
pub struct ModelStep {
    pub kind: ModelKind,
    /// The model in f64: the checked one.
    model: Sequential,
    /// The same model in f32 (the trainer's precision), for drift.
    low: Sequential,
    /// The batch: f32 images `[n, 3, 32, 32]` and class indices `[n]`.
    images: Tensor,
    target: Tensor,
    inject_wrong_op: bool,
}

impl ModelStep {
    /// The model as `gradlab train` initialises it from `seed`, its f64
    /// copy (the same values, widened), and a random batch of `batch` images.
    pub fn new(
        kind: ModelKind,
        batch: usize,
        seed: u64,
        inject_wrong_op: bool,
    ) -> Result<ModelStep, String> {
        if batch == 0 {
            return Err("gradcheck: --batch must be at least 1".into());
        }
        let mut rng = Rng::new(seed);
        let low = named_model(kind, &mut rng)?;
        let (images, target) = random_batch(batch, &mut rng);
        let model = named_model(kind, &mut Rng::new(seed))?;
        for (name, var) in model.state() {
            let data = var.data();
            if data.dtype().is_float() {
                let wide = data
                    .to_dtype(DType::F64)
                    .map_err(|e| format!("gradcheck: cannot widen {name}: {e}"))?;
                var.set_data(wide);
            }
        }
        Ok(ModelStep {
            kind,
            model,
            low,
            images: images.data(),
            target,
            inject_wrong_op,
        })
    }

    /// Forward through `model`'s layers (with the wrong op after
    /// [`INJECT_AFTER`] when asked) and the trainer's loss.
    fn loss_of(&self, model: &Sequential, x: &Var) -> gradlab_autograd::Result<Var> {
        let mut y = x.clone();
        for (name, layer) in model.children() {
            y = layer.forward(&y).map_err(|e| {
                gradlab_autograd::AutogradError::Gradcheck(format!("{name} failed: {e}"))
            })?;
            if self.inject_wrong_op && name == INJECT_AFTER {
                y = misscaled(&y)?;
            }
        }
        y.cross_entropy(&self.target, gradlab_tensor::Reduction::Mean, 0.0)
    }

    /// The f64 loss of the batch.
    pub fn loss(&self) -> gradlab_autograd::Result<Var> {
        let x = Var::constant(self.images.to_dtype(DType::F64)?);
        self.loss_of(&self.model, &x)
    }

    /// [`gradcheck_parameters`] of the f64 loss over every parameter.
    pub fn check(&self, opts: GradcheckOptions) -> Result<GradcheckReport, String> {
        let parameters: Vec<Var> = self
            .model
            .parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        gradcheck_parameters(|| self.loss(), &parameters, opts)
            .map_err(|e| format!("gradcheck {}: {e}", value_name(self.kind)))
    }

    /// The drift of the step between the f32 model (the trainer's) and its
    /// f64 copy, from the same images.
    pub fn drift(&self, seed: u64) -> Result<DriftReport, String> {
        self.drift_against(DType::F32, seed)
    }

    /// The drift between the model in `low` (f32, or f64 for a run
    /// compared with itself) and in f64.
    pub fn drift_against(&self, low: DType, seed: u64) -> Result<DriftReport, String> {
        let f = |v: &[Var]| {
            let images = &v[0];
            images.set_name("images");
            let model = if images.dtype() == DType::F64 {
                &self.model
            } else {
                &self.low
            };
            self.loss_of(model, images)
        };
        drift(f, std::slice::from_ref(&self.images), low, seed)
            .map_err(|e| format!("gradcheck {} --drift: {e}", value_name(self.kind)))
    }

    fn describe(&self) -> String {
        format!(
            "the training step's loss (mean cross-entropy) on {} random CIFAR-10-shaped images, \
             in f64 ({} parameters, {} values)",
            self.target.numel(),
            self.model.parameters().len(),
            self.model.num_parameters()
        )
    }
}

/// `gradlab gradcheck --model`: the printed result and the exit code.
pub fn run(kind: ModelKind, args: &GradcheckArgs) -> Result<(String, ExitCode), String> {
    if args.second_order {
        return Err("gradcheck: --second-order checks one --op, not a --model".into());
    }
    let step = ModelStep::new(kind, args.batch, args.seed, args.inject_wrong_op)?;
    let name = value_name(kind);
    let mut out = String::new();
    if args.drift {
        let report = step.drift(args.seed)?;
        let _ = writeln!(out, "drift {name}: {}", step.describe());
        let _ = write!(out, "{report}");
        return Ok((out, ExitCode::SUCCESS));
    }
    let mut opts = args.options();
    opts.directions = Some(args.directions.unwrap_or(DEFAULT_DIRECTIONS));
    let report = step.check(opts)?;
    let _ = writeln!(out, "gradcheck {name}: {}", step.describe());
    let _ = writeln!(
        out,
        "  each parameter along {} random directions against central differences, step {:e}; \
         a probe passes when |analytic - numeric| <= {:e} + {:e} * |numeric|",
        opts.directions.unwrap_or(DEFAULT_DIRECTIONS),
        opts.eps,
        opts.atol,
        opts.rtol
    );
    let _ = write!(out, "{report}");
    out.push_str(&verdict(&report));
    Ok((out, exit_code(&report)))
}

//! Gradient-check cases: an op of the fixture format, run by the fixture
//! runner's dispatch, with random f64 inputs drawn so that its derivatives
//! are well defined at them.

use super::gradcheck::GradcheckArgs;
use super::misscaled::misscaled;
use crate::fixtures::attrs::Attrs;
use crate::fixtures::{ops, KNOWN_OPS};
use gradlab_autograd::gradcheck::{drift, DriftReport};
use gradlab_autograd::{
    gradcheck, gradgradcheck, AutogradError, GradcheckOptions, GradcheckReport, Var,
};
use gradlab_tensor::{DType, Rng, Shape, Tensor, TensorError};
use serde_json::{Map, Value};

/// The ops `gradlab gradcheck --op` knows: every op of the fixture format
/// except the last two of [`KNOWN_OPS`], `lenet_loss` and `sgd_steps`, whose
/// cases are whole programs (a model's loss, optimizer steps) rather than one op.
pub const GRADCHECK_OPS: &[&str] = KNOWN_OPS.split_at(KNOWN_OPS.len() - 2).0;

type CaseFn = dyn Fn(&[Var]) -> gradlab_autograd::Result<Var> + Send + Sync;

/// A function of named f64 inputs, ready for [`gradcheck()`] or [`gradgradcheck()`].
///
/// ```
/// use gradlab::introspect::GradcheckCase;
/// use gradlab::autograd::GradcheckOptions;
/// use gradlab::tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], [3]).unwrap();
/// let case = GradcheckCase::new("tanh", vec![("x".into(), x)], |v| v[0].tanh());
/// let report = case.check(true, GradcheckOptions::default()).unwrap();
/// assert!(report.passed());
/// ```
pub struct GradcheckCase {
    /// The op's name, for messages.
    pub op: String,
    /// Each input's name (as the fixtures README calls it) and value.
    pub inputs: Vec<(String, Tensor)>,
    function: Box<CaseFn>,
}

impl GradcheckCase {
    /// A case from named inputs and the function of them to check.
    pub fn new(
        op: impl Into<String>,
        inputs: Vec<(String, Tensor)>,
        function: impl Fn(&[Var]) -> gradlab_autograd::Result<Var> + Send + Sync + 'static,
    ) -> GradcheckCase {
        GradcheckCase {
            op: op.into(),
            inputs,
            function: Box::new(function),
        }
    }

    /// First derivatives ([`gradcheck()`]) or, with `second_order`, second
    /// derivatives ([`gradgradcheck()`], whose report has one more row: the
    /// output cotangent).
    pub fn check(
        &self,
        second_order: bool,
        opts: GradcheckOptions,
    ) -> Result<GradcheckReport, String> {
        let values: Vec<Tensor> = self.inputs.iter().map(|(_, t)| t.clone()).collect();
        let f = |v: &[Var]| (self.function)(v);
        let report = if second_order {
            gradgradcheck(f, &values, opts)
        } else {
            gradcheck(f, &values, opts)
        };
        report.map_err(|e| format!("gradcheck {}: {e}", self.op))
    }

    /// How far the op's f32 values and gradients are from f64 ones, node by
    /// node, from the same inputs ([`drift`]; `seed` draws the output
    /// cotangent).
    pub fn drift(&self, seed: u64) -> Result<DriftReport, String> {
        let values: Vec<Tensor> = self.inputs.iter().map(|(_, t)| t.clone()).collect();
        drift(|v: &[Var]| (self.function)(v), &values, DType::F32, seed)
            .map_err(|e| format!("gradcheck {} --drift: {e}", self.op))
    }

    /// Builds the case `args` describe (see `gradlab gradcheck --help`).
    ///
    /// The op runs through the fixture runner's dispatch
    /// ([`crate::fixtures::KNOWN_OPS`]): the flags become the fixture
    /// format's attributes (PyTorch names) and the inputs are drawn where
    /// the op is differentiable. One forward pass up front turns bad shapes
    /// or attributes into an error here rather than in the middle of a check.
    pub fn from_args(args: &GradcheckArgs) -> Result<GradcheckCase, String> {
        let op = args.op.as_deref().unwrap_or("");
        if !GRADCHECK_OPS.contains(&op) {
            return Err(format!(
                "gradcheck: unknown op '{op}'; known ops: {}",
                GRADCHECK_OPS.join(" ")
            ));
        }
        let CaseSpec {
            inputs,
            constants,
            attrs,
        } = CaseSpec::from_args(op, args)?;
        let name = op.to_string();
        let run = move |v: &[Var]| -> Result<Var, String> {
            // The fixture runner's view of a case: every input as a tensor,
            // the float ones (here: the checked vars) first, then the integer
            // ones (cross_entropy's target).
            let raw: Vec<Tensor> = v
                .iter()
                .map(Var::data)
                .chain(constants.iter().cloned())
                .collect();
            ops::forward(&name, &Attrs(&attrs), v, &raw)
        };
        let vars: Vec<Var> = inputs
            .iter()
            .map(|(_, t)| Var::constant(t.clone()))
            .collect();
        run(&vars).map_err(|e| format!("gradcheck {op}: {e}"))?;
        let inject_wrong_op = args.inject_wrong_op;
        Ok(GradcheckCase::new(op, inputs, move |v: &[Var]| {
            let out = run(v).map_err(|msg| {
                AutogradError::Tensor(TensorError::Invalid {
                    op: "gradcheck",
                    msg,
                })
            })?;
            if inject_wrong_op {
                misscaled(&out)
            } else {
                Ok(out)
            }
        }))
    }
}

/// A gradcheck case in the fixture format: float inputs (the checked
/// variables), integer inputs, and the op's attributes under PyTorch's names.
struct CaseSpec {
    inputs: Vec<(String, Tensor)>,
    constants: Vec<Tensor>,
    attrs: Map<String, Value>,
}

impl CaseSpec {
    fn new() -> CaseSpec {
        CaseSpec {
            inputs: Vec::new(),
            constants: Vec::new(),
            attrs: Map::new(),
        }
    }

    fn input(mut self, name: &str, dims: Vec<usize>, values: Values, rng: &mut Rng) -> CaseSpec {
        self.inputs
            .push((name.to_string(), values.draw(&dims, rng)));
        self
    }

    fn attr(mut self, key: &str, value: impl Into<Value>) -> CaseSpec {
        self.attrs.insert(key.to_string(), value.into());
        self
    }

    /// A PyTorch `_pair` attribute (`stride=(2, 1)`) as the fixtures write it.
    fn pair(self, key: &str, (a, b): (usize, usize)) -> CaseSpec {
        self.attr(key, vec![a, b])
    }

    /// The inputs and attributes `args` give `op`, with defaults for what they leave out.
    fn from_args(op: &str, args: &GradcheckArgs) -> Result<CaseSpec, String> {
        let mut rng = Rng::new(args.seed);
        let rng = &mut rng;
        let shape = |i: usize| args.shapes.get(i).cloned();
        let first = shape(0).unwrap_or_else(|| default_shape(op));
        let last_dim: isize = -1;
        let spec = CaseSpec::new();
        Ok(match op {
            "add" | "sub" | "mul" | "div" => {
                let second = shape(1).unwrap_or_else(|| first.clone());
                let divisor = if op == "div" {
                    Values::AwayFromZero
                } else {
                    Values::Normal
                };
                spec.input("a", first, Values::Normal, rng)
                    .input("b", second, divisor, rng)
            }
            "neg" | "exp" | "log" | "sqrt" | "relu" | "sigmoid" | "tanh" => {
                let values = match op {
                    "log" | "sqrt" => Values::Positive,
                    "relu" => Values::AwayFromZero,
                    _ => Values::Normal,
                };
                spec.input("x", first, values, rng)
            }
            "pow" => {
                let exponent = args.exponent.unwrap_or(2.0);
                if !exponent.is_finite() {
                    return Err(format!(
                        "gradcheck pow: --exponent must be finite, got {exponent}"
                    ));
                }
                spec.input("x", first, Values::Positive, rng)
                    .attr("exponent", exponent)
            }
            "sum" | "mean" => spec
                .input("x", first, Values::Normal, rng)
                .attr("dims", args.dims.clone())
                .attr("keepdim", args.keepdim),
            "max_dim" => spec
                .input("x", first, Values::Distinct, rng)
                .attr("dim", args.dim.unwrap_or(last_dim))
                .attr("keepdim", args.keepdim),
            "matmul" | "matmul_bt" => {
                let inner = first.last().copied().unwrap_or(1);
                let second = shape(1).unwrap_or_else(|| {
                    if op == "matmul" {
                        vec![inner, 2]
                    } else {
                        vec![2, inner]
                    }
                });
                spec.input("a", first, Values::Normal, rng)
                    .input("b", second, Values::Normal, rng)
            }
            "linear" => {
                let in_features = first.last().copied().unwrap_or(1);
                let weight =
                    shape(1).unwrap_or_else(|| vec![args.out_features.unwrap_or(3), in_features]);
                let out_features = weight.first().copied().unwrap_or(1);
                let spec = spec.input("x", first, Values::Normal, rng).input(
                    "weight",
                    weight,
                    Values::Normal,
                    rng,
                );
                if args.no_bias {
                    spec
                } else {
                    let bias = shape(2).unwrap_or(vec![out_features]);
                    spec.input("bias", bias, Values::Normal, rng)
                }
            }
            "conv2d" => {
                let channels = dim_of(op, &first, 1, 4)?;
                let groups = args.groups.unwrap_or(1);
                let (kh, kw) = args.kernel.unwrap_or((3, 3));
                let weight = shape(1).unwrap_or_else(|| {
                    let groups = groups.max(1);
                    vec![
                        args.out_channels.unwrap_or(2 * groups),
                        channels / groups,
                        kh,
                        kw,
                    ]
                });
                let out_channels = weight.first().copied().unwrap_or(1);
                let spec = spec.input("input", first, Values::Normal, rng).input(
                    "weight",
                    weight,
                    Values::Normal,
                    rng,
                );
                let spec = if args.no_bias {
                    spec
                } else {
                    let bias = shape(2).unwrap_or(vec![out_channels]);
                    spec.input("bias", bias, Values::Normal, rng)
                };
                spec.pair("stride", args.stride.unwrap_or((1, 1)))
                    .pair("padding", args.padding.unwrap_or((0, 0)))
                    .pair("dilation", args.dilation.unwrap_or((1, 1)))
                    .attr("groups", groups)
            }
            "max_pool2d" => {
                let kernel = args.kernel.unwrap_or((2, 2));
                spec.input("x", first, Values::Distinct, rng)
                    .pair("kernel_size", kernel)
                    // PyTorch's default stride is the kernel size.
                    .pair("stride", args.stride.unwrap_or(kernel))
                    .pair("padding", args.padding.unwrap_or((0, 0)))
                    .pair("dilation", args.dilation.unwrap_or((1, 1)))
                    .attr("ceil_mode", args.ceil_mode)
            }
            "softmax" | "log_softmax" => spec
                .input("x", first, Values::Normal, rng)
                .attr("dim", args.dim.unwrap_or(last_dim)),
            "cross_entropy" => {
                let (n, classes) = (dim_of(op, &first, 0, 2)?, dim_of(op, &first, 1, 2)?);
                if classes == 0 {
                    return Err(
                        "gradcheck cross_entropy: the logits need at least one class".into(),
                    );
                }
                let mut spec = spec.input("logits", first, Values::Normal, rng);
                let labels: Vec<i64> = (0..n).map(|_| rng.below(classes) as i64).collect();
                spec.constants
                    .push(Tensor::from_vec(labels, [n]).map_err(|e| e.to_string())?);
                spec.attr("reduction", args.reduction.clone())
                    .attr("label_smoothing", args.label_smoothing)
            }
            "reshape" => {
                let numel: usize = first.iter().product();
                let to = resolve_reshape(args.to.as_deref().unwrap_or(&[-1]), numel)?;
                spec.input("x", first, Values::Normal, rng)
                    .attr("shape", to)
            }
            "permute" => {
                let perm = args
                    .perm
                    .clone()
                    .unwrap_or_else(|| (0..first.len() as isize).rev().collect());
                spec.input("x", first, Values::Normal, rng)
                    .attr("dims", perm)
            }
            "transpose" => spec
                .input("x", first, Values::Normal, rng)
                .attr("dim0", args.dim0.unwrap_or(0))
                .attr("dim1", args.dim1.unwrap_or(last_dim)),
            "flatten" => spec
                .input("x", first, Values::Normal, rng)
                .attr("start_dim", args.start_dim.unwrap_or(0)),
            "narrow" => {
                let dim = args.dim.unwrap_or(0);
                // The size along the dim as the op will resolve it (a bad dim
                // is the op's error, named by the forward pass below).
                let resolved = if dim < 0 {
                    dim + first.len() as isize
                } else {
                    dim
                };
                let size = usize::try_from(resolved)
                    .ok()
                    .and_then(|d| first.get(d).copied())
                    .unwrap_or(1);
                let start = args.start.unwrap_or(0);
                let length = args.length.unwrap_or(size.saturating_sub(start + 1).max(1));
                spec.input("x", first, Values::Normal, rng)
                    .attr("dim", dim)
                    .attr("start", start)
                    .attr("length", length)
            }
            "squeeze" => spec
                .input("x", first, Values::Normal, rng)
                .attr("dim", args.dim.unwrap_or(last_dim)),
            "unsqueeze" => spec
                .input("x", first, Values::Normal, rng)
                .attr("dim", args.dim.unwrap_or(0)),
            "cat" => {
                let shapes = if args.shapes.len() > 1 {
                    args.shapes.clone()
                } else {
                    vec![first; 3]
                };
                let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
                let mut spec = spec.attr("dim", args.dim.unwrap_or(0));
                for (i, s) in shapes.into_iter().enumerate() {
                    let name = names.get(i).copied().unwrap_or("x");
                    spec = spec.input(name, s, Values::Normal, rng);
                }
                spec
            }
            "batch_norm2d" => {
                let channels = dim_of(op, &first, 1, 4)?;
                spec.input("x", first, Values::Normal, rng)
                    .input("weight", vec![channels], Values::Normal, rng)
                    .input("bias", vec![channels], Values::Normal, rng)
                    .attr("training", true)
                    .attr("eps", 1e-5)
            }
            other => return Err(format!("gradcheck: unknown op '{other}'")),
        })
    }
}

/// How an op's inputs are drawn so that its derivatives exist there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Values {
    /// Standard normal.
    Normal,
    /// In [0.5, 2): inside the domain of log, sqrt and fractional powers.
    Positive,
    /// Magnitude in [0.2, 1.5), either sign: away from relu's kink and from
    /// division by zero.
    AwayFromZero,
    /// A shuffled ramp: distinct values, so that each max is unique and
    /// stays the max under finite-difference steps.
    Distinct,
}

impl Values {
    fn draw(self, dims: &[usize], rng: &mut Rng) -> Tensor {
        let n: usize = dims.iter().product();
        let values: Vec<f64> = match self {
            Values::Normal => (0..n).map(|_| rng.normal()).collect(),
            Values::Positive => (0..n).map(|_| rng.uniform(0.5, 2.0)).collect(),
            Values::AwayFromZero => (0..n)
                .map(|_| {
                    let magnitude = rng.uniform(0.2, 1.5);
                    if rng.next_f64() < 0.5 {
                        -magnitude
                    } else {
                        magnitude
                    }
                })
                .collect(),
            Values::Distinct => {
                // At least 1e-3 apart, far above the finite-difference step.
                let spacing = (4.0 / n.max(1) as f64).clamp(1e-3, 0.1);
                let mut ramp: Vec<f64> = (0..n)
                    .map(|i| (i as f64 - n as f64 / 2.0) * spacing)
                    .collect();
                rng.shuffle(&mut ramp);
                ramp
            }
        };
        Tensor::from_f64_values(values, Shape::new(dims.to_vec()), DType::F64)
    }
}

fn default_shape(op: &str) -> Vec<usize> {
    match op {
        "conv2d" | "max_pool2d" | "batch_norm2d" => vec![1, 2, 6, 6],
        "matmul" | "matmul_bt" | "linear" => vec![3, 4],
        "cross_entropy" => vec![4, 5],
        // A size-1 last dim, which squeeze's default dim removes.
        "squeeze" => vec![2, 3, 1],
        "sum" | "mean" | "max_dim" | "reshape" | "permute" | "transpose" | "flatten" | "narrow" => {
            vec![2, 3, 4]
        }
        _ => vec![2, 3],
    }
}

/// `dims[i]` of a shape that must have `rank` dims.
fn dim_of(op: &str, dims: &[usize], i: usize, rank: usize) -> Result<usize, String> {
    if dims.len() != rank {
        return Err(format!(
            "gradcheck {op}: the first --shape must have {rank} dims, got {dims:?}"
        ));
    }
    Ok(dims[i])
}

/// A target shape with at most one `-1`, inferred from `numel`.
fn resolve_reshape(to: &[i64], numel: usize) -> Result<Vec<usize>, String> {
    let inferred = to.iter().filter(|&&d| d == -1).count();
    if inferred > 1 || to.iter().any(|&d| d < -1) {
        return Err(format!(
            "gradcheck reshape: --to {to:?} may hold one -1 and otherwise sizes >= 0"
        ));
    }
    let known: usize = to
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    to.iter()
        .map(|&d| {
            if d >= 0 {
                Ok(d as usize)
            } else if known > 0 && numel.is_multiple_of(known) {
                Ok(numel / known)
            } else {
                Err(format!(
                    "gradcheck reshape: cannot reshape {numel} elements to {to:?}"
                ))
            }
        })
        .collect()
}

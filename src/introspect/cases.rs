//! Gradient-check cases: an op of the fixture format with random f64 inputs
//! drawn so that its derivatives are well defined at them.

use super::gradcheck::GradcheckArgs;
use gradlab_autograd::{gradcheck, gradgradcheck, GradcheckOptions, GradcheckReport, Var};
use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Reduction, Rng, Shape, Tensor};

/// The ops `gradlab gradcheck --op` knows.
pub const GRADCHECK_OPS: &[&str] = &[
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "exp",
    "log",
    "sqrt",
    "relu",
    "sigmoid",
    "tanh",
    "pow",
    "sum",
    "mean",
    "max_dim",
    "matmul",
    "matmul_bt",
    "linear",
    "conv2d",
    "max_pool2d",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "reshape",
    "permute",
    "transpose",
    "flatten",
    "narrow",
    "cat",
    "batch_norm2d",
];

type CaseFn = dyn Fn(&[Var]) -> gradlab_autograd::Result<Var> + Send + Sync;

/// A function of named f64 inputs, ready for [`gradcheck`] or [`gradgradcheck`].
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

    /// First derivatives ([`gradcheck`]) or, with `second_order`, second
    /// derivatives ([`gradgradcheck`], whose report has one more row: the
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

    /// Builds the case `args` describe (see `gradlab gradcheck --help`).
    pub fn from_args(args: &GradcheckArgs) -> Result<GradcheckCase, String> {
        let op = args.op.as_str();
        if !GRADCHECK_OPS.contains(&op) {
            return Err(format!(
                "gradcheck: unknown op '{op}'; known ops: {}",
                GRADCHECK_OPS.join(" ")
            ));
        }
        let mut rng = Rng::new(args.seed);
        let shape = |i: usize| args.shapes.get(i).cloned();
        let first = shape(0).unwrap_or_else(|| default_shape(op));
        let mut draw = |name: &str, dims: Vec<usize>, values: Values| {
            (name.to_string(), values.draw(&dims, &mut rng))
        };
        let case = |inputs: Vec<(String, Tensor)>, function: Box<CaseFn>| {
            Ok(GradcheckCase {
                op: op.to_string(),
                inputs,
                function,
            })
        };
        match op {
            "add" | "sub" | "mul" | "div" => {
                let second = shape(1).unwrap_or_else(|| first.clone());
                let divisor = if op == "div" {
                    Values::AwayFromZero
                } else {
                    Values::Normal
                };
                let inputs = vec![draw("a", first, Values::Normal), draw("b", second, divisor)];
                let f: fn(&Var, &Var) -> gradlab_autograd::Result<Var> = match op {
                    "add" => |a, b| a.add(b),
                    "sub" => |a, b| a.sub(b),
                    "mul" => |a, b| a.mul(b),
                    _ => |a, b| a.div(b),
                };
                case(inputs, Box::new(move |v: &[Var]| f(&v[0], &v[1])))
            }
            "neg" | "exp" | "log" | "sqrt" | "relu" | "sigmoid" | "tanh" | "pow" => {
                let values = match op {
                    "log" | "sqrt" | "pow" => Values::Positive,
                    "relu" => Values::AwayFromZero,
                    _ => Values::Normal,
                };
                let exponent = args.exponent.unwrap_or(2.0);
                let f: fn(&Var, f64) -> gradlab_autograd::Result<Var> = match op {
                    "neg" => |x, _| x.neg(),
                    "exp" => |x, _| x.exp(),
                    "log" => |x, _| x.log(),
                    "sqrt" => |x, _| x.sqrt(),
                    "relu" => |x, _| x.relu(),
                    "sigmoid" => |x, _| x.sigmoid(),
                    "tanh" => |x, _| x.tanh(),
                    _ => |x, e| x.powf(e),
                };
                case(
                    vec![draw("x", first, values)],
                    Box::new(move |v: &[Var]| f(&v[0], exponent)),
                )
            }
            "sum" | "mean" => {
                let (dims, keepdim) = (args.dims.clone(), args.keepdim);
                let is_sum = op == "sum";
                let inputs = vec![draw("x", first, Values::Normal)];
                case(
                    inputs,
                    Box::new(move |v: &[Var]| {
                        if is_sum {
                            v[0].sum(dims.as_deref(), keepdim)
                        } else {
                            v[0].mean(dims.as_deref(), keepdim)
                        }
                    }),
                )
            }
            "max_dim" => {
                let (dim, keepdim) = (
                    args.dim.unwrap_or(first.len().saturating_sub(1)),
                    args.keepdim,
                );
                let inputs = vec![draw("x", first, Values::Distinct)];
                case(
                    inputs,
                    Box::new(move |v: &[Var]| Ok(v[0].max_dim(dim, keepdim)?.0)),
                )
            }
            "matmul" | "matmul_bt" => {
                let inner = first.last().copied().unwrap_or(1);
                let second = shape(1).unwrap_or_else(|| {
                    if op == "matmul" {
                        vec![inner, 2]
                    } else {
                        vec![2, inner]
                    }
                });
                let inputs = vec![
                    draw("a", first, Values::Normal),
                    draw("b", second, Values::Normal),
                ];
                let transpose_b = op == "matmul_bt";
                case(
                    inputs,
                    Box::new(move |v: &[Var]| {
                        if transpose_b {
                            v[0].matmul(&v[1].t()?)
                        } else {
                            v[0].matmul(&v[1])
                        }
                    }),
                )
            }
            "linear" => {
                let in_features = first.last().copied().unwrap_or(1);
                let weight =
                    shape(1).unwrap_or_else(|| vec![args.out_features.unwrap_or(3), in_features]);
                let out_features = weight.first().copied().unwrap_or(1);
                let mut inputs = vec![
                    draw("x", first, Values::Normal),
                    draw("weight", weight, Values::Normal),
                ];
                if !args.no_bias {
                    inputs.push(draw(
                        "bias",
                        shape(2).unwrap_or(vec![out_features]),
                        Values::Normal,
                    ));
                }
                case(inputs, Box::new(|v: &[Var]| v[0].linear(&v[1], v.get(2))))
            }
            "conv2d" => {
                let params = conv_params(args);
                let channels = dim_of(op, &first, 1, 4)?;
                let (kh, kw) = args.kernel.unwrap_or((3, 3));
                let weight = shape(1).unwrap_or_else(|| {
                    let groups = params.groups.max(1);
                    vec![
                        args.out_channels.unwrap_or(2 * groups),
                        channels / groups,
                        kh,
                        kw,
                    ]
                });
                let out_channels = weight.first().copied().unwrap_or(1);
                let mut inputs = vec![
                    draw("input", first, Values::Normal),
                    draw("weight", weight, Values::Normal),
                ];
                if !args.no_bias {
                    inputs.push(draw(
                        "bias",
                        shape(2).unwrap_or(vec![out_channels]),
                        Values::Normal,
                    ));
                }
                case(
                    inputs,
                    Box::new(move |v: &[Var]| v[0].conv2d(&v[1], v.get(2), params)),
                )
            }
            "max_pool2d" => {
                let params = pool_params(args);
                case(
                    vec![draw("x", first, Values::Distinct)],
                    Box::new(move |v: &[Var]| v[0].max_pool2d(params)),
                )
            }
            "softmax" | "log_softmax" => {
                let dim = args.dim.unwrap_or(first.len().saturating_sub(1));
                let log = op == "log_softmax";
                case(
                    vec![draw("x", first, Values::Normal)],
                    Box::new(move |v: &[Var]| {
                        if log {
                            v[0].log_softmax(dim)
                        } else {
                            v[0].softmax(dim)
                        }
                    }),
                )
            }
            "cross_entropy" => {
                let (n, classes) = (dim_of(op, &first, 0, 2)?, dim_of(op, &first, 1, 2)?);
                if classes == 0 {
                    return Err(
                        "gradcheck cross_entropy: the logits need at least one class".into(),
                    );
                }
                let reduction: Reduction = args
                    .reduction
                    .parse()
                    .map_err(|e| format!("gradcheck cross_entropy: {e}"))?;
                let smoothing = args.label_smoothing;
                let logits = draw("logits", first, Values::Normal);
                let labels: Vec<i64> = (0..n).map(|_| rng.below(classes) as i64).collect();
                let target = Tensor::from_vec(labels, [n]).map_err(|e| e.to_string())?;
                case(
                    vec![logits],
                    Box::new(move |v: &[Var]| v[0].cross_entropy(&target, reduction, smoothing)),
                )
            }
            "reshape" => {
                let numel: usize = first.iter().product();
                let to = resolve_reshape(args.to.as_deref().unwrap_or(&[-1]), numel)?;
                case(
                    vec![draw("x", first, Values::Normal)],
                    Box::new(move |v: &[Var]| v[0].reshape(to.clone())),
                )
            }
            "permute" => {
                let perm = args
                    .perm
                    .clone()
                    .unwrap_or_else(|| (0..first.len()).rev().collect());
                case(
                    vec![draw("x", first, Values::Normal)],
                    Box::new(move |v: &[Var]| v[0].permute(&perm)),
                )
            }
            "transpose" => {
                let (d0, d1) = (
                    args.dim0.unwrap_or(0),
                    args.dim1.unwrap_or(first.len().saturating_sub(1)),
                );
                case(
                    vec![draw("x", first, Values::Normal)],
                    Box::new(move |v: &[Var]| v[0].transpose(d0, d1)),
                )
            }
            "flatten" => {
                let start_dim = args.start_dim.unwrap_or(0);
                case(
                    vec![draw("x", first, Values::Normal)],
                    Box::new(move |v: &[Var]| v[0].flatten(start_dim)),
                )
            }
            "narrow" => {
                let dim = args.dim.unwrap_or(0);
                let size = first.get(dim).copied().unwrap_or(1);
                let start = args.start.unwrap_or(0);
                let length = args.length.unwrap_or(size.saturating_sub(start + 1).max(1));
                case(
                    vec![draw("x", first, Values::Normal)],
                    Box::new(move |v: &[Var]| v[0].narrow(dim, start, length)),
                )
            }
            "cat" => {
                let shapes = if args.shapes.len() > 1 {
                    args.shapes.clone()
                } else {
                    vec![first; 3]
                };
                let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
                let inputs = shapes
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| draw(names.get(i).copied().unwrap_or("x"), s, Values::Normal))
                    .collect();
                let dim = args.dim.unwrap_or(0);
                case(
                    inputs,
                    Box::new(move |v: &[Var]| Var::cat(&v.iter().collect::<Vec<_>>(), dim)),
                )
            }
            "batch_norm2d" => {
                let channels = dim_of(op, &first, 1, 4)?;
                let eps = 1e-5;
                let inputs = vec![
                    draw("x", first, Values::Normal),
                    draw("weight", vec![channels], Values::Normal),
                    draw("bias", vec![channels], Values::Normal),
                ];
                case(
                    inputs,
                    Box::new(move |v: &[Var]| {
                        gradlab_autograd::batch_norm2d_train(&v[0], Some(&v[1]), Some(&v[2]), eps)
                    }),
                )
            }
            other => Err(format!("gradcheck: unknown op '{other}'")),
        }
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

fn conv_params(args: &GradcheckArgs) -> Conv2dParams {
    Conv2dParams {
        stride: args.stride.unwrap_or((1, 1)),
        padding: args.padding.unwrap_or((0, 0)),
        dilation: args.dilation.unwrap_or((1, 1)),
        groups: args.groups.unwrap_or(1),
    }
}

fn pool_params(args: &GradcheckArgs) -> MaxPool2dParams {
    let kernel = args.kernel.unwrap_or((2, 2));
    MaxPool2dParams {
        kernel,
        // PyTorch's default stride is the kernel size.
        stride: args.stride.unwrap_or(kernel),
        padding: args.padding.unwrap_or((0, 0)),
        dilation: args.dilation.unwrap_or((1, 1)),
        ceil_mode: args.ceil_mode,
    }
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
            } else if known > 0 && numel % known == 0 {
                Ok(numel / known)
            } else {
                Err(format!(
                    "gradcheck reshape: cannot reshape {numel} elements to {to:?}"
                ))
            }
        })
        .collect()
}

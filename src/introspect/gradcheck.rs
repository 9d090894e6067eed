//! `gradlab gradcheck`: one op's analytic gradients (or second derivatives)
//! against central finite differences in f64, printed per input; with
//! `--localize`, every node of its graph checked alone; with `--drift`, its
//! f32 values and gradients against f64. `--model` does the same for a
//! training step of the trainer's models (see [`super::model_check`]).

use super::cases::{GradcheckCase, GRADCHECK_OPS};
use crate::train::ModelKind;
use gradlab_autograd::{GradcheckOptions, GradcheckReport, Localize};
use std::fmt::Write;
use std::process::ExitCode;

/// Flags of `gradlab gradcheck`: the op (or model), its input shapes and
/// attributes, the check's step, tolerances and modes.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["op", "model"])))]
pub struct GradcheckArgs {
    /// The op, named as in the fixtures (add sub mul div neg exp log sqrt relu sigmoid
    /// tanh pow sum mean max_dim matmul matmul_bt linear conv2d max_pool2d softmax
    /// log_softmax cross_entropy reshape permute transpose flatten narrow squeeze unsqueeze cat batch_norm2d).
    #[arg(long)]
    pub op: Option<String>,
    /// Check one training step of the trainer's model instead of one op:
    /// its loss on a small random batch in f64, every parameter along random
    /// directions, and (with --localize, or when that fails) every node alone.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Images in the --model batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Check every node of the graph alone (its backward against finite
    /// differences of its own forward) and print the per-node table; exits
    /// non-zero unless every node agrees.
    #[arg(long)]
    pub localize: bool,
    /// Print, per node, how far f32 values and gradients are from f64 ones
    /// (from the same inputs) instead of checking gradients.
    #[arg(long)]
    pub drift: bool,
    /// Fast mode: check each input along N random directions instead of
    /// every element (default: every element for --op, 3 directions for --model).
    #[arg(long)]
    pub directions: Option<usize>,
    /// Localisation checks every element of a node input up to N elements,
    /// and a random sample of N plus 2 random directions above that (default 256).
    #[arg(long)]
    pub node_elements: Option<usize>,
    /// Count non-differentiable points (ReLU at 0, ties in a max) as
    /// failures instead of reporting them apart.
    #[arg(long)]
    pub kinks_fail: bool,
    /// Records an op whose backward is deliberately wrong by a factor of 2
    /// (after relu1 of --model, after the op of --op), to see a failure
    /// found and localised.
    #[arg(long, hide = true)]
    pub inject_wrong_op: bool,
    /// An input's shape, e.g. `2,3,9,9`; repeat for the 2nd, 3rd input (others follow from the op).
    #[arg(long = "shape", value_parser = parse_dims)]
    pub shapes: Vec<Vec<usize>>,
    /// Window size (conv2d weight, max_pool2d): `3` or `3,2`.
    #[arg(long, value_parser = parse_pair)]
    pub kernel: Option<(usize, usize)>,
    /// Stride of conv2d and max_pool2d: `2` or `2,1` (default: 1 for
    /// conv2d, the window size for max_pool2d, as in PyTorch).
    #[arg(long, value_parser = parse_pair)]
    pub stride: Option<(usize, usize)>,
    /// Zero padding of conv2d (negative infinity for max_pool2d) on each
    /// side: `1` or `1,0` (default 0).
    #[arg(long, value_parser = parse_pair)]
    pub padding: Option<(usize, usize)>,
    /// Spacing between window elements of conv2d and max_pool2d: `2` or
    /// `2,1` (default 1).
    #[arg(long, value_parser = parse_pair)]
    pub dilation: Option<(usize, usize)>,
    /// conv2d's groups: input and output channels are split into this many
    /// groups, each convolved alone (default 1).
    #[arg(long)]
    pub groups: Option<usize>,
    /// max_pool2d rounds its output size up instead of down (PyTorch's ceil_mode).
    #[arg(long)]
    pub ceil_mode: bool,
    /// conv2d output channels when no weight shape is given.
    #[arg(long)]
    pub out_channels: Option<usize>,
    /// linear output features when no weight shape is given.
    #[arg(long)]
    pub out_features: Option<usize>,
    /// conv2d and linear without a bias input.
    #[arg(long)]
    pub no_bias: bool,
    /// The dim of max_dim, softmax, log_softmax, narrow, cat, squeeze and
    /// unsqueeze (default: last for max_dim, softmax and squeeze, 0
    /// otherwise); negative dims count from the end.
    #[arg(long, allow_hyphen_values = true)]
    pub dim: Option<isize>,
    /// Reduced dims of sum/mean, e.g. `0,-1` (default: all).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub dims: Option<Vec<isize>>,
    /// sum, mean and max_dim keep each reduced dim as a dim of size 1.
    #[arg(long)]
    pub keepdim: bool,
    /// pow's exponent (default 2).
    #[arg(long, allow_hyphen_values = true)]
    pub exponent: Option<f64>,
    /// reshape's target shape, one dim may be -1 (default: -1).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub to: Option<Vec<i64>>,
    /// permute's order (default: reversed).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub perm: Option<Vec<isize>>,
    /// transpose's first dim (default 0).
    #[arg(long, allow_hyphen_values = true)]
    pub dim0: Option<isize>,
    /// transpose's second dim (default: the last).
    #[arg(long, allow_hyphen_values = true)]
    pub dim1: Option<isize>,
    /// flatten's first merged dim (default 0).
    #[arg(long, allow_hyphen_values = true)]
    pub start_dim: Option<isize>,
    /// narrow's start (default 0).
    #[arg(long)]
    pub start: Option<usize>,
    /// narrow's length (default: all but the last element after start).
    #[arg(long)]
    pub length: Option<usize>,
    /// cross_entropy's reduction: mean, sum or none.
    #[arg(long, default_value = "mean")]
    pub reduction: String,
    /// cross_entropy's label smoothing, between 0 and 1.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Seed of the inputs (and of the output cotangent).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Check second derivatives (gradgradcheck) instead of first.
    #[arg(long)]
    pub second_order: bool,
    /// Finite-difference step (default 1e-6).
    #[arg(long)]
    pub eps: Option<f64>,
    /// Absolute tolerance (default 1e-5).
    #[arg(long)]
    pub atol: Option<f64>,
    /// Relative tolerance (default 1e-3).
    #[arg(long)]
    pub rtol: Option<f64>,
}

impl GradcheckArgs {
    /// Step, tolerances, seed and modes from the flags, defaults elsewhere.
    pub fn options(&self) -> GradcheckOptions {
        let d = GradcheckOptions::default();
        GradcheckOptions {
            eps: self.eps.unwrap_or(d.eps),
            atol: self.atol.unwrap_or(d.atol),
            rtol: self.rtol.unwrap_or(d.rtol),
            seed: self.seed,
            kinks_fail: self.kinks_fail,
            directions: self.directions,
            localize: if self.localize {
                Localize::Always
            } else {
                Localize::OnFailure
            },
            node_elements: self.node_elements.or(d.node_elements),
        }
    }
}

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<T>()
                .map_err(|_| format!("'{p}' in '{s}' is not {what}"))
        })
        .collect()
}

/// `2,3,9,9` -> `[2, 3, 9, 9]` (an empty string is a scalar's shape).
pub fn parse_dims(s: &str) -> Result<Vec<usize>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    parse_list(s, "a size")
}

/// `3` -> `(3, 3)`, `3,2` -> `(3, 2)`.
pub fn parse_pair(s: &str) -> Result<(usize, usize), String> {
    match parse_list::<usize>(s, "a size")?.as_slice() {
        [a] => Ok((*a, *a)),
        [a, b] => Ok((*a, *b)),
        _ => Err(format!("expected one or two sizes, got '{s}'")),
    }
}

/// The printed result: what was checked, each input, the per-input table
/// and a closing PASSED/FAILED line.
pub fn render(
    case: &GradcheckCase,
    report: &GradcheckReport,
    second_order: bool,
    opts: &GradcheckOptions,
) -> String {
    let mut out = String::new();
    let order = if second_order {
        "second derivatives (gradgradcheck)"
    } else {
        "first derivatives"
    };
    let _ = writeln!(
        out,
        "gradcheck {}: {order} against central differences in f64",
        case.op
    );
    let _ = writeln!(
        out,
        "  step {:e}; an element passes when |analytic - numeric| <= {:e} + {:e} * |numeric|",
        opts.eps, opts.atol, opts.rtol
    );
    for (i, (name, value)) in case.inputs.iter().enumerate() {
        let _ = writeln!(out, "  input {i}: {name} {:?}", value.dims());
    }
    if second_order {
        let _ = writeln!(
            out,
            "  input {}: the output cotangent (second derivatives mix it with every input)",
            case.inputs.len()
        );
    }
    out.push_str(&report.to_string());
    out.push_str(&verdict(report));
    out
}

/// The closing line: PASSED, or FAILED with the inputs out of tolerance
/// and the first node that disagrees.
pub(crate) fn verdict(report: &GradcheckReport) -> String {
    let mut failures = Vec::new();
    let failed: Vec<String> = report
        .inputs
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.label())
        .collect();
    if !failed.is_empty() {
        failures.push(format!("input {} out of tolerance", failed.join(", ")));
    }
    if let Some(nodes) = &report.localization {
        if let Some(first) = nodes.first_disagreement() {
            failures.push(format!(
                "node {} {} disagrees (called at {})",
                first.number, first.op, first.location
            ));
        }
        let unchecked = nodes.not_checked().count();
        if unchecked > 0 {
            failures.push(format!("{} not checked", count(unchecked, "node")));
        }
    }
    if failures.is_empty() {
        let nodes = match &report.localization {
            Some(nodes) => format!("; every node agrees ({})", count(nodes.nodes.len(), "node")),
            None => String::new(),
        };
        format!(
            "PASSED: every probe of {} within tolerance{nodes}\n",
            count(report.inputs.len(), "input")
        )
    } else {
        format!("FAILED: {}\n", failures.join("; "))
    }
}

/// `1 node`, `2 nodes`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Success when every input is within tolerance and, when nodes were
/// checked alone, every node was checked and agrees.
pub(crate) fn exit_code(report: &GradcheckReport) -> ExitCode {
    let nodes_agree = report.localization.as_ref().is_none_or(|n| n.passed());
    if report.passed() && nodes_agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks `case` and returns the printed result and the process exit code
/// (failure when any input is out of tolerance or a node checked alone
/// disagrees).
pub fn check_case(
    case: &GradcheckCase,
    second_order: bool,
    opts: GradcheckOptions,
) -> Result<(String, ExitCode), String> {
    let report = case.check(second_order, opts)?;
    let text = render(case, &report, second_order, &opts);
    Ok((text, exit_code(&report)))
}

/// Refuses `--shape`s whose element count overflows or whose f64 values
/// the machine cannot hold, before any input is drawn (an unchecked
/// `2^32 x 2^32` wrapped to an empty tensor; a large one aborted the
/// process in the allocator).
pub fn check_input_sizes(shapes: &[Vec<usize>]) -> Result<(), String> {
    for dims in shapes {
        let flag = || {
            let sizes: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("gradcheck --shape {}", sizes.join(","))
        };
        let n = gradlab_tensor::Shape::from(dims.as_slice())
            .checked_numel("gradcheck")
            .map_err(|e| format!("{}: {e}", flag()))?;
        gradlab_cpu::try_vec::<f64>("gradcheck", n).map_err(|e| format!("{}: {e}", flag()))?;
    }
    Ok(())
}

/// What `gradlab gradcheck` prints for `args`, and its exit code.
pub fn execute(args: &GradcheckArgs) -> Result<(String, ExitCode), String> {
    if let Some(kind) = args.model {
        return super::model_check::run(kind, args);
    }
    if args.op.as_deref().unwrap_or("").is_empty() {
        return Err(format!(
            "gradcheck: --op or --model is required; known ops: {}",
            GRADCHECK_OPS.join(" ")
        ));
    }
    check_input_sizes(&args.shapes)?;
    let case = GradcheckCase::from_args(args)?;
    if args.drift {
        let report = case.drift(args.seed)?;
        let text = format!(
            "drift {}: the op on its gradcheck inputs, rounded to f32\n{report}",
            case.op
        );
        return Ok((text, ExitCode::SUCCESS));
    }
    check_case(&case, args.second_order, args.options())
}

/// `gradlab gradcheck`: prints the table (or the drift report); exits
/// non-zero on failure.
pub fn run(args: &GradcheckArgs) -> Result<ExitCode, String> {
    let (text, code) = execute(args)?;
    print!("{text}");
    Ok(code)
}

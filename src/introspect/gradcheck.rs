//! `gradlab gradcheck`: one op's analytic gradients (or second derivatives)
//! against central finite differences in f64, printed per input.

use super::cases::{GradcheckCase, GRADCHECK_OPS};
use gradlab_autograd::{GradcheckOptions, GradcheckReport};
use std::fmt::Write;
use std::process::ExitCode;

/// Flags of `gradlab gradcheck`: the op, its input shapes and attributes,
/// and the check's step and tolerances.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GradcheckArgs {
    /// The op, named as in the fixtures (add sub mul div neg exp log sqrt relu sigmoid
    /// tanh pow sum mean max_dim matmul matmul_bt linear conv2d max_pool2d softmax
    /// log_softmax cross_entropy reshape permute transpose flatten narrow cat batch_norm2d).
    #[arg(long)]
    pub op: String,
    /// An input's shape, e.g. `2,3,9,9`; repeat for the 2nd, 3rd input (others follow from the op).
    #[arg(long = "shape", value_parser = parse_dims)]
    pub shapes: Vec<Vec<usize>>,
    /// Window size (conv2d weight, max_pool2d): `3` or `3,2`.
    #[arg(long, value_parser = parse_pair)]
    pub kernel: Option<(usize, usize)>,
    #[arg(long, value_parser = parse_pair)]
    pub stride: Option<(usize, usize)>,
    #[arg(long, value_parser = parse_pair)]
    pub padding: Option<(usize, usize)>,
    #[arg(long, value_parser = parse_pair)]
    pub dilation: Option<(usize, usize)>,
    #[arg(long)]
    pub groups: Option<usize>,
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
    /// The dim of max_dim, softmax, log_softmax, narrow, cat (default: last for
    /// max_dim and softmax, 0 otherwise).
    #[arg(long)]
    pub dim: Option<usize>,
    /// Reduced dims of sum/mean, e.g. `0,2` (default: all).
    #[arg(long, value_delimiter = ',')]
    pub dims: Option<Vec<usize>>,
    #[arg(long)]
    pub keepdim: bool,
    /// pow's exponent (default 2).
    #[arg(long, allow_hyphen_values = true)]
    pub exponent: Option<f64>,
    /// reshape's target shape, one dim may be -1 (default: -1).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub to: Option<Vec<i64>>,
    /// permute's order (default: reversed).
    #[arg(long, value_delimiter = ',')]
    pub perm: Option<Vec<usize>>,
    #[arg(long)]
    pub dim0: Option<usize>,
    #[arg(long)]
    pub dim1: Option<usize>,
    /// flatten's first merged dim (default 0).
    #[arg(long)]
    pub start_dim: Option<usize>,
    /// narrow's start (default 0).
    #[arg(long)]
    pub start: Option<usize>,
    /// narrow's length (default: all but the last element after start).
    #[arg(long)]
    pub length: Option<usize>,
    /// cross_entropy's reduction: mean or sum.
    #[arg(long, default_value = "mean")]
    pub reduction: String,
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
    /// Step, tolerances and seed from the flags, defaults elsewhere.
    pub fn options(&self) -> GradcheckOptions {
        let d = GradcheckOptions::default();
        GradcheckOptions {
            eps: self.eps.unwrap_or(d.eps),
            atol: self.atol.unwrap_or(d.atol),
            rtol: self.rtol.unwrap_or(d.rtol),
            seed: self.seed,
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
    let failed: Vec<String> = report
        .inputs
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.input.to_string())
        .collect();
    if failed.is_empty() {
        let _ = writeln!(
            out,
            "PASSED: every element of {} inputs within tolerance",
            report.inputs.len()
        );
    } else {
        let _ = writeln!(out, "FAILED: input {} out of tolerance", failed.join(", "));
    }
    out
}

/// Checks `case` and returns the printed result and the process exit code
/// (failure when any input is out of tolerance).
pub fn check_case(
    case: &GradcheckCase,
    second_order: bool,
    opts: GradcheckOptions,
) -> Result<(String, ExitCode), String> {
    let report = case.check(second_order, opts)?;
    let text = render(case, &report, second_order, &opts);
    let code = if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    Ok((text, code))
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

/// `gradlab gradcheck`: prints the table; exits non-zero on failure.
pub fn run(args: &GradcheckArgs) -> Result<ExitCode, String> {
    if args.op.is_empty() {
        return Err(format!(
            "gradcheck: --op is required; known ops: {}",
            GRADCHECK_OPS.join(" ")
        ));
    }
    check_input_sizes(&args.shapes)?;
    let case = GradcheckCase::from_args(args)?;
    let (text, code) = check_case(&case, args.second_order, args.options())?;
    print!("{text}");
    Ok(code)
}

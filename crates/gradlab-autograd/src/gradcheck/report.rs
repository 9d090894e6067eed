//! What a gradient check found, per input, and how it prints.

use super::localize::Localization;
use std::fmt;

/// Where an analytic and a numeric derivative were compared: one element
/// (its multi-index) or one random direction (its number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Element(Vec<usize>),
    Direction(usize),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Element(index) => write!(f, "{index:?}"),
            Probe::Direction(d) => write!(f, "direction {d}"),
        }
    }
}

/// How much of an input a check compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Every element, one at a time.
    Every(usize),
    /// A seeded random sample of `elements` of its `of` elements, plus
    /// `directions` random directions over all of them.
    Sample {
        elements: usize,
        of: usize,
        directions: usize,
    },
    /// Only random directions over all elements (the fast mode).
    Directions(usize),
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Coverage::Every(n) => write!(f, "all {n}"),
            Coverage::Sample {
                elements,
                of,
                directions,
            } => write!(f, "{elements}/{of}+{directions}d"),
            Coverage::Directions(n) => write!(f, "{n} dirs"),
        }
    }
}

/// A non-differentiable point: the central difference straddles a kink
/// (ReLU at 0, a tie for a maximum, |x| at 0, a clamp bound). The two
/// one-sided differences disagree, and the analytic derivative is one of
/// them or lies between them: a valid choice of subgradient, not an error.
#[derive(Clone, Debug, PartialEq)]
pub struct Kink {
    pub at: Probe,
    pub analytic: f64,
    /// `(f(x) - f(x - eps)) / eps`
    pub left: f64,
    /// `(f(x + eps) - f(x)) / eps`
    pub right: f64,
}

/// The result for one input: its worst element (or direction).
#[derive(Clone, Debug)]
pub struct InputReport {
    pub input: usize,
    /// The input's name, when it has one (a model's parameter).
    pub name: Option<String>,
    pub shape: Vec<usize>,
    /// What was compared: every element, a sample, or random directions.
    pub coverage: Coverage,
    pub max_abs_error: f64,
    /// `|analytic - numeric| / |numeric|`, over the probes whose numeric
    /// derivative is above `atol` (relative error means little near zero).
    pub max_rel_error: f64,
    /// The probe with the largest tolerance-scaled error
    /// `|analytic - numeric| / (atol + rtol * |numeric|)` (above 1 fails).
    pub worst: Probe,
    pub analytic: f64,
    pub numeric: f64,
    /// Non-differentiable points met; they fail the check only with
    /// [`super::GradcheckOptions::kinks_fail`].
    pub kinks: Vec<Kink>,
    pub passed: bool,
}

impl InputReport {
    /// The input's name, or its position.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.input.to_string())
    }
}

/// Per-input results of [`super::gradcheck()`], notes on how inputs were
/// treated, and the node-by-node check when one ran.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub inputs: Vec<InputReport>,
    /// How inputs were handled (an input whose memory overlaps is checked
    /// on a contiguous copy, and says so here).
    pub notes: Vec<String>,
    /// Every node of the recorded graph checked alone: present when the
    /// whole check failed (with [`super::Localize::OnFailure`], the
    /// default) or when asked for ([`super::Localize::Always`]).
    pub localization: Option<Localization>,
    /// Whether non-differentiable points counted as failures.
    pub kinks_fail: bool,
}

impl GradcheckReport {
    /// True when every input is within tolerance (non-differentiable points apart).
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.passed)
    }

    /// The number of non-differentiable points met over all inputs.
    pub fn kinks(&self) -> usize {
        self.inputs.iter().map(|r| r.kinks.len()).sum()
    }
}

/// How many kinks a report line lists before "and N more".
const KINKS_LISTED: usize = 4;

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label_width = self
            .inputs
            .iter()
            .map(|r| r.label().len())
            .max()
            .unwrap_or(0)
            .max(5);
        writeln!(
            f,
            "{:<label_width$} {:<16} {:>12} {:>11} {:>11} {:<14} {:>14} {:>14} {:>5}  result",
            "input",
            "shape",
            "checked",
            "max abs err",
            "max rel err",
            "worst at",
            "analytic",
            "numeric",
            "kinks"
        )?;
        for r in &self.inputs {
            writeln!(
                f,
                "{:<label_width$} {:<16} {:>12} {:>11.3e} {:>11.3e} {:<14} {:>14.6e} {:>14.6e} {:>5}  {}",
                r.label(),
                format!("{:?}", r.shape),
                r.coverage.to_string(),
                r.max_abs_error,
                r.max_rel_error,
                r.worst.to_string(),
                r.analytic,
                r.numeric,
                r.kinks.len(),
                if r.passed { "ok" } else { "FAIL" }
            )?;
        }
        for r in self.inputs.iter().filter(|r| !r.kinks.is_empty()) {
            write_kinks(f, &r.label(), &r.kinks, self.kinks_fail)?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if let Some(localization) = &self.localization {
            write!(f, "{localization}")?;
        }
        Ok(())
    }
}

/// One line per input with kinks: where, and the one-sided derivatives.
pub(crate) fn write_kinks(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    kinks: &[Kink],
    kinks_fail: bool,
) -> fmt::Result {
    let verdict = if kinks_fail {
        "counted as failures"
    } else {
        "not counted as failures"
    };
    write!(f, "non-differentiable points of input {label} ({verdict}):")?;
    for k in kinks.iter().take(KINKS_LISTED) {
        write!(
            f,
            " at {}: left {:.4e}, right {:.4e}, analytic {:.4e};",
            k.at, k.left, k.right, k.analytic
        )?;
    }
    if kinks.len() > KINKS_LISTED {
        write!(f, " and {} more", kinks.len() - KINKS_LISTED)?;
    }
    writeln!(f)
}

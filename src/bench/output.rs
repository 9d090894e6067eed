//! What a CPU run does with its rows: the sweep's table, `--markdown`,
//! `--json` (with the machine's fingerprint), `--svg`, and `--compare`
//! with `--fail-slower`.

use super::compare::{compare, regressions, table, Comparison};
use super::fingerprint::Fingerprint;
use super::measured::{load_rows, markdown, print_measured, Measured, Report};
use super::peak::MachinePeak;
use super::report::Row;
use super::sweep::{gemm_variants, sweep_conv, sweep_gemm, SweepSizes};
use super::timing::Plan;
use super::{BenchArgs, BenchError, Kernel};
use gradlab_tensor::backend::Kernels;
use std::path::Path;

/// `--kernels` narrows a table to one family of variants (the baselines
/// stay, so that ratios keep their meaning).
pub(crate) fn shown(row: &Row) -> bool {
    match gradlab_tensor::backend::chosen_kernels() {
        None => true,
        Some(Kernels::Reference) => !row.variant.starts_with("fast"),
        Some(Kernels::Fast) => row.variant != "reference",
    }
}

/// The sweep `args` asks for, printed as it goes.
pub(crate) fn sweep(args: &BenchArgs, peak: &MachinePeak, threads: usize) -> Vec<Measured> {
    let sizes = if args.quick {
        SweepSizes::quick()
    } else {
        SweepSizes::full()
    };
    // Repetitions by time: at least 3, more while under the budget.
    let plan = if args.quick {
        Plan::with_budget(true, 9, 0.1)
    } else {
        Plan::with_budget(false, 25, 0.3)
    };
    let mut rows: Vec<Measured> = Vec::new();
    let mut emit = |m: Measured| {
        if shown(&m.row) {
            print_measured(&m, rows.is_empty());
            rows.push(m);
        }
    };
    if matches!(args.what, Kernel::Gemm | Kernel::All) {
        sweep_gemm(
            &sizes.gemm,
            &gemm_variants(threads),
            &plan,
            peak,
            threads,
            &mut emit,
        );
    }
    if matches!(args.what, Kernel::Conv2d | Kernel::All) {
        sweep_conv(&sizes.conv_batches, &plan, peak, threads, &mut emit);
    }
    if args.what == Kernel::Maxpool {
        println!("(--sweep covers gemm and conv2d; max-pool has its fixed case without --sweep)");
    }
    rows
}

/// Writes `bytes` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            BenchError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
}

/// Markdown, JSON, SVG and the comparison, as `args` asks.
pub(crate) fn finish(
    args: &BenchArgs,
    rows: Vec<Measured>,
    peak: &MachinePeak,
    machine: Fingerprint,
    threads: usize,
) -> Result<(), BenchError> {
    if args.markdown && !rows.is_empty() {
        println!();
        print!("{}", markdown(&rows));
    }
    if let Some(path) = &args.svg {
        if rows.is_empty() {
            return Err(BenchError::Output("--svg: no rows to draw".into()));
        }
        super::pictures::figure(&rows, peak, threads)
            .write(path)
            .map_err(|e| BenchError::Output(e.to_string()))?;
        println!("wrote {}", path.display());
    }
    let report = Report { machine, rows };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        write_atomically(path, text.as_bytes())?;
    }
    if let Some(old_path) = &args.compare {
        let comparisons = compare_with_file(&report.rows, old_path)?;
        println!(
            "\ncompared with {} ({} of {} rows matched):",
            old_path.display(),
            comparisons.len(),
            report.rows.len()
        );
        print!("{}", table(&comparisons));
        if let Some(percent) = args.fail_slower {
            fail_on_regressions(&comparisons, percent, old_path)?;
        }
    }
    Ok(())
}

/// `rows` against the report at `old_path` (rows matched by kernel, shape,
/// variant and threads).
pub fn compare_with_file(
    rows: &[Measured],
    old_path: &Path,
) -> Result<Vec<Comparison>, BenchError> {
    let old = load_rows(old_path).map_err(BenchError::Output)?;
    Ok(compare(rows, &old))
}

/// `--fail-slower`: a [`BenchError::Regression`] naming every row judged
/// slower (beyond both runs' spread) whose median grew by more than
/// `percent`.
pub fn fail_on_regressions(
    comparisons: &[Comparison],
    percent: f64,
    old_path: &Path,
) -> Result<(), BenchError> {
    let slower = regressions(comparisons, percent);
    if slower.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = slower
        .iter()
        .map(|c| format!("{} {} {} ({:.2}x)", c.kernel, c.shape, c.variant, c.ratio))
        .collect();
    Err(BenchError::Regression {
        count: slower.len(),
        percent,
        old: old_path.display().to_string(),
        rows: names.join("; "),
    })
}

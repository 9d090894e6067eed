//! `gradlab bench`: the CPU kernels side by side with their baselines, as a
//! table of medians, GFLOP/s (GB/s for the memory-bound max-pool), the share
//! of this machine's measured peak and the speed-up over the baseline
//! (matrixmultiply for GEMM, the reference twin for conv and max-pool).
//!
//! The peaks are measured at the start of every run (a few tenths of a
//! second), on the same thread pool, so that shares compare like with like.

mod cases;
mod compare;
mod fingerprint;
mod gemm_crate;
mod measured;
mod output;
mod peak;
mod pictures;
mod report;
mod sweep;
mod timing;

use std::path::PathBuf;

pub use compare::{compare, regressions, Comparison, Verdict};
pub use fingerprint::{cpu_model, Cache, Fingerprint};
pub use gemm_crate::gemm_crate_sgemm;
pub use measured::{load_rows, markdown, rank, Check, Measured, Report};
pub use output::{compare_with_file, fail_on_regressions};
pub use peak::MachinePeak;
pub use pictures::figure;
pub use report::Row;
pub use sweep::{gemm_variants, geometric, sweep_conv, sweep_gemm, GemmVariant, SweepSizes};
pub use timing::{Plan, Timing};

/// Which kernel family to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernel {
    Gemm,
    Conv2d,
    Maxpool,
    /// Every kernel family.
    All,
    /// Only the machine's FMA peak and memory bandwidth.
    Peak,
}

/// Where the kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDevice {
    Cpu,
    Cuda,
}

/// Arguments of `gradlab bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Kernel family to measure.
    #[arg(value_enum, default_value = "all")]
    pub what: Kernel,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the rows, with the machine's fingerprint, as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Fewer sizes and repetitions.
    #[arg(long)]
    pub quick: bool,
    /// Device to benchmark.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BenchDevice,
    /// Convolution algorithm of the conv2d rows: auto, direct, batch-lanes,
    /// im2col, winograd, winograd-2x2 or winograd-4x4 (default: a row for each
    /// method that applies, and auto's pick). Also the algorithm of any
    /// other convolution the run makes.
    #[arg(long)]
    pub conv_algo: Option<gradlab_cpu::ConvAlgo>,
    /// Sweep sizes instead of the fixed cases: square GEMM from 32 to 4096
    /// (about 1.25x apart), LeNet's convolutions over batch sizes; every
    /// variant checked against its reference twin before it is timed.
    #[arg(long)]
    pub sweep: bool,
    /// Write GFLOP/s against size (a line per variant) and a roofline with
    /// every kernel placed, as SVG, to this file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Also print the rows as a Markdown table.
    #[arg(long)]
    pub markdown: bool,
    /// Compare with an earlier `--json` file: per row new/old and a verdict
    /// that takes the spread of both runs into account.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// With --compare: exit with an error when a row is slower beyond its
    /// spread and its median grew by more than this many percent.
    #[arg(long, requires = "compare")]
    pub fail_slower: Option<f64>,
}

/// Why a benchmark run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench --device cuda: {0}")]
    Cuda(#[from] gradlab_cuda::CudaError),
    #[error("bench: {0}")]
    Threads(String),
    #[error("bench: cannot build a pool of {threads} threads: {message}")]
    ThreadPool { threads: usize, message: String },
    #[error("bench: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bench: cannot encode the results as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bench: {0}")]
    Output(String),
    #[error("bench: {count} row(s) slower than {old} by more than {percent}%: {rows}")]
    Regression {
        count: usize,
        percent: f64,
        old: String,
        rows: String,
    },
}

/// The GPU kernels' table from `gradlab_cuda::bench` (every family; `--quick`
/// measures one matmul size and a small batch, as `cuda_bench --quick`).
fn run_cuda(args: &BenchArgs) -> Result<(), BenchError> {
    use gradlab_cuda::bench::{format_table, run_cuda_bench, BenchOptions};
    let gpu = gradlab_cuda::Gpu::global()?;
    let mut opts = BenchOptions::default();
    if args.quick {
        opts.matmul_sizes = vec![1024];
        opts.batch = 32;
        opts.min_time_ms = 10.0;
    }
    println!("device: {} ({} SMs)", gpu.name(), gpu.sm_count());
    print!("{}", format_table(&run_cuda_bench(&gpu, &opts)?));
    Ok(())
}

/// Runs the benchmarks `args` asks for, prints the table and writes the JSON file.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    if args.device == BenchDevice::Cuda {
        return run_cuda(args);
    }
    crate::threads::check_threads(args.threads).map_err(BenchError::Threads)?;
    let threads = args.threads.unwrap_or_else(crate::threads::cores);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| BenchError::ThreadPool {
            threads,
            message: e.to_string(),
        })?;
    if let Some(algo) = args.conv_algo {
        gradlab_cpu::set_conv_algo(algo);
    }
    if let Some(old) = &args.compare {
        // Read before measuring, so that a bad file costs no benchmark run.
        measured::load_rows(old).map_err(BenchError::Output)?;
    }
    let (rows, peak, machine) = pool.install(|| {
        let peak = MachinePeak::measure(args.quick);
        println!("{}", peak.describe(threads));
        let machine = fingerprint::Fingerprint::collect(&peak, threads);
        println!("machine: {}", machine.describe());
        if args.what == Kernel::Peak {
            return (Vec::new(), peak, machine);
        }
        if args.sweep {
            let rows = output::sweep(args, &peak, threads);
            return (rows, peak, machine);
        }
        let plan = timing::Plan::new(args.quick);
        let mut rows = Vec::new();
        let mut emit = |row: Row| {
            if output::shown(&row) {
                report::print_row(&row, rows.is_empty());
                let timing = plan.timing_of(row.median_s);
                rows.push(Measured::new(row, timing));
            }
        };
        if matches!(args.what, Kernel::Gemm | Kernel::All) {
            cases::gemm(&plan, &peak, threads, &mut emit);
        }
        if matches!(args.what, Kernel::Conv2d | Kernel::All) {
            cases::conv2d(&plan, &peak, threads, args.conv_algo, &mut emit);
        }
        if matches!(args.what, Kernel::Maxpool | Kernel::All) {
            cases::maxpool(&plan, &peak, threads, &mut emit);
        }
        (rows, peak, machine)
    });
    output::finish(args, rows, &peak, machine, threads)
}

/// The baseline GEMM: `c = a · b` for row-major `m×k` and `k×n` f32
/// matrices, through the matrixmultiply crate (single-threaded, as the
/// workspace builds it).
///
/// # Panics
/// If a slice is shorter than its matrix.
pub fn baseline_sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "baseline_sgemm: slices of {}, {} and {} elements cannot hold {m}x{k}, {k}x{n} and {m}x{n} matrices",
        a.len(),
        b.len(),
        c.len()
    );
    // SAFETY: the lengths were checked above and the strides describe
    // row-major matrices inside them.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

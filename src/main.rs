//! The `gradlab` command line: train, eval, runs, fixtures, gradcheck, bench, graph, profile.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gradlab",
    version,
    about = "A from-scratch tensor and autodiff engine you can see into"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Kernels for CPU tensors: `fast` (SIMD, threads) or `reference` (the
    /// plain loops you can step through). Also read from GRADLAB_KERNELS.
    /// In `bench`, shows only that family of variants.
    #[arg(long, global = true)]
    kernels: Option<gradlab::tensor::backend::Kernels>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a directory of PyTorch reference cases (manifest.json + safetensors or JSON case files).
    Fixtures(gradlab::fixtures::FixturesArgs),
    /// Time every kernel variant side by side against the machine's measured peak.
    Bench(gradlab::bench::BenchArgs),
    /// Train a classifier on CIFAR-10 or Fashion-MNIST, keeping the run in `runs/<model>-<date>-<time>/`.
    Train(Box<gradlab::train::TrainArgs>),
    /// Test accuracy of a run (`--run DIR`) or of a checkpoint file.
    Eval(gradlab::train::EvalArgs),
    /// List the runs kept under runs/, or draw several runs' curves in one picture (`--plot A B`).
    Runs(gradlab::runs::RunsArgs),
    /// Write a training step's autograd graph as Graphviz DOT (and SVG when `dot` is installed).
    Graph(gradlab::introspect::GraphArgs),
    /// Profile the trainer's step node by node: time, FLOPs, bytes, saved memory, roofline.
    Profile(gradlab::profile::ProfileArgs),
    /// Check an op's or a model's gradients against finite differences, node by node on request.
    Gradcheck(Box<gradlab::introspect::GradcheckArgs>),
}

/// Training allocates and frees the same large activations every step.
/// glibc would serve each with a fresh mmap and zero its pages again on first
/// touch; keeping them in the heap lets the next step reuse warm memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_in_the_heap() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only tunes glibc's allocator; it is called before any
    // other thread exists, and both values are within glibc's documented limits.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 512 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_in_the_heap() {}

/// Lets a closed pipe end the process quietly, as it ends `cat` or `seq`.
///
/// Rust ignores SIGPIPE, so a write to a closed pipe (`gradlab fixtures DIR
/// | head -1`) returns an error and `println!` panics on it. With the
/// default action restored the kernel ends the process at that write, with
/// no message, which is what a shell pipeline expects of a command-line tool.
#[cfg(unix)]
fn die_quietly_on_closed_pipes() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: restoring a signal's default action is always sound; it is
    // done before any other thread exists.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn die_quietly_on_closed_pipes() {}

fn main() -> ExitCode {
    die_quietly_on_closed_pipes();
    keep_large_allocations_in_the_heap();
    let cli = Cli::parse();
    gradlab::tensor::backend::set_kernels(cli.kernels);
    let result = match &cli.command {
        Command::Fixtures(args) => gradlab::fixtures::run(args),
        Command::Bench(args) => gradlab::bench::run(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
        Command::Train(args) => gradlab::train::run_train(args),
        Command::Eval(args) => gradlab::train::run_eval(args),
        Command::Runs(args) => gradlab::runs::run(args),
        Command::Graph(args) => gradlab::introspect::run_graph(args),
        Command::Gradcheck(args) => gradlab::introspect::run_gradcheck(args),
        Command::Profile(args) => gradlab::profile::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

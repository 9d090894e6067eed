//! `cargo bench --bench bench_table -- [gemm|conv2d|maxpool|all|peak] [--threads N] [--quick] [--json FILE]`:
//! the `gradlab bench` table, runnable without the binary.

use clap::Parser;
use gradlab::bench;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: bench::BenchArgs,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match bench::run(&cli.args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The `gradlab` command line: train, eval, fixtures, gradcheck, bench, graph.

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
}

#[derive(Subcommand)]
enum Command {
    /// Run a directory of PyTorch reference cases (manifest.json + safetensors).
    Fixtures(gradlab::fixtures::FixturesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Fixtures(args) => gradlab::fixtures::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

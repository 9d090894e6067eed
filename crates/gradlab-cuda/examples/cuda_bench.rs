//! Prints the CUDA kernel benchmark table (see `gradlab_cuda::bench`).
//!
//! `cuda_bench [--tsv FILE] [--quick] [--batch N]`: `--tsv` also writes
//! tab-separated rows for scripts; `--quick` measures one matmul size and a
//! small batch; `--batch` (or the GRADLAB_BENCH_BATCH variable) sets the batch
//! of the conv and pool cases (default 256), which the PyTorch side of
//! scripts/gpu-check.sh uses too.

use gradlab_cuda::bench::{format_table, format_tsv, run_cuda_bench, BenchOptions};
use gradlab_cuda::Gpu;

fn fail(msg: &str) -> ! {
    eprintln!("cuda_bench: {msg}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| {
        args.iter().position(|a| a == flag).map(|i| {
            args.get(i + 1)
                .cloned()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        })
    };
    let mut opts = BenchOptions::default();
    if args.iter().any(|a| a == "--quick") {
        opts.matmul_sizes = vec![1024];
        opts.batch = 32;
        opts.min_time_ms = 10.0;
    }
    let batch = value_of("--batch").or_else(|| std::env::var("GRADLAB_BENCH_BATCH").ok());
    if let Some(b) = batch {
        opts.batch = match b.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => fail(&format!("batch must be a positive integer, got {b:?}")),
        };
    }
    let tsv_path = value_of("--tsv");
    let result = Gpu::global().and_then(|gpu| {
        println!(
            "device: {} (sm_{}{}, {} SMs), batch {}",
            gpu.name(),
            gpu.compute_capability().0,
            gpu.compute_capability().1,
            gpu.sm_count(),
            opts.batch
        );
        run_cuda_bench(&gpu, &opts)
    });
    match result {
        Ok(rows) => {
            print!("{}", format_table(&rows));
            if let Some(path) = tsv_path {
                if let Err(e) = std::fs::write(&path, format_tsv(&rows)) {
                    fail(&format!("cannot write {path}: {e}"));
                }
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}

//! Prints the CUDA kernel benchmark table (see `gradlab_cuda::bench`).
//!
//! `cuda_bench [--tsv FILE] [--quick]`: `--tsv` also writes tab-separated rows
//! for scripts; `--quick` measures one matmul size and a small batch.

use gradlab_cuda::bench::{format_table, format_tsv, run_cuda_bench, BenchOptions};
use gradlab_cuda::Gpu;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = BenchOptions::default();
    if args.iter().any(|a| a == "--quick") {
        opts.matmul_sizes = vec![1024];
        opts.batch = 32;
        opts.min_time_ms = 10.0;
    }
    let tsv_path = args
        .iter()
        .position(|a| a == "--tsv")
        .and_then(|i| args.get(i + 1).cloned());
    let result = Gpu::global().and_then(|gpu| {
        println!(
            "device: {} (sm_{}{}, {} SMs)",
            gpu.name(),
            gpu.compute_capability().0,
            gpu.compute_capability().1,
            gpu.sm_count()
        );
        run_cuda_bench(&gpu, &opts)
    });
    match result {
        Ok(rows) => {
            print!("{}", format_table(&rows));
            if let Some(path) = tsv_path {
                if let Err(e) = std::fs::write(&path, format_tsv(&rows)) {
                    eprintln!("cannot write {path}: {e}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("cuda_bench: {e}");
            std::process::exit(1);
        }
    }
}

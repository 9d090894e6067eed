//! The `--threads` option of every command that takes one: at least 1 and
//! at most [`THREADS_PER_CORE`] per core. Far more threads than cores buys
//! nothing, and each kernel's parallel loop then wakes and joins thousands
//! of workers: `--threads 10000` made a training step take minutes.

/// The most threads `--threads` may ask for, per core of the machine.
pub const THREADS_PER_CORE: usize = 4;

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Checks a `--threads` value against `cores` cores: `Ok` when it is
/// absent (the default pool) or between 1 and `THREADS_PER_CORE * cores`.
pub fn check_threads_for(threads: Option<usize>, cores: usize) -> Result<(), String> {
    let Some(n) = threads else {
        return Ok(());
    };
    if n == 0 {
        return Err("--threads must be at least 1".into());
    }
    let limit = THREADS_PER_CORE * cores.max(1);
    if n > limit {
        return Err(format!(
            "--threads {n} is more than {THREADS_PER_CORE} per core: this machine has {cores} core{}, so at most {limit}",
            if cores == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// [`check_threads_for`] this machine.
pub fn check_threads(threads: Option<usize>) -> Result<(), String> {
    check_threads_for(threads, cores())
}

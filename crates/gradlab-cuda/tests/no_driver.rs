//! Without a driver, opening the GPU is a clear error, never a panic.

use gradlab_cuda::{driver_available, CudaError, Gpu};

#[test]
fn missing_driver_is_an_error_with_a_clear_message() {
    if driver_available() {
        eprintln!("skipping: a CUDA driver is present on this machine");
        return;
    }
    let err = Gpu::global().unwrap_err();
    assert!(matches!(err, CudaError::NoDriver), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("no CUDA driver found (libcuda.so could not be loaded)"),
        "{msg}"
    );
    // A second call tries again and fails the same way.
    assert!(matches!(Gpu::global(), Err(CudaError::NoDriver)));
}

//! `gradlab gradcheck` with sizes whose products overflow or exceed memory:
//! an error naming the size, never PASSED over an output that wrapped to
//! nothing, and never an abort in the allocator.

use gradlab::introspect::{run_gradcheck, GradcheckArgs};

fn conv(padding: usize) -> GradcheckArgs {
    GradcheckArgs {
        op: Some("conv2d".into()),
        shapes: vec![vec![1, 1, 1, 1]],
        kernel: Some((2, 2)),
        padding: Some((padding, padding)),
        ..GradcheckArgs::default()
    }
}

#[test]
fn conv_paddings_whose_output_cannot_exist_are_errors() {
    // 1 x 2 x 2^32 x 2^32 wrapped to an empty output, and the check passed.
    let err = run_gradcheck(&conv(1 << 31)).unwrap_err();
    assert!(
        err.ends_with("conv2d: the output would be [1, 2, 4294967296, 4294967296], more than the 1152921504606846975 elements a buffer may hold"),
        "{err}"
    );
    // 4e18 elements: the allocation aborted the process.
    let err = run_gradcheck(&conv(1_000_000_000)).unwrap_err();
    assert!(err.contains("[1, 2, 2000000000, 2000000000]"), "{err}");
}

#[test]
fn input_shapes_that_cannot_be_allocated_are_errors() {
    let args = |dims: Vec<usize>| GradcheckArgs {
        op: Some("relu".into()),
        shapes: vec![dims],
        ..GradcheckArgs::default()
    };
    let err = run_gradcheck(&args(vec![1 << 32, 1 << 32])).unwrap_err();
    assert!(
        err.starts_with("gradcheck --shape 4294967296,4294967296: gradcheck: shape [4294967296, 4294967296] has more elements than"),
        "{err}"
    );
    let err = run_gradcheck(&args(vec![1 << 20, 1 << 20, 1 << 16])).unwrap_err();
    assert!(
        err.starts_with("gradcheck --shape 1048576,1048576,65536: gradcheck: cannot allocate 72057594037927936 elements of 8 bytes"),
        "{err}"
    );
}

//! Compiles `kernels/*.cu` as C++ against the CUDA shim (`cpp/cuda_shim.h`),
//! one translation unit per kernel file, with the threaded runtime.

fn main() {
    let kernels = std::path::Path::new("../../kernels");
    let units = [
        "cpp/runtime.cpp",
        "cpp/tables.cpp",
        "cpp/kernels_matmul.cpp",
        "cpp/kernels_conv.cpp",
        "cpp/kernels_pool.cpp",
        "cpp/kernels_elementwise.cpp",
        "cpp/kernels_reduce.cpp",
        "cpp/kernels_optim.cpp",
    ];
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include("cpp")
        .include(kernels)
        .files(units)
        .flag_if_supported("-Wno-unknown-pragmas")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-unused-function")
        .flag_if_supported("-Wno-unused-variable")
        .flag_if_supported("-pthread")
        .compile("gradlab_cuda_harness");
    println!("cargo:rustc-link-lib=pthread");
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-changed=../../kernels");
}

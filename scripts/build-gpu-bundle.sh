#!/usr/bin/env bash
# Builds the x86-64 release binaries the GPU machine runs (it has CUDA 13 and
# nvcc but no Rust and no network) into target/gpu-bundle/: the test binaries
# that compare CUDA with the CPU (gradlab-cuda's kernels and compile checks,
# the harness checks on the GPU and on the CPU, gradlab-tensor's ops, the
# root package's LeNet and fixtures on CUDA), the cuda_bench example, the
# gradlab binary, the PyTorch fixtures, the first CIFAR-10 records for a short
# training run, gpu-check.sh and gpu-compare.py. Symbols and debug info are
# stripped so the bundle stays small (it fails above 60 MB). Runs here, no GPU needed.
# Usage: scripts/build-gpu-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
out=target/gpu-bundle
rm -rf "$out"
mkdir -p "$out/tests"

# Test binaries: cargo prints their paths as JSON artifacts. `only` keeps the
# named test targets of a package (all of them when empty).
bundle_tests() {
    local package="$1" only="$2"
    cargo test --release -p "$package" --no-run --message-format=json |
        ONLY="$only" python3 -c '
import json, os, sys
only = os.environ["ONLY"].split()
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        if not only or m["target"]["name"] in only:
            print(m["target"]["name"], m["executable"])
' |
        while read -r name exe; do cp "$exe" "$out/tests/$name"; done
}
# (gpu_check_script is left out: it runs this repository's scripts/.)
bundle_tests gradlab-cuda "gradlab_cuda compile_kernels gpu_kernels no_driver"
bundle_tests gradlab-cuda-harness "cpu_harness gpu_checks"
bundle_tests gradlab-tensor "cuda_ops"
bundle_tests gradlab "cuda_lenet"

# Reference cases for `gradlab fixtures --device cuda` and the cuda_lenet test.
fixtures="${GRADLAB_FIXTURES:-../shared/fixtures/torch}"
if [ -f "$fixtures/manifest.json" ]; then
    cp -r "$fixtures" "$out/fixtures"
else
    echo "build-gpu-bundle: no fixtures at $fixtures; the fixture checks will be skipped" >&2
fi

# The first CIFAR-10 records (whole 3,073-byte records, which the loader
# accepts), for a one-epoch training run that fits the GPU check's time.
cifar="${GRADLAB_CIFAR10:-${GRADLAB_DATA:-../shared/data/cifar-10-batches-bin}}"
train_records="${GRADLAB_GPU_TRAIN_RECORDS:-4096}"
test_records="${GRADLAB_GPU_TEST_RECORDS:-1000}"
if [ -f "$cifar/data_batch_1.bin" ] && [ -f "$cifar/test_batch.bin" ]; then
    mkdir -p "$out/cifar10"
    head -c $((train_records * 3073)) "$cifar/data_batch_1.bin" >"$out/cifar10/data_batch_1.bin"
    head -c $((test_records * 3073)) "$cifar/test_batch.bin" >"$out/cifar10/test_batch.bin"
    [ -f "$cifar/batches.meta.txt" ] && cp "$cifar/batches.meta.txt" "$out/cifar10/"
    echo "$train_records $test_records" >"$out/cifar10/records"
else
    echo "build-gpu-bundle: no CIFAR-10 at $cifar; the training check will be skipped" >&2
fi

cargo build --release -p gradlab-cuda --example cuda_bench
cp "$target/release/examples/cuda_bench" "$out/"
cargo build --release --bin gradlab
cp "$target/release/gradlab" "$out/"
cp scripts/gpu-check.sh scripts/gpu-compare.py "$out/"

# Symbols and debug info are not needed there and would make the bundle too
# large to carry (with them it was 66 MB).
strip --strip-all "$out"/tests/* "$out"/cuda_bench "$out"/gradlab
ls -la "$out" "$out/tests"
size_mb=$(du -sm "$out" | cut -f1)
echo "bundle: ${size_mb} MB"
echo "glibc needed (highest GLIBC_ symbol; the GPU machine needs at least this):"
objdump -T "$out"/tests/* "$out"/gradlab 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true
if [ "$size_mb" -gt 60 ]; then
    echo "build-gpu-bundle: the bundle is ${size_mb} MB, over the 60 MB it must fit in" >&2
    exit 1
fi

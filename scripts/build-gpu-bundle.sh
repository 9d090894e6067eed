#!/usr/bin/env bash
# Builds the x86-64 release binaries the GPU machine runs (it has no Rust) into
# target/gpu-bundle/: the test binaries that compare CUDA with the CPU
# (gradlab-cuda's kernels, gradlab-tensor's ops, the root package's LeNet and
# fixtures on CUDA), the cuda_bench example, the gradlab binary when it
# builds, the PyTorch fixtures, the first CIFAR-10 records for a short
# training run, and gpu-check.sh. Runs here, no GPU needed.
# Usage: scripts/build-gpu-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cuda}"
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
bundle_tests gradlab-cuda ""
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
cifar="${GRADLAB_CIFAR10:-../shared/data/cifar-10-batches-bin}"
train_records="${GRADLAB_GPU_TRAIN_RECORDS:-5120}"
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
cp "$CARGO_TARGET_DIR/release/examples/cuda_bench" "$out/"

if cargo build --release --bin gradlab 2>/dev/null; then
    cp "$CARGO_TARGET_DIR/release/gradlab" "$out/"
else
    echo "build-gpu-bundle: the gradlab binary does not build yet; bundling the crate tests only" >&2
fi
cp scripts/gpu-check.sh "$out/"

# Debug info is not needed there and would make the bundle too large to carry.
if command -v strip >/dev/null; then
    strip --strip-debug "$out"/tests/* "$out"/cuda_bench "$out"/gradlab 2>/dev/null || true
fi
ls -la "$out" "$out/tests"
du -sh "$out"
echo "glibc needed (highest GLIBC_ symbol):"
objdump -T "$out"/tests/* 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true

#!/usr/bin/env bash
# Builds the x86-64 release binaries the GPU machine runs (it has no Rust) into
# target/gpu-bundle/: the gradlab-cuda test binaries, the cuda_bench example,
# the gradlab binary when it builds, and gpu-check.sh. Runs here, no GPU needed.
# Usage: scripts/build-gpu-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cuda}"
out=target/gpu-bundle
rm -rf "$out"
mkdir -p "$out/tests"

# Test binaries: cargo prints their paths as JSON artifacts.
cargo test --release -p gradlab-cuda --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])
' |
    while read -r name exe; do cp "$exe" "$out/tests/$name"; done

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

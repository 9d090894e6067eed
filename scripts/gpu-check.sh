#!/usr/bin/env bash
# The whole GPU check, in one run on the GPU machine (CUDA 13 under
# /usr/local/cuda, PyTorch installed, no Rust, no network):
#   1. machine facts (nvidia-smi, glibc, NVRTC),
#   2. every bundled test: gradlab-cuda's kernels, gradlab-tensor's ops and
#      the LeNet forward/backward/SGD step, each on CUDA vs the CPU,
#   3. `gradlab fixtures --device cuda` (f32 PyTorch cases with inputs on the GPU),
#   4. a one-epoch LeNet `gradlab train --device cuda` on the bundled CIFAR-10 records,
#   5. the benchmark table with cuBLAS / cuDNN figures from PyTorch beside it.
# Usage: scripts/gpu-check.sh [BUNDLE_DIR]   (default target/gpu-bundle, built
# by scripts/build-gpu-bundle.sh). Writes bench.tsv and compare.txt to $OUT
# (or the bundle directory). Exit status: non-zero when a test failed.
set -uo pipefail
bundle="${1:-target/gpu-bundle}"
[ -d "$bundle/tests" ] || bundle="$(dirname "$0")"
out_dir="${OUT:-$bundle}"
mkdir -p "$out_dir"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GRADLAB_PTXAS="${GRADLAB_PTXAS:-/usr/local/cuda/bin/ptxas}"
export GRADLAB_REQUIRE_GPU=1
batch="${GRADLAB_BENCH_BATCH:-256}"

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || nvidia-smi
ldd --version | head -1
ls /usr/local/cuda/lib64/libnvrtc.so.13* || echo "no libnvrtc.so.13 under /usr/local/cuda/lib64"

echo "== tests (kernels vs CPU reference)"
status=0
for t in "$bundle"/tests/*; do
    echo "-- $(basename "$t")"
    if ! timeout 240 "$t" --test-threads=1; then
        echo "FAILED: $(basename "$t")"
        status=1
    fi
done

if [ -f "$bundle/fixtures/manifest.json" ]; then
    export GRADLAB_FIXTURES="$bundle/fixtures"
fi

echo "== fixtures on CUDA"
if [ -x "$bundle/gradlab" ] && [ -f "$bundle/fixtures/manifest.json" ]; then
    if ! timeout 120 "$bundle/gradlab" fixtures "$bundle/fixtures" --device cuda; then
        echo "FAILED: gradlab fixtures --device cuda"
        status=1
    fi
else
    echo "skipped: no gradlab binary or no fixtures in the bundle"
fi

echo "== one-epoch LeNet on CUDA"
if [ -x "$bundle/gradlab" ] && [ -f "$bundle/cifar10/records" ]; then
    read -r train_records test_records <"$bundle/cifar10/records"
    if ! timeout 240 "$bundle/gradlab" train --model lenet --data "$bundle/cifar10" \
        --device cuda --epochs 1 --batch-size 32 --lr 0.01 \
        --limit-train "$train_records" --limit-test "$test_records" \
        --metrics "$out_dir/train_cuda.jsonl" --checkpoint-dir "$out_dir/checkpoints" --quiet; then
        echo "FAILED: gradlab train --device cuda"
        status=1
    fi
    cat "$out_dir/train_cuda.jsonl" 2>/dev/null
else
    echo "skipped: no gradlab binary or no CIFAR-10 records in the bundle"
fi

echo "== benchmark"
tsv="$out_dir/bench.tsv"
if ! timeout 180 "$bundle/cuda_bench" --tsv "$tsv"; then
    echo "FAILED: cuda_bench"
    exit 1
fi

echo "== against PyTorch (cuBLAS / cuDNN)"
timeout 150 python3 - "$tsv" "$batch" <<'PY' | tee "$out_dir/compare.txt"
import csv, sys
import torch
import torch.nn.functional as F

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
batch = int(sys.argv[2])
dev = "cuda"
torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

def timeit(fn, min_ms=60.0):
    fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); fn(); e.record(); torch.cuda.synchronize()
    reps = max(1, min(200, int(min_ms / max(s.elapsed_time(e), 1e-3)) + 1))
    s.record()
    for _ in range(reps):
        fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / reps

ref = {}
for n in sorted({int(r["case"]) for r in rows if r["group"] == "matmul"}):
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    c = torch.empty(n, n, device=dev)
    ref[("matmul", str(n), "f32")] = timeit(lambda: torch.mm(a, b, out=c))
    torch.backends.cuda.matmul.allow_tf32 = True
    ref[("matmul", str(n), "tf32")] = timeit(lambda: torch.mm(a, b, out=c))
    torch.backends.cuda.matmul.allow_tf32 = False

# Same problems as gradlab_cuda::bench::bench_conv_shapes: (in_c, hw, out_c, k, pad).
convs = {"lenet_conv1": (3, 32, 6, 5, 0), "lenet_conv2": (6, 14, 16, 5, 0), "conv3x3_64": (64, 32, 64, 3, 1)}
for name, (ic, hw, oc, k, pad) in convs.items():
    x = torch.randn(batch, ic, hw, hw, device=dev)
    w = torch.randn(oc, ic, k, k, device=dev)
    bias = torch.randn(oc, device=dev)
    y = F.conv2d(x, w, bias, padding=pad)
    dy = torch.randn_like(y)
    bwd = lambda mask: torch.ops.aten.convolution_backward(
        dy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)
    f = ref[("conv2d", name, "forward")] = timeit(lambda: F.conv2d(x, w, bias, padding=pad))
    d = ref[("conv2d", name, "backward_data")] = timeit(lambda: bwd([True, False, False]))
    g = ref[("conv2d", name, "backward_weight")] = timeit(lambda: bwd([False, True, False]))
    ref[("conv2d", name, "fwd+bwd")] = f + d + g

x = torch.randn(batch, 64, 32, 32, device=dev)
y, idx = F.max_pool2d(x, 2, 2, return_indices=True)
dy = torch.randn_like(y)
pool_case = f"{batch}x64x32x32 k2s2"
ref[("max_pool2d", pool_case, "forward")] = timeit(lambda: F.max_pool2d(x, 2, 2, return_indices=True))
ref[("max_pool2d", pool_case, "backward")] = timeit(
    lambda: torch.ops.aten.max_pool2d_with_indices_backward(dy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx))
xc = torch.empty_like(x)
ref[("copy", pool_case, "device_to_device")] = timeit(lambda: xc.copy_(x))

print(f"{'group':<11} {'case':<22} {'variant':<18} {'ms':>9} {'torch ms':>9} {'share':>7}  reference")
share = {}
for r in rows:
    g, case, v, ms = r["group"], r["case"], r["variant"], float(r["ms"])
    kind = "tf32" if v == "tf32_tensor_core" else "f32"
    key = (g, case, kind) if g == "matmul" else (g, case, v)
    t = ref.get(key)
    label = {"matmul": f"cuBLAS {kind}", "conv2d": "cuDNN f32"}.get(g, "PyTorch")
    s = t / ms if t else float("nan")
    share[(g, case, v)] = s
    print(f"{g:<11} {case:<22} {v:<18} {ms:>9.4f} {t if t else float('nan'):>9.4f} {100*s:>6.1f}%  {label}")

copy_row = next(r for r in rows if r["group"] == "copy")
for r in rows:
    if r["group"] == "max_pool2d":
        print(f"max_pool2d {r['variant']}: {float(r['gbps']):.0f} GB/s = "
              f"{100*float(r['gbps'])/float(copy_row['gbps']):.0f}% of copy bandwidth ({float(copy_row['gbps']):.0f} GB/s)")

def target(label, got, want):
    print(f"target {label}: {100*got:.1f}% (want >= {100*want:.0f}%) {'MET' if got >= want else 'MISSED'}")
big = max(int(r["case"]) for r in rows if r["group"] == "matmul")
target(f"SIMT warp_tiled at {big} vs cuBLAS f32", share.get(("matmul", str(big), "warp_tiled"), 0), 0.75)
target(f"TF32 at {big} vs cuBLAS TF32", share.get(("matmul", str(big), "tf32_tensor_core"), 0), 0.50)
target("conv3x3_64 fwd+bwd vs cuDNN", share.get(("conv2d", "conv3x3_64", "fwd+bwd"), 0), 0.50)
PY
echo "== done (tests: $([ $status -eq 0 ] && echo passed || echo FAILED))"
exit $status

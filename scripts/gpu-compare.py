#!/usr/bin/env python3
"""Times cuBLAS / cuDNN through PyTorch on the problems of gradlab's CUDA
benchmark and prints each gradlab kernel's share of it.

Usage: gpu-compare.py BENCH_TSV BATCH [--fake]
  BENCH_TSV  rows written by `cuda_bench --tsv` (gradlab_cuda::bench::format_tsv)
  BATCH      the batch the conv and pool rows were measured at (cuda_bench --batch)
  --fake     no GPU or PyTorch: reference times are invented (0.8 x gradlab's),
             for a dry run of scripts/gpu-check.sh
Output: '#' lines for people, then tab-separated rows
  group case variant ms reference_ms share reference
and '# target ...' lines with the goals of the first GPU run.
Exits non-zero when a row has no reference (a problem PyTorch was not timed on).
"""
import csv
import sys


def torch_times(rows, batch):
    import torch
    import torch.nn.functional as F

    dev = "cuda"
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    def timeit(fn, min_ms=40.0):
        fn()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        reps = max(1, min(200, int(min_ms / max(s.elapsed_time(e), 1e-3)) + 1))
        s.record()
        for _ in range(reps):
            fn()
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e) / reps

    ref = {}
    for n in sorted({int(r["case"]) for r in rows if r["group"] == "matmul"}):
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        c = torch.empty(n, n, device=dev)
        ref[("matmul", str(n), "f32")] = timeit(lambda: torch.mm(a, b, out=c))
        torch.backends.cuda.matmul.allow_tf32 = True
        ref[("matmul", str(n), "tf32")] = timeit(lambda: torch.mm(a, b, out=c))
        torch.backends.cuda.matmul.allow_tf32 = False

    # The problems of gradlab_cuda::bench::bench_conv_shapes: (in_c, hw, out_c, k, pad).
    convs = {"lenet_conv1": (3, 32, 6, 5, 0), "lenet_conv2": (6, 14, 16, 5, 0), "conv3x3_64": (64, 32, 64, 3, 1)}
    for name, (ic, hw, oc, k, pad) in convs.items():
        x = torch.randn(batch, ic, hw, hw, device=dev)
        w = torch.randn(oc, ic, k, k, device=dev)
        bias = torch.randn(oc, device=dev)
        y = F.conv2d(x, w, bias, padding=pad)
        dy = torch.randn_like(y)

        def bwd(mask):
            return torch.ops.aten.convolution_backward(
                dy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        f = ref[("conv2d", name, "forward")] = timeit(lambda: F.conv2d(x, w, bias, padding=pad))
        d = ref[("conv2d", name, "backward_data")] = timeit(lambda: bwd([True, False, False]))
        g = ref[("conv2d", name, "backward_weight")] = timeit(lambda: bwd([False, True, False]))
        ref[("conv2d", name, "fwd+bwd")] = f + d + g

    x = torch.randn(batch, 64, 32, 32, device=dev)
    y, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    dy = torch.randn_like(y)
    case = f"{batch}x64x32x32 k2s2"
    ref[("max_pool2d", case, "forward")] = timeit(lambda: F.max_pool2d(x, 2, 2, return_indices=True))
    ref[("max_pool2d", case, "backward")] = timeit(
        lambda: torch.ops.aten.max_pool2d_with_indices_backward(dy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx))
    xc = torch.empty_like(x)
    ref[("copy", case, "device_to_device")] = timeit(lambda: xc.copy_(x))
    return ref, torch.cuda.get_device_name()


def key(r):
    if r["group"] == "matmul":
        return ("matmul", r["case"], "tf32" if r["variant"] == "tf32_tensor_core" else "f32")
    return (r["group"], r["case"], r["variant"])


def main():
    args = [a for a in sys.argv[1:] if a != "--fake"]
    fake = "--fake" in sys.argv[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(args[0]), delimiter="\t"))
    batch = int(args[1])
    if fake:
        ref = {key(r): 0.8 * float(r["ms"]) for r in rows}
        device = "dry run (invented reference times)"
    else:
        ref, device = torch_times(rows, batch)
    print(f"# PyTorch on {device}, batch {batch}")
    print("group\tcase\tvariant\tms\treference_ms\tshare\treference")
    missing = []
    share = {}
    for r in rows:
        g, ms = r["group"], float(r["ms"])
        label = {"matmul": "cuBLAS " + key(r)[2], "conv2d": "cuDNN f32"}.get(g, "PyTorch")
        t = ref.get(key(r))
        if t is None:
            missing.append(key(r))
            continue
        share[(g, r["case"], r["variant"])] = t / ms
        print(f"{g}\t{r['case']}\t{r['variant']}\t{ms:.4f}\t{t:.4f}\t{t / ms:.4f}\t{label}")

    def target(label, got, want):
        verdict = "MET" if got is not None and got >= want else "MISSED"
        shown = "n/a" if got is None else f"{100 * got:.1f}%"
        print(f"# target {label}: {shown} (want >= {100 * want:.0f}%) {verdict}")

    sizes = [int(r["case"]) for r in rows if r["group"] == "matmul"]
    if sizes:
        big = str(max(sizes))
        target(f"SGEMM warp_tiled at {big} vs cuBLAS f32", share.get(("matmul", big, "warp_tiled")), 0.75)
        target(f"TF32 at {big} vs cuBLAS TF32", share.get(("matmul", big, "tf32_tensor_core")), 0.50)
    target(f"conv3x3_64 fwd+bwd at batch {batch} vs cuDNN", share.get(("conv2d", "conv3x3_64", "fwd+bwd")), 0.50)
    if missing:
        print(f"# no PyTorch reference for {missing}: the benchmark and this script disagree on the problems")
        sys.exit(1)


if __name__ == "__main__":
    main()

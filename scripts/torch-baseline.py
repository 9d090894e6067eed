#!/usr/bin/env python3
"""PyTorch CPU baselines measured on this machine, for gradlab's ratios.

gradlab's speed targets are ratios against PyTorch's CPU build on the same
machine. This script times, with PyTorch:

  * LeNet training on CIFAR-10 (the tutorial network and recipe gradlab's
    `train --model lenet` runs), images per second over one epoch, and with
    `--convnet` the same for gradlab's `--model convnet`;
  * the kernels of `gradlab bench`: conv2d forward, input gradient and
    weight gradient for LeNet's two layers and a 3x3 64->64 layer at
    batch 64, max-pool 2x2 forward and backward, square f32 GEMMs.

Run it beside gradlab on a quiet machine, with the same thread count:

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy
    .venv-torch/bin/python scripts/torch-baseline.py --threads 2
    cargo run --release -- bench all --threads 2

The data set is read from GRADLAB_DATA or ../shared/data/cifar-10-batches-bin
(the official binary layout); `--skip-train` times the kernels only.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

RECORD = 1 + 3 * 32 * 32

# Rows in the schema of `gradlab bench --json` (peak_share and
# baseline_ratio are left to the reader: they need gradlab's own run).
ROWS = []


def emit(kernel, shape, seconds, gflops=None, gbps=None):
    row = {
        "kernel": kernel,
        "shape": shape,
        "variant": f"pytorch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "median_s": seconds,
        "peak_share": None,
        "baseline_ratio": None,
    }
    row["gflops" if gflops is not None else "gbps"] = gflops if gflops is not None else gbps
    ROWS.append(row)


def data_dir(arg):
    candidates = [arg, os.environ.get("GRADLAB_DATA"), "../shared/data/cifar-10-batches-bin"]
    for c in candidates:
        if c and (Path(c) / "test_batch.bin").is_file():
            return Path(c)
    raise SystemExit("CIFAR-10 not found: pass --data DIR or set GRADLAB_DATA")


def load(files):
    raw = np.concatenate([np.fromfile(f, dtype=np.uint8) for f in files])
    if raw.size % RECORD:
        raise SystemExit(f"{files}: size is not a multiple of {RECORD} bytes")
    rows = raw.reshape(-1, RECORD)
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), rows[:, 0].astype(np.int64)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ConvNet(nn.Module):
    """gradlab's `--model convnet`: three conv(3x3)-bn-relu-maxpool blocks of
    64, 128 and 256 channels, global average pooling, one linear layer."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for out in (64, 128, 256):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def train(root, batch, lr, epochs, seed, model="lenet", limit=None):
    x_train, y_train = load([root / f"data_batch_{i}.bin" for i in range(1, 6)])
    x_test, y_test = load([root / "test_batch.bin"])
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    torch.manual_seed(seed)
    net = LeNet() if model == "lenet" else ConvNet()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    x_train_t, y_train_t = torch.from_numpy(x_train), torch.from_numpy(y_train)
    rates = []
    for epoch in range(epochs):
        order = torch.randperm(len(x_train_t))
        started = time.perf_counter()
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            # uint8 -> normalised float per batch, as gradlab's loader does.
            x = (x_train_t[idx].float() / 255.0 - 0.5) / 0.5
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y_train_t[idx])
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - started
        rates.append(len(order) // batch * batch / seconds)
        net.eval()
        with torch.no_grad():
            x = (torch.from_numpy(x_test).float() / 255.0 - 0.5) / 0.5
            acc = (net(x).argmax(1).numpy() == y_test).mean()
        net.train()
        print(
            f"{model} batch {batch} lr {lr} epoch {epoch + 1}: {rates[-1]:.0f} images/s, "
            f"{seconds:.1f} s, test accuracy {100 * acc:.2f}%",
            flush=True,
        )
    return rates


def median_s(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def conv_rows(reps):
    shapes = [
        ("lenet conv1 64x3x32x32 k5", 64, 3, 6, 32, 5, 0),
        ("lenet conv2 64x6x14x14 k5", 64, 6, 16, 14, 5, 0),
        ("64x64x32x32 k3 p1", 64, 64, 64, 32, 3, 1),
    ]
    for name, n, cin, cout, hw, k, pad in shapes:
        x = torch.randn(n, cin, hw, hw)
        w = torch.randn(cout, cin, k, k)
        b = torch.randn(cout)
        y = F.conv2d(x, w, b, padding=pad)
        g = torch.randn_like(y)
        flops = 2 * y.numel() * cin * k * k

        def backward(mask):
            return lambda: torch.ops.aten.convolution_backward(
                g, x, w, [cout], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask
            )

        total = 0.0
        for op, fn in [
            ("forward", lambda: F.conv2d(x, w, b, padding=pad)),
            ("backward_data", backward([True, False, False])),
            ("backward_weight", backward([False, True, False])),
        ]:
            s = median_s(fn, reps)
            total += s
            print(f"conv2d {op:16} {name:28} {1e3 * s:9.3f} ms {flops / s / 1e9:7.1f} GF/s")
            emit(f"conv2d {op}", name, s, gflops=flops / s / 1e9)
        # Forward and both gradients, as gradlab bench's "conv2d all 3" row.
        print(f"conv2d {'all 3':16} {name:28} {1e3 * total:9.3f} ms {3 * flops / total / 1e9:7.1f} GF/s")
        emit("conv2d all 3", name, total, gflops=3 * flops / total / 1e9)


def pool_rows(reps):
    x = torch.randn(64, 6, 28, 28, requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    g = torch.randn_like(y)
    fwd = median_s(lambda: F.max_pool2d(x.detach(), 2, return_indices=True), reps)
    bwd = median_s(
        lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            g, x.detach(), [2, 2], [2, 2], [0, 0], [1, 1], False, idx
        ),
        reps,
    )
    print(f"maxpool forward  64x6x28x28 k2 s2            {1e6 * fwd:9.1f} us")
    print(f"maxpool backward 64x6x28x28 k2 s2            {1e6 * bwd:9.1f} us")
    # The byte counts of gradlab's table: f32 values and 8-byte indices.
    moved = x.numel() * 4 + y.numel() * (4 + 8)
    emit("maxpool forward", "64x6x28x28 k2 s2", fwd, gbps=moved / fwd / 1e9)
    emit("maxpool backward", "64x6x28x28 k2 s2", bwd, gbps=moved / bwd / 1e9)


def gemm_rows(reps):
    for n in [256, 512, 1024, 2048]:
        a, b = torch.randn(n, n), torch.randn(n, n)
        s = median_s(lambda: a @ b, max(3, reps // (1 + n // 512)))
        print(f"gemm f32 {n}x{n}x{n:<6}                     {1e3 * s:9.3f} ms {2 * n**3 / s / 1e9:7.1f} GF/s")
        emit("gemm f32", f"{n}x{n}x{n}", s, gflops=2 * n**3 / s / 1e9)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--data")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-sizes", default="64,4", help="LeNet runs, comma-separated")
    p.add_argument("--convnet", action="store_true", help="also time convnet at batch 64")
    p.add_argument("--limit-train", type=int, help="train on the first N images only")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--json", help="also write the kernel rows here, in gradlab bench's schema")
    p.add_argument("--skip-kernels", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_kernels:
        conv_rows(args.reps)
        pool_rows(args.reps)
        gemm_rows(args.reps)
        torch.set_num_threads(1)
        print("one thread:")
        gemm_rows(args.reps)
        torch.set_num_threads(args.threads)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(ROWS, f, indent=1)
    if not args.skip_train:
        root = data_dir(args.data)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            # The recipes of gradlab's README: lr 0.01 at batch 64, the
            # tutorial's 0.001 at batch 4.
            lr = 0.01 if batch >= 64 else 0.001
            train(root, batch, lr, args.epochs, args.seed, limit=args.limit_train)
        if args.convnet:
            train(root, 64, 0.05, args.epochs, args.seed, "convnet", args.limit_train)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes fixtures/edges/: PyTorch's answers at the edges of its semantics.

Negative dimensions, 0-d tensors, unbatched conv2d and max_pool2d, spatial
cross-entropy (class weights, ignore_index, label smoothing, every
reduction) and zero-size dimensions, each in f64 and f32: the forward
value and the gradient of sum(output * grad_out) with respect to every
float input that PyTorch differentiates.

The format is the fixtures/1 manifest of the shared PyTorch cases (see
fixtures/edges/README.md), with each case's tensors in a JSON file instead
of safetensors: {"tensors": {name: {"dtype", "shape", "data"}}}, data
flattened in row-major order, non-finite values as the strings "nan",
"inf", "-inf". Python's float repr round-trips, so the values are exact.

Run from the repository root:
    /path/to/python-with-torch scripts/edge-fixtures.py [--out fixtures/edges]
"""

import argparse
import json
import math
import os

import torch
import torch.nn.functional as F

TOL = {
    "f64": (1e-7, 1e-9),
    "f32": (1e-4, 1e-5),
}
DTYPES = {"f64": torch.float64, "f32": torch.float32}


def encode(t):
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        dtype, data = "i64", [int(v) for v in t.reshape(-1).tolist()]
    else:
        dtype = {torch.float64: "f64", torch.float32: "f32"}[t.dtype]
        data = []
        for v in t.reshape(-1).tolist():
            if math.isnan(v):
                data.append("nan")
            elif math.isinf(v):
                data.append("inf" if v > 0 else "-inf")
            else:
                data.append(v)
    return {"dtype": dtype, "shape": list(t.shape), "data": data}


class Writer:
    def __init__(self, out):
        self.out = out
        self.cases = []
        os.makedirs(out, exist_ok=True)

    def case(self, name, op, dtype, inputs, fn, attrs, differentiable=None):
        """`inputs`: (name, tensor) pairs in argument order; `fn` maps the
        tensors to the output. Gradients are taken for the float inputs
        named in `differentiable` (all float inputs when None)."""
        names = [n for n, _ in inputs]
        leaves = []
        for n, t in inputs:
            if t.is_floating_point() and (differentiable is None or n in differentiable):
                t = t.detach().clone().requires_grad_(True)
            leaves.append(t)
        out = fn(*leaves)
        gen = torch.Generator().manual_seed(len(self.cases) + 1000)
        cot = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
        tensors = {n: encode(t) for n, t in zip(names, leaves)}
        tensors["out"] = encode(out)
        tensors["grad_out"] = encode(cot)
        grads = {}
        wrt = [(n, t) for n, t in zip(names, leaves) if t.requires_grad]
        if wrt:
            gs = torch.autograd.grad(
                (out * cot).sum(), [t for _, t in wrt], allow_unused=True
            )
            for (n, t), g in zip(wrt, gs):
                if g is None:
                    g = torch.zeros_like(t)
                tensors["grad." + n] = encode(g)
                grads[n] = "grad." + n
        file = name.replace("/", "__") + ".json"
        with open(os.path.join(self.out, file), "w") as f:
            json.dump({"tensors": tensors}, f, separators=(",", ":"))
        rtol, atol = TOL[dtype]
        self.cases.append(
            {
                "name": name,
                "op": op,
                "tier": "core",
                "dtype": dtype,
                "file": file,
                "inputs": names,
                "attrs": attrs,
                "output": "out",
                "cotangent": "grad_out",
                "grads": grads,
                "rtol": rtol,
                "atol": atol,
            }
        )

    def finish(self):
        manifest = {
            "format": "fixtures/1",
            "generator": f"torch {torch.__version__} (scripts/edge-fixtures.py)",
            "cases": self.cases,
        }
        with open(os.path.join(self.out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")


def distinct(shape, dtype, gen):
    """Values without ties (max and max-pool gradients are well defined)."""
    n = math.prod(shape)
    perm = torch.randperm(max(n, 1), generator=gen)[:n].to(torch.float64)
    return (perm / max(n, 1) * 4 - 2 + 0.01).reshape(shape).to(dtype)


def generate(w):
    for dt, dtype in DTYPES.items():
        gen = torch.Generator().manual_seed(7)

        def randn(*shape):
            return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)

        def case(name, op, inputs, fn, attrs, differentiable=None):
            w.case(f"{name}/{dt}", op, dt, inputs, fn, attrs, differentiable)

        # ---- negative dims ------------------------------------------------
        x = randn(2, 3, 4)
        case("sum_dim_-1", "sum", [("x", x)], lambda x: x.sum(dim=[-1]), {"dims": [-1], "keepdim": False})
        case("sum_dims_0_-1_keepdim", "sum", [("x", x)], lambda x: x.sum(dim=[0, -1], keepdim=True), {"dims": [0, -1], "keepdim": True})
        case("sum_dims_empty", "sum", [("x", x)], lambda x: x.sum(dim=[]), {"dims": [], "keepdim": False})
        case("mean_dim_-2", "mean", [("x", x)], lambda x: x.mean(dim=[-2]), {"dims": [-2], "keepdim": False})
        case("mean_dim_-3_keepdim", "mean", [("x", x)], lambda x: x.mean(dim=-3, keepdim=True), {"dims": -3, "keepdim": True})
        xd = distinct((2, 3, 4), dtype, gen)
        case("max_dim_-1", "max_dim", [("x", xd)], lambda x: x.max(dim=-1, keepdim=True).values, {"dim": -1, "keepdim": True})
        case("max_dim_-3", "max_dim", [("x", xd)], lambda x: x.max(dim=-3).values, {"dim": -3, "keepdim": False})
        case("softmax_dim_-1", "softmax", [("x", x)], lambda x: F.softmax(x, dim=-1), {"dim": -1})
        case("log_softmax_dim_-2", "log_softmax", [("x", x)], lambda x: F.log_softmax(x, dim=-2), {"dim": -2})
        a, b, c = randn(2, 3, 1), randn(2, 3, 2), randn(2, 3, 3)
        case("cat_dim_-1", "cat", [("a", a), ("b", b), ("c", c)], lambda a, b, c: torch.cat([a, b, c], dim=-1), {"dim": -1})
        case("narrow_dim_-1", "narrow", [("x", x)], lambda x: x.narrow(-1, 1, 2), {"dim": -1, "start": 1, "length": 2})
        case("transpose_-1_0", "transpose", [("x", x)], lambda x: x.transpose(-1, 0), {"dim0": -1, "dim1": 0})
        case("permute_-1_0_-2", "permute", [("x", x)], lambda x: x.permute(-1, 0, -2), {"dims": [-1, 0, -2]})
        case("flatten_start_-2", "flatten", [("x", x)], lambda x: x.flatten(-2), {"start_dim": -2})
        case("flatten_1_to_-2", "flatten", [("x", randn(2, 3, 4, 2))], lambda x: x.flatten(1, -2), {"start_dim": 1, "end_dim": -2})
        case("squeeze_dim_-2", "squeeze", [("x", randn(3, 1, 4))], lambda x: x.squeeze(-2), {"dim": -2})
        case("squeeze_not_one", "squeeze", [("x", randn(3, 2))], lambda x: x.squeeze(-1), {"dim": -1})
        case("unsqueeze_dim_-1", "unsqueeze", [("x", randn(3, 4))], lambda x: x.unsqueeze(-1), {"dim": -1})
        case("unsqueeze_dim_-3", "unsqueeze", [("x", randn(3, 4))], lambda x: x.unsqueeze(-3), {"dim": -3})

        # ---- 0-d tensors --------------------------------------------------
        s = randn()
        case("sum_scalar_dim_0", "sum", [("x", s)], lambda x: x.sum(dim=0), {"dims": [0], "keepdim": False})
        case("sum_scalar_dim_-1_keepdim", "sum", [("x", s)], lambda x: x.sum(dim=-1, keepdim=True), {"dims": [-1], "keepdim": True})
        case("mean_scalar_dim_-1", "mean", [("x", s)], lambda x: x.mean(dim=-1), {"dims": [-1], "keepdim": False})
        case("sum_scalar_all", "sum", [("x", s)], lambda x: x.sum(), {"dims": None, "keepdim": False})
        case("max_dim_scalar", "max_dim", [("x", s)], lambda x: x.max(dim=0).values, {"dim": 0, "keepdim": False})
        case("softmax_scalar", "softmax", [("x", s)], lambda x: F.softmax(x, dim=-1), {"dim": -1})
        case("log_softmax_scalar", "log_softmax", [("x", s)], lambda x: F.log_softmax(x, dim=0), {"dim": 0})
        case("flatten_scalar", "flatten", [("x", s)], lambda x: x.flatten(), {"start_dim": 0})
        case("transpose_scalar", "transpose", [("x", s)], lambda x: x.transpose(0, -1), {"dim0": 0, "dim1": -1})
        case("squeeze_scalar", "squeeze", [("x", s)], lambda x: x.squeeze(-1), {"dim": -1})
        case("unsqueeze_scalar", "unsqueeze", [("x", s)], lambda x: x.unsqueeze(-1), {"dim": -1})
        case("mul_scalar_tensor", "mul", [("a", s), ("b", randn(2, 3))], lambda a, b: a * b, {})

        # ---- unbatched conv2d and max_pool2d ------------------------------
        img, wt, bias = randn(3, 7, 6), randn(4, 3, 3, 3), randn(4)
        case("conv2d_unbatched", "conv2d", [("input", img), ("weight", wt), ("bias", bias)],
             lambda i, w, b: F.conv2d(i, w, b, stride=2, padding=1), {"stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "groups": 1})
        img2, wt2 = randn(4, 8, 7), randn(6, 2, 2, 3)
        case("conv2d_unbatched_groups_dilation", "conv2d", [("input", img2), ("weight", wt2)],
             lambda i, w: F.conv2d(i, w, None, stride=(1, 2), padding=(2, 0), dilation=(2, 1), groups=2),
             {"stride": [1, 2], "padding": [2, 0], "dilation": [2, 1], "groups": 2})
        px = distinct((3, 6, 7), dtype, gen)
        case("max_pool2d_unbatched", "max_pool2d", [("x", px)], lambda x: F.max_pool2d(x, 2), {"kernel_size": [2, 2]})
        case("max_pool2d_unbatched_pad_ceil", "max_pool2d", [("x", px)],
             lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
             {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": True})

        # ---- cross-entropy: unbatched, spatial, weights, ignore_index -----
        ce = "cross_entropy"
        logits = randn(2, 4, 3, 5)
        tgt = torch.randint(0, 4, (2, 3, 5), generator=gen)
        tgt_ign = tgt.clone()
        tgt_ign[0, 1, 2] = -100
        tgt_ign[1, 0, :2] = -100
        weight = (torch.rand(4, generator=gen, dtype=torch.float64) + 0.5).to(dtype)

        def ce_case(name, logits, target, attrs, weight=None):
            inputs = [("logits", logits), ("target", target)]
            if weight is not None:
                inputs.append(("weight", weight))
            kw = dict(
                reduction=attrs.get("reduction", "mean"),
                label_smoothing=attrs.get("label_smoothing", 0.0),
                ignore_index=attrs.get("ignore_index", -100),
            )
            fn = (lambda l, t, w: F.cross_entropy(l, t, weight=w, **kw)) if weight is not None else (lambda l, t: F.cross_entropy(l, t, **kw))
            case(name, ce, inputs, fn, attrs, differentiable={"logits"})

        ce_case("ce_spatial_mean", logits, tgt, {"reduction": "mean"})
        ce_case("ce_spatial_sum", logits, tgt, {"reduction": "sum"})
        ce_case("ce_spatial_none", logits, tgt_ign, {"reduction": "none"})
        ce_case("ce_spatial_ignore_mean", logits, tgt_ign, {"reduction": "mean"})
        ce_case("ce_spatial_weight_mean", logits, tgt_ign, {"reduction": "mean"}, weight)
        ce_case("ce_spatial_weight_smooth_mean", logits, tgt_ign, {"reduction": "mean", "label_smoothing": 0.2}, weight)
        ce_case("ce_spatial_weight_smooth_sum", logits, tgt_ign, {"reduction": "sum", "label_smoothing": 0.2}, weight)
        ce_case("ce_spatial_weight_smooth_none", logits, tgt_ign, {"reduction": "none", "label_smoothing": 0.3}, weight)
        tgt1 = torch.randint(0, 4, (2, 3, 5), generator=gen)
        ce_case("ce_spatial_ignore_class_1", logits, tgt1, {"reduction": "mean", "ignore_index": 1, "label_smoothing": 0.1}, weight)
        ce_case("ce_1d_spatial", randn(3, 5, 4), torch.randint(0, 5, (3, 4), generator=gen), {"reduction": "mean", "label_smoothing": 0.1})
        ce_case("ce_3d_spatial", randn(2, 3, 2, 2, 3), torch.randint(0, 3, (2, 2, 2, 3), generator=gen), {"reduction": "mean"})
        ce_case("ce_unbatched", randn(6), torch.tensor(4), {"reduction": "mean"})
        ce_case("ce_unbatched_none_smooth", randn(6), torch.tensor(1), {"reduction": "none", "label_smoothing": 0.25})
        ce_case("ce_rows_weight_ignore", randn(5, 4), torch.tensor([0, -100, 3, 2, 3]), {"reduction": "mean"}, weight)
        ce_case("ce_all_ignored_mean", randn(3, 4), torch.tensor([-100, -100, -100]), {"reduction": "mean"})
        ce_case("ce_empty_batch_mean", randn(0, 4), torch.zeros(0, dtype=torch.int64), {"reduction": "mean"})
        ce_case("ce_empty_batch_sum", randn(0, 4), torch.zeros(0, dtype=torch.int64), {"reduction": "sum"})
        ce_case("ce_spatial_empty_positions", randn(2, 4, 0, 3), torch.zeros(2, 0, 3, dtype=torch.int64), {"reduction": "sum"})

        # ---- zero-size dimensions ------------------------------------------
        case("linear_empty_inner", "linear", [("x", randn(3, 4, 0)), ("weight", randn(5, 0)), ("bias", randn(5))],
             lambda x, w, b: F.linear(x, w, b), {})
        case("linear_empty_batch", "linear", [("x", randn(0, 3)), ("weight", randn(5, 3)), ("bias", randn(5))],
             lambda x, w, b: F.linear(x, w, b), {})
        case("linear_empty_out", "linear", [("x", randn(2, 3)), ("weight", randn(0, 3)), ("bias", randn(0))],
             lambda x, w, b: F.linear(x, w, b), {})
        case("matmul_empty_inner", "matmul", [("a", randn(2, 0)), ("b", randn(0, 3))], lambda a, b: a @ b, {})
        case("matmul_batched_empty", "matmul", [("a", randn(0, 2, 3)), ("b", randn(3, 4))], lambda a, b: a @ b, {})
        case("sum_empty_dim", "sum", [("x", randn(2, 0, 3))], lambda x: x.sum(dim=[1]), {"dims": [1], "keepdim": False})
        case("sum_empty_all", "sum", [("x", randn(2, 0, 3))], lambda x: x.sum(), {"dims": None, "keepdim": False})
        case("mean_empty_dim", "mean", [("x", randn(2, 0, 3))], lambda x: x.mean(dim=[1]), {"dims": [1], "keepdim": False})
        case("mean_over_nonempty_of_empty", "mean", [("x", randn(2, 0, 3))], lambda x: x.mean(dim=[-1], keepdim=True), {"dims": [-1], "keepdim": True})
        case("max_dim_empty_other", "max_dim", [("x", randn(0, 4))], lambda x: x.max(dim=-1).values, {"dim": -1, "keepdim": False})
        case("softmax_empty_rows", "softmax", [("x", randn(0, 4))], lambda x: F.softmax(x, dim=-1), {"dim": -1})
        case("log_softmax_empty_dim", "log_softmax", [("x", randn(3, 0))], lambda x: F.log_softmax(x, dim=-1), {"dim": -1})
        case("cat_with_empty", "cat", [("a", randn(2, 0)), ("b", randn(2, 3)), ("c", randn(2, 0))], lambda a, b, c: torch.cat([a, b, c], dim=1), {"dim": 1})
        case("narrow_empty", "narrow", [("x", randn(3, 4))], lambda x: x.narrow(1, 2, 0), {"dim": 1, "start": 2, "length": 0})
        case("reshape_empty", "reshape", [("x", randn(0, 3))], lambda x: x.reshape(3, 0), {"shape": [3, 0]})
        case("add_empty_broadcast", "add", [("a", randn(0, 3)), ("b", randn(3))], lambda a, b: a + b, {})
        case("exp_empty", "exp", [("x", randn(2, 0))], lambda x: x.exp(), {})
        case("transpose_empty", "transpose", [("x", randn(0, 3))], lambda x: x.transpose(0, 1), {"dim0": 0, "dim1": 1})
        case("flatten_empty", "flatten", [("x", randn(2, 0, 3))], lambda x: x.flatten(1), {"start_dim": 1})
        case("conv2d_empty_batch", "conv2d", [("input", randn(0, 3, 5, 5)), ("weight", randn(2, 3, 3, 3)), ("bias", randn(2))],
             lambda i, w, b: F.conv2d(i, w, b, padding=1), {"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1})
        case("max_pool2d_empty_batch", "max_pool2d", [("x", randn(0, 2, 4, 4))], lambda x: F.max_pool2d(x, 2), {"kernel_size": [2, 2]})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="fixtures/edges")
    args = p.parse_args()
    torch.use_deterministic_algorithms(True)
    w = Writer(args.out)
    generate(w)
    w.finish()
    print(f"{len(w.cases)} cases in {args.out}")


if __name__ == "__main__":
    main()

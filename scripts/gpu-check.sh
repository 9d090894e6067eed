#!/usr/bin/env bash
# The steps are called by name ("step_$step"), which shellcheck cannot follow.
# shellcheck disable=SC2317
# The whole GPU check in one call of at most 8 minutes, on a machine with an
# NVIDIA driver, CUDA 13 and PyTorch but no Rust toolchain and no network.
# It runs the bundle built by scripts/build-gpu-bundle.sh:
#   machine   nvidia-smi, glibc, where NVRTC was found                 15 s
#   tests     every bundled test binary with --include-ignored and
#             GRADLAB_REQUIRE_GPU=1 (a missing driver fails)          190 s
#   fixtures  `gradlab fixtures --device cuda` (PyTorch reference cases) 40 s
#   train     one LeNet epoch on CUDA on the bundled CIFAR-10 records     70 s
#   bench     the kernel table (cuda_bench) at GRADLAB_BENCH_BATCH        80 s
#   compare   cuBLAS / cuDNN through PyTorch on the same problems         70 s
# The shares add up to 465 s; each step also stops when the overall 480 s
# budget runs out. Every step's full output and one JSON of results go to
# $OUT (at most 8 files: machine.txt tests.txt fixtures.txt train.txt
# bench.txt bench.tsv compare.txt results.json); a one-screen summary ends
# the console output. Exit status: 0 only when every step passed.
#
# NVRTC (libnvrtc.so.13) is looked for in the toolkit (CUDA_HOME,
# /usr/local/cuda) and in PyTorch's bundled CUDA libraries; only the gradlab
# binaries get it on LD_LIBRARY_PATH. Python runs with the toolkit's library
# directories removed from LD_LIBRARY_PATH, so PyTorch loads its own.
#
# Usage: scripts/gpu-check.sh [--dry-run] [BUNDLE_DIR]
#   BUNDLE_DIR  default: this script's directory when it holds tests/ (the
#               bundle's copy), else target/gpu-bundle.
#   --dry-run   (or GRADLAB_GPU_CHECK_DRY_RUN=1) fakes the steps that need
#               the GPU (machine facts, fixtures, training, benchmark,
#               PyTorch), still running the bundle's tests/ executables, so
#               the plumbing can be checked anywhere;
#               GRADLAB_GPU_CHECK_FAKE_FAIL=STEP makes a faked STEP fail.
#   GRADLAB_BENCH_BATCH  batch of the conv and pool cases, both sides (256).
set -uo pipefail

dry_run="${GRADLAB_GPU_CHECK_DRY_RUN:-0}"
if [ "${1:-}" = "--dry-run" ]; then
    dry_run=1
    shift
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ge 1 ]; then
    bundle="$1"
elif [ -d "$here/tests" ]; then
    bundle="$here"
else
    bundle="$here/../target/gpu-bundle"
fi
bundle="$(cd "$bundle" 2>/dev/null && pwd)" || {
    echo "gpu-check: no bundle directory ${1:-}" >&2
    exit 2
}
out="${OUT:-$bundle/out}"
mkdir -p "$out"
batch="${GRADLAB_BENCH_BATCH:-256}"
fake_fail="${GRADLAB_GPU_CHECK_FAKE_FAIL:-}"
budget=480
started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
steps="$work/steps.tsv" # step, status, seconds, detail
groups="$work/groups.tsv" # test group, passed, failed, ignored, status
: >"$steps"
: >"$groups"

# Seconds a step may take: its share, or what is left of the budget.
allowance() {
    local share="$1" left=$((budget - (SECONDS - started)))
    if [ "$left" -lt "$share" ]; then share="$left"; fi
    if [ "$share" -lt 1 ]; then share=1; fi
    echo "$share"
}

record() { # step status seconds detail
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$steps"
}

# Runs "$@" with a time limit, appending all output to $log; sets $rc.
run_logged() {
    local limit="$1" log="$2"
    shift 2
    timeout --kill-after=5 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "gpu-check: timed out after ${limit}s: $*" >>"$log"
    fi
}

# A faked step: prints what it stands for and fails when asked to.
fake() { # step
    echo "(dry run: $1 faked)"
    [ "$fake_fail" != "$1" ]
}

# ----------------------------------------------------------------- machine --
find_nvrtc_dir() {
    local d
    for d in "${CUDA_HOME:-}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        if ls "$d"/libnvrtc.so.13* >/dev/null 2>&1; then
            echo "$d"
            return 0
        fi
    done
    # PyTorch's wheels bundle NVRTC under site-packages/nvidia/*/lib.
    local site
    site="$("${python_clean[@]}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)" || return 1
    for d in "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib; do
        if ls "$d"/libnvrtc.so.13* >/dev/null 2>&1; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# LD_LIBRARY_PATH without the toolkit's directories, for Python.
clean_ld_path() {
    local p kept="" IFS=:
    for p in ${LD_LIBRARY_PATH:-}; do
        case "$p" in
        */cuda/lib64* | */cuda/targets/* | */cuda-*/lib64*) ;;
        *) kept="${kept:+$kept:}$p" ;;
        esac
    done
    echo "$kept"
}
py_ld="$(clean_ld_path)"
# Commands, not functions, so that `timeout` can run them.
python_clean=(env "LD_LIBRARY_PATH=$py_ld" python3)

step_machine() {
    local log="$out/machine.txt" t0=$SECONDS limit status=passed detail
    limit="$(allowance 15)"
    : >"$log"
    if [ "$dry_run" = 1 ]; then
        fake machine >>"$log" || status=failed
        nvrtc_dir="$work"
        detail="dry run"
    else
        run_logged "$limit" "$log" nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
        [ "$rc" -eq 0 ] || status=failed
        ldd --version 2>&1 | head -1 >>"$log"
        if nvrtc_dir="$(find_nvrtc_dir)"; then
            echo "NVRTC: $nvrtc_dir" >>"$log"
            detail="NVRTC in $nvrtc_dir"
        else
            echo "NVRTC: libnvrtc.so.13 found neither in the toolkit nor in PyTorch's libraries" >>"$log"
            nvrtc_dir=""
            status=failed
            detail="no libnvrtc.so.13"
        fi
    fi
    if [ "$dry_run" = 1 ]; then
        gpu_name="no GPU"
    else
        gpu_name="$(head -2 "$log" | tail -1 | cut -d, -f1)"
    fi
    cuda_env=(env "LD_LIBRARY_PATH=${nvrtc_dir:+$nvrtc_dir:}${LD_LIBRARY_PATH:-}"
        "GRADLAB_PTXAS=${GRADLAB_PTXAS:-/usr/local/cuda/bin/ptxas}"
        GRADLAB_REQUIRE_GPU=1 "GRADLAB_BENCH_BATCH=$batch")
    # The PyTorch cases for the tests that run them (cuda_lenet).
    if [ -f "$bundle/fixtures/manifest.json" ]; then
        cuda_env+=("GRADLAB_FIXTURES=$bundle/fixtures")
    fi
    record machine "$status" $((SECONDS - t0)) "${detail:-}"
}


# ------------------------------------------------------------------- tests --
step_tests() {
    local log="$out/tests.txt" t0=$SECONDS status=passed total_failed=0 t name limit line
    : >"$log"
    if ! ls "$bundle"/tests/* >/dev/null 2>&1; then
        echo "no test binaries in $bundle/tests" >>"$log"
        record tests failed 0 "no test binaries"
        return
    fi
    for t in "$bundle"/tests/*; do
        name="$(basename "$t")"
        limit="$(allowance $((190 - (SECONDS - t0))))"
        echo "== $name" >>"$log"
        local before
        before="$(wc -l <"$log")"
        run_logged "$limit" "$log" "${cuda_env[@]}" "$t" --include-ignored --test-threads=2
        # libtest's closing line: "test result: ok. 3 passed; 0 failed; 1 ignored; ..."
        line="$(tail -n +"$before" "$log" | grep -E '^test result:' | tail -1)"
        local passed failed ignored gstatus=passed
        passed="$(echo "$line" | sed -nE 's/.* ([0-9]+) passed.*/\1/p')"
        failed="$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')"
        ignored="$(echo "$line" | sed -nE 's/.* ([0-9]+) ignored.*/\1/p')"
        if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
            gstatus=failed
            status=failed
            total_failed=$((total_failed + 1))
        fi
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "${passed:-0}" "${failed:-0}" "${ignored:-0}" "$gstatus" >>"$groups"
    done
    record tests "$status" $((SECONDS - t0)) "$total_failed failing binaries"
}

# ---------------------------------------------------------------- fixtures --
step_fixtures() {
    local log="$out/fixtures.txt" t0=$SECONDS status=passed detail=""
    : >"$log"
    if [ "$dry_run" = 1 ]; then
        { fake fixtures && echo "126 passed, 0 failed, 0 skipped"; } >>"$log" || status=failed
    elif [ -x "$bundle/gradlab" ] && [ -f "$bundle/fixtures/manifest.json" ]; then
        run_logged "$(allowance 40)" "$log" "${cuda_env[@]}" "$bundle/gradlab" fixtures "$bundle/fixtures" --device cuda
        [ "$rc" -eq 0 ] || status=failed
    else
        echo "no gradlab binary or no fixtures in the bundle" >>"$log"
        status=failed
    fi
    detail="$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)"
    record fixtures "$status" $((SECONDS - t0)) "$detail"
}

# ------------------------------------------------------------------- train --
step_train() {
    local log="$out/train.txt" t0=$SECONDS status=passed ckpt="$work/checkpoints"
    : >"$log"
    if [ "$dry_run" = 1 ]; then
        { fake train && echo '{"epoch":1,"test_accuracy":0.31,"images_per_second":50000}'; } >>"$log" || status=failed
    elif [ -x "$bundle/gradlab" ] && [ -f "$bundle/cifar10/records" ]; then
        local train_records test_records
        read -r train_records test_records <"$bundle/cifar10/records"
        run_logged "$(allowance 70)" "$log" "${cuda_env[@]}" "$bundle/gradlab" train --model lenet \
            --data "$bundle/cifar10" --device cuda --epochs 1 --batch-size 32 --lr 0.01 \
            --limit-train "$train_records" --limit-test "$test_records" \
            --metrics "$work/train.jsonl" --checkpoint-dir "$ckpt"
        [ "$rc" -eq 0 ] || status=failed
        { echo "== metrics"; cat "$work/train.jsonl" 2>/dev/null; } >>"$log"
    else
        echo "no gradlab binary or no CIFAR-10 records in the bundle" >>"$log"
        status=failed
    fi
    record train "$status" $((SECONDS - t0)) "$(grep -E '^\{' "$log" | tail -1)"
}

# ------------------------------------------------------------------- bench --
# Rows in the schema of gradlab_cuda::bench::format_tsv, for the dry run.
fake_bench_tsv() {
    printf 'group\tcase\tvariant\tms\tgflops\tgbps\n'
    local v
    for v in naive shared_tiled register_blocked vectorized warp_tiled tf32_tensor_core; do
        printf 'matmul\t4096\t%s\t10.0\t13744.0\t\n' "$v"
    done
    for c in lenet_conv1 lenet_conv2 conv3x3_64; do
        for v in forward backward_data backward_weight fwd+bwd; do
            printf 'conv2d\t%s\t%s\t1.0\t1000.0\t\n' "$c" "$v"
        done
    done
    printf 'max_pool2d\t%sx64x32x32 k2s2\tforward\t0.1\t\t1000.0\n' "$batch"
    printf 'max_pool2d\t%sx64x32x32 k2s2\tbackward\t0.1\t\t1000.0\n' "$batch"
    printf 'copy\t%sx64x32x32 k2s2\tdevice_to_device\t0.05\t\t2000.0\n' "$batch"
}

step_bench() {
    local log="$out/bench.txt" tsv="$out/bench.tsv" t0=$SECONDS status=passed
    : >"$log"
    rm -f "$tsv"
    if [ "$dry_run" = 1 ]; then
        if fake bench >>"$log"; then fake_bench_tsv >"$tsv"; else status=failed; fi
    elif [ -x "$bundle/cuda_bench" ]; then
        run_logged "$(allowance 80)" "$log" "${cuda_env[@]}" "$bundle/cuda_bench" --batch "$batch" --tsv "$tsv"
        [ "$rc" -eq 0 ] || status=failed
    else
        echo "no cuda_bench in the bundle" >>"$log"
        status=failed
    fi
    [ -s "$tsv" ] || status=failed
    record bench "$status" $((SECONDS - t0)) "batch $batch"
}

# ----------------------------------------------------------------- compare --
step_compare() {
    local log="$out/compare.txt" t0=$SECONDS status=passed
    : >"$log"
    if [ ! -s "$out/bench.tsv" ]; then
        echo "no benchmark rows to compare" >>"$log"
        record compare failed 0 "no benchmark rows"
        return
    fi
    if [ "$dry_run" = 1 ]; then
        fake compare >/dev/null || status=failed
        run_logged 30 "$log" "${python_clean[@]}" "$here/gpu-compare.py" "$out/bench.tsv" "$batch" --fake
    else
        run_logged "$(allowance 70)" "$log" "${python_clean[@]}" "$here/gpu-compare.py" "$out/bench.tsv" "$batch"
    fi
    [ "$rc" -eq 0 ] || status=failed
    record compare "$status" $((SECONDS - t0)) "$(grep -c 'MISSED' "$log") targets missed"
}

echo "gpu-check: bundle $bundle, results in $out, batch $batch, budget ${budget}s$([ "$dry_run" = 1 ] && echo ', DRY RUN')"
gpu_name=""
nvrtc_dir=""
# The gradlab binaries run with NVRTC on the library path (set by step_machine).
cuda_env=(env)
for step in machine tests fixtures train bench compare; do
    echo "== $step ($(allowance 480)s of the budget left)"
    "step_$step"
    tail -1 "$steps" | cut -f2,3 | sed 's/\t/, /; s/$/ s/'
done

# ------------------------------------------------------------------ report --
python3 - "$steps" "$groups" "$out" "$batch" "$dry_run" "${gpu_name:-}" $((SECONDS - started)) <<'PY'
import csv, json, os, sys

steps_tsv, groups_tsv, out, batch, dry_run, gpu_name, elapsed = sys.argv[1:]
steps = [dict(zip(["step", "status", "seconds", "detail"], r)) for r in csv.reader(open(steps_tsv), delimiter="\t")]
groups = [dict(zip(["group", "passed", "failed", "ignored", "status"], r)) for r in csv.reader(open(groups_tsv), delimiter="\t")]
for g in groups:
    for k in ("passed", "failed", "ignored"):
        g[k] = int(g[k])
kernels = []
compare = os.path.join(out, "compare.txt")
if os.path.exists(compare):
    for line in open(compare):
        f = line.rstrip("\n").split("\t")
        if len(f) == 7 and f[0] not in ("group",) and not line.startswith("#"):
            try:
                kernels.append({"group": f[0], "case": f[1], "variant": f[2], "ms": float(f[3]),
                                "reference_ms": float(f[4]), "share": float(f[5]), "reference": f[6]})
            except ValueError:
                pass
ok = all(s["status"] == "passed" for s in steps)
result = {"ok": ok, "dry_run": dry_run == "1", "gpu": gpu_name, "batch": int(batch),
          "seconds": int(elapsed), "steps": steps, "test_groups": groups, "kernels": kernels}
json.dump(result, open(os.path.join(out, "results.json"), "w"), indent=1)

print("=" * 78)
print(f"GPU check {'PASSED' if ok else 'FAILED'} in {elapsed} s  {gpu_name}{'  (dry run)' if dry_run == '1' else ''}")
print("steps:   " + "  ".join(f"{s['step']} {s['status']} ({s['seconds']} s)" for s in steps))
for g in groups:
    print(f"tests    {g['group']:<28} {g['passed']:>4} passed {g['failed']:>3} failed  {g['status']}")
# One screen: every matmul variant at the largest size, each convolution's
# forward + both gradients (and the three passes of the largest one), pooling.
sizes = [int(k["case"]) for k in kernels if k["group"] == "matmul"]
def shown(k):
    if k["group"] == "matmul":
        return k["case"] == str(max(sizes))
    if k["group"] == "conv2d":
        return k["variant"] == "fwd+bwd" or k["case"] == "conv3x3_64"
    return k["group"] == "max_pool2d"
for k in kernels:
    if shown(k):
        print(f"kernel   {k['group']:<10} {k['case']:<16} {k['variant']:<17} {k['ms']:>8.3f} ms  "
              f"{100 * k['share']:>5.1f}% of {k['reference']}")
for line in open(compare) if os.path.exists(compare) else []:
    if line.startswith("# target"):
        print(line[2:].rstrip())
print(f"results: {out}/results.json")
PY
report_rc=$?
failed_steps="$(awk -F'\t' '$2 != "passed"' "$steps" | wc -l)"
if [ "$failed_steps" -ne 0 ] || [ "$report_rc" -ne 0 ]; then
    exit 1
fi
exit 0

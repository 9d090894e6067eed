# Sets up the pinned NVRTC 13.0 / ptxas from PyPI under target/cuda-venv and
# exports LD_LIBRARY_PATH (libnvrtc.so.13) and GRADLAB_PTXAS.
# Usage: source scripts/cuda-env.sh   (from the repository root or anywhere)
#
# 13.0.x is pinned on purpose: NVRTC 13.5 emits PTX ISA 9.5, which ptxas 13.0
# and driver 580 refuse. --no-deps keeps pip from pulling newer pieces.

_gradlab_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_gradlab_venv="$_gradlab_root/target/cuda-venv"
if ! ls "$_gradlab_venv"/lib/python3*/site-packages/nvidia/cu13/lib/libnvrtc.so.13 >/dev/null 2>&1; then
    python3 -m venv "$_gradlab_venv" &&
    "$_gradlab_venv/bin/pip" install -q --no-deps \
        nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 ||
    echo "cuda-env.sh: could not install NVRTC into $_gradlab_venv" >&2
fi
_gradlab_cu="$(echo "$_gradlab_venv"/lib/python3*/site-packages/nvidia/cu13)"
if [ -d "$_gradlab_cu/lib" ]; then
    export LD_LIBRARY_PATH="$_gradlab_cu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export GRADLAB_PTXAS="$_gradlab_cu/bin/ptxas"
    export GRADLAB_CUDA_INCLUDE="$_gradlab_cu/include"
fi
unset _gradlab_root _gradlab_venv _gradlab_cu

#!/usr/bin/env bash
# Every GPU test and the GPU benchmark, in one run, on a machine with CUDA.
# GPU tests fail here instead of skipping (HWPERF_REQUIRE_GPU=1): a GPU check must not
# go green by skipping. Usage: bash scripts/gpu-check.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check-out}
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
HWPERF_REQUIRE_GPU=1 python -m pytest -m gpu -rA -p no:cacheprovider --junitxml="$out/gpu-tests.xml" tests | tee "$out/gpu-tests.txt"
python benchmarks/gpu_sync.py | tee "$out/gpu-sync.txt"

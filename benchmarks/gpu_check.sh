#!/usr/bin/env bash
# Every GPU claim in one prepared run, for a session that is lent an H100/H200 (see
# docs/performance.md). Run from the repository root on the device machine, with the
# py312 wheels copied into .whl/ (see .whl/README.md), e.g. through the device tool:
#   bash benchmarks/gpu_check.sh            # writes JSON and logs under $OUT (or ./gpu-out)
# Budget: about 8 minutes on an H200, compile included.
#
# CPU dry run, no GPU needed (tests/training/test_cpu_gpu_path.py, `pytest -m slow`):
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh
# runs every step with tiny sizes: the GPU tests are collected and skip, bench_step.py parses
# its arguments and stops (it times CUDA only), bench_stacking.py runs on the CPU.
set -uo pipefail
. benchmarks/gpu_env.sh
if [ -n "${GPU_CHECK_DRY_RUN:-}" ]; then
  STEP_ARGS=(--widths 64 --batch 2 --seq 32 --depth 1 --vocab 256 --steps 1 --warmup 1)
  STACK_ARGS=(--width 32 --k 2 --depth 1 --seq 32 --batch 2 --vocab 256 --steps 1 --repeats 1 --device cpu)
else
  STEP_ARGS=(--batch 16 --seq 1024 --depth 8)
  STACK_ARGS=(--width 256 --k 16 --depth 8 --seq 1024 --batch 8 --vocab 4096 --steps 10)
fi
{ if [ -n "${GPU_CHECK_DRY_RUN:-}" ]; then echo "CPU dry run (GPU_CHECK_DRY_RUN=1): tiny sizes, no GPU"
  else nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; date -u; } | tee "$OUT/device.txt"
timeout 180 python3 -m pytest -q -m gpu tests/training/test_gpu.py 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"
timeout 240 python3 benchmarks/bench_step.py "${STEP_ARGS[@]}" --json "$OUT/step.json" 2>&1 | tail -12 | tee "$OUT/step.txt"
timeout 180 python3 benchmarks/bench_stacking.py "${STACK_ARGS[@]}" --json "$OUT/stacking.json" 2>&1 | tail -4 | tee "$OUT/stacking.txt"

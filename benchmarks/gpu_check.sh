#!/usr/bin/env bash
# Every GPU claim in one prepared run, for a session that is lent an H100/H200 (see
# docs/performance.md). Run from the repository root on the device machine, with the
# py312 wheels copied into .whl/ (see .whl/README.md), e.g. through the device tool:
#   bash benchmarks/gpu_check.sh            # writes JSON and logs under $OUT (or ./gpu-out)
# Budget: about 8 minutes on an H200, compile included.
set -uo pipefail
. benchmarks/gpu_env.sh
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; date -u; } | tee "$OUT/device.txt"
timeout 180 python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"
timeout 240 python3 benchmarks/bench_step.py --batch 16 --seq 1024 --depth 8 --json "$OUT/step.json" 2>&1 | tail -12 | tee "$OUT/step.txt"
timeout 180 python3 benchmarks/bench_stacking.py --width 256 --k 16 --depth 8 --seq 1024 --batch 8 --vocab 4096 --steps 10 --json "$OUT/stacking.json" 2>&1 | tail -4 | tee "$OUT/stacking.txt"

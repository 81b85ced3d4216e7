#!/usr/bin/env bash
# The reproduction study (issue 9) on one GPU, as one resumable command for the device tool:
#   bash benchmarks/study_gpu.sh [SECONDS]     # default 540: stops cleanly before a 10-minute limit
# Trains configs/study.yaml into runs/ (resumable by finished cells: copy the returned $OUT/runs
# into runs/ and carry it to continue; a stack in flight restarts, its checkpoint is not returned),
# then, if time is left, trains the transfer's competitors on 3 fresh seeds (`transfer --train
# --seeds 3`: each rule's transferred point, the best target cell of any rule and each rule's own
# best; at most 6 target cells x 3 seeds), then configs/figure1.yaml (the sweep's own plan table
# replaces a dry run, which would measure K and step times a second time), and writes figures,
# transfer, diagnose and report. The regrets are read on the fresh seeds once they are trained,
# and on the grid's seed (selection-biased, and said so) until then.
# Everything except checkpoints is copied to $OUT/runs for docs/results.md.
set -uo pipefail
. benchmarks/gpu_env.sh
BUDGET="${1:-540}"; START=$SECONDS
STUDY="${STUDY_SPEC:-configs/study.yaml}"; FIG1="${FIG1_SPEC:-configs/figure1.yaml}"   # overridable for a dry test
STUDY_RUN="runs/$(python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$STUDY")"
FIG1_RUN="runs/$(python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$FIG1")"
read -r PROXY TARGET < <(python3 -c "import yaml,sys; w=yaml.safe_load(open(sys.argv[1]))['model']['widths']; print(min(w), max(w))" "$STUDY")
left() { echo $(( BUDGET - (SECONDS - START) )); }
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; python3 -c "import torch; print('torch', torch.__version__)"; date -u; } | tee "$OUT/device.txt"
timeout -s INT "$(left)" python3 -m lwscale.cli sweep "$STUDY" > "$OUT/study-sweep.txt" 2>&1   # the whole log: it starts with the plan and the timescale gate
if [ "$(left)" -gt 120 ] && [ -f "$STUDY_RUN/results.csv" ]; then
  timeout -s INT $(( $(left) - 60 )) python3 -m lwscale.cli transfer "$STUDY_RUN" --proxy-width "$PROXY" \
    --target-width "$TARGET" --train --seeds 3 > "$OUT/study-transfer-train.txt" 2>&1
fi
if [ "$(left)" -gt 120 ]; then
  timeout -s INT $(( $(left) - 60 )) python3 -m lwscale.cli sweep "$FIG1" 2>&1 | tail -30 > "$OUT/figure1-sweep.txt"
fi
for run in "$STUDY_RUN" "$FIG1_RUN"; do
  [ -d "$run" ] || continue
  lwscale plot "$run" > /dev/null 2>&1
  lwscale diagnose "$run" > "$OUT/$(basename "$run")-diagnose.txt" 2>&1
  [ "$run" = "$STUDY_RUN" ] && lwscale transfer "$run" --proxy-width "$PROXY" --target-width "$TARGET" > "$OUT/study-transfer.txt" 2>&1
  lwscale report "$run" > /dev/null 2>&1
done
lwscale status "$STUDY_RUN" > "$OUT/study-status.txt" 2>&1
mkdir -p "$OUT/runs" && tar --exclude=checkpoints --exclude=claims -cf - runs | tar -xf - -C "$OUT"

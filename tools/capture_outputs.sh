#!/bin/bash
# tools/capture_outputs.sh SRC OUT [resume]: every lwscale command on the quickstart, run with the code
# of the checkout SRC (PYTHONPATH=SRC/src); terminal text in OUT/term, files in OUT. Run it for two
# checkouts, then tools/compare_outputs.py OUT_A OUT_B: how a refactor was checked byte for byte
# (docs/architecture.md). K=4 fixes the cells per stack (else each run times its own: a different K
# stacks cells differently, and the diagnostics' gains then differ in float32's last bits).
set -u
SRC=$1; OUT=$2; HERE=$(cd "$(dirname "$0")" && pwd)
if [ "${3:-}" != resume ]; then rm -rf $OUT; mkdir -p $OUT/term; fi; cd $OUT
. ${VENV:-.venv}/bin/activate
export PYTHONPATH=$SRC/src LWSCALE_CACHE=${LWSCALE_CACHE:-$HOME/.cache/lwscale} COLUMNS=120 TERM=dumb
[ "${3:-}" = resume ] || cp -r $SRC/configs .
t() { local n=$1; shift; "$@" > term/$n.txt 2>&1; echo "rc=$?" >> term/$n.txt; }
[ "${3:-}" = resume ] || for c in "" sweep plot transfer report diagnose status coord-check data "data prepare"; do t "help-${c// /_}" lwscale $c --help; done
KS=${K:+--cells-per-stack $K}
[ "${3:-}" = resume ] || t sweep-dry lwscale sweep configs/quickstart.yaml --dry-run $KS
[ "${3:-}" = resume ] || t sweep lwscale sweep configs/quickstart.yaml $KS
t sweep-again lwscale sweep configs/quickstart.yaml $KS
t sweep-dry2 lwscale sweep configs/quickstart.yaml --dry-run $KS
t status lwscale status runs/quickstart
t status-json lwscale status runs/quickstart --json
t plot lwscale plot runs/quickstart
t transfer lwscale transfer runs/quickstart --proxy-width 32 --target-width 128
t emit lwscale transfer runs/quickstart --proxy-width 32 --target-width 128 --emit yaml
t diagnose lwscale diagnose runs/quickstart
t report lwscale report runs/quickstart
cp -r runs/quickstart runs/qs-train
t transfer-train lwscale transfer runs/qs-train --proxy-width 32 --target-width 128 --train --seeds 2
t report-train lwscale report runs/qs-train
t plot-train lwscale plot runs/qs-train
t coord lwscale coord-check configs/quickstart.yaml --out coord
head -c 200000 "$HERE/../README.md" > r.txt   # the same input for both checkouts
t prepare lwscale data prepare r.txt --out prepared --vocab-size 300
t bad1 lwscale sweep nonexist.yaml
t bad2 lwscale transfer runs/quickstart --proxy-width 128 --target-width 32
echo done

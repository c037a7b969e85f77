#!/usr/bin/env bash
# The paper protocol (Co-DA, CPS, supervised on ACDC) on one GPU inside a short device lease.
#
#   OUT=/some/dir bash benchmarks/gpu_protocol.sh [BUDGET_MINUTES]      # from the repository root
#
# Unpacks the packed ACDC, runs `coda-edu protocol --config configs/acdc_paper.yaml` with a time
# budget (default 7 minutes for the whole protocol: data loading, warm-up, training, evaluation),
# and copies the table to $OUT while it runs (every 20 s and at the end). Every step has its own
# timeout, so the script typically ends within BUDGET + 2 minutes (9 by default), inside a
# 10-minute command limit. The run folders stay in $WORK (checkpoints are too large to send back).
#
# What it reads (carry the folder .gpu to the machine; docs/benchmarks.md#gpu-protocol says how):
#   .gpu/acdc.cepack                  `coda-edu data pack acdc --out .gpu/acdc.cepack`, or else
#   .gpu/acdc_trainval_u8.npz.xz      ../shared/gpu's pack (either is found; the first wins)
#   .gpu/whl/*.whl                    wheels of packages the machine lacks (MONAI, for HD95/ASD)
#   .gpu/COMMIT                       `git rev-parse --short=12 HEAD` (the copy there has no .git)
# What it writes to $OUT (at most 8 files): protocol.md, protocol.json, plan.json, gpu_protocol.log,
# metrics-<method>-seed0.jsonl.
# A dry run on a CPU (the script's plumbing, not a measurement):
#   DEVICE=cpu PROTOCOL_ARGS="--set model.base_width=4 --set data.image_size=[64,64] ..." bash benchmarks/gpu_protocol.sh 3
set -uo pipefail

BUDGET=${1:-7}
OUT=${OUT:-out/gpu_protocol}
WORK=${WORK:-/tmp/coda_gpu}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
read -r -a EXTRA <<<"${PROTOCOL_ARGS:-}"
PROTOCOL_LIMIT=$(awk -v b="$BUDGET" 'BEGIN { printf "%d", b * 60 + 75 }')
mkdir -p "$OUT" "$WORK"
LOG="$OUT/gpu_protocol.log"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

log "gpu_protocol.sh: budget ${BUDGET} min, protocol limit ${PROTOCOL_LIMIT} s, work folder $WORK"
if [ -d .gpu/whl ] && ! "$PY" -c "import monai" 2>/dev/null; then
    timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" \
        .gpu/whl/*.whl >>"$LOG" 2>&1 || log "warning: installing .gpu/whl failed"
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -f .gpu/COMMIT ] && export CODA_EDU_GIT_COMMIT="$(head -c 40 .gpu/COMMIT)"
timeout 60 nvidia-smi -L >>"$LOG" 2>&1
CHECK="import torch, monai, h5py, yaml; assert '$DEVICE' == 'cpu' or torch.cuda.is_available()"
if ! timeout 120 "$PY" -c "$CHECK" >>"$LOG" 2>&1; then
    log "error: needs python3 with CUDA torch, monai, h5py and pyyaml (see $LOG)"; exit 2
fi

PACK=""
for candidate in .gpu/acdc.cepack .gpu/acdc_trainval_u8.npz.xz ../shared/gpu/acdc_trainval_u8.npz.xz; do
    if [ -f "$candidate" ]; then PACK=$candidate; break; fi
done
if [ -z "$PACK" ]; then log "error: no packed ACDC in .gpu/ (see the header of this script)"; exit 2; fi
log "unpacking $PACK"
if ! timeout 180 "$PY" -m coda_edu.cli data unpack "$PACK" --out "$WORK/data" --no-progress >>"$LOG" 2>&1; then
    log "error: unpacking failed (see $LOG)"; exit 2
fi
export CODA_EDU_DATA_DIR="$WORK/data"

copy_results() {
    for f in protocol.md protocol.json plan.json; do
        [ -f "$WORK/protocol/$f" ] && cp -f "$WORK/protocol/$f" "$OUT/$f"
    done
    for run in "$WORK"/protocol/runs/*/; do
        [ -f "$run/metrics.jsonl" ] && cp -f "$run/metrics.jsonl" "$OUT/metrics-$(basename "$run").jsonl"
    done
    return 0
}
( while sleep 20; do copy_results; done ) &
COPIER=$!

log "coda-edu protocol --config configs/acdc_paper.yaml --methods coda,cps,supervised --budget-minutes $BUDGET"
timeout -s INT -k 20 "$PROTOCOL_LIMIT" "$PY" -m coda_edu.cli protocol --config configs/acdc_paper.yaml \
    --methods coda,cps,supervised --budget-minutes "$BUDGET" --out "$WORK/protocol" --no-progress \
    --device "$DEVICE" "${EXTRA[@]}" 2>&1 \
    | tee -a "$LOG"
rc=${PIPESTATUS[0]}
kill "$COPIER" 2>/dev/null
wait "$COPIER" 2>/dev/null
copy_results
log "protocol exit status $rc (124/130: stopped at its time limit; re-run this script on the same machine to resume)"
[ -f "$OUT/protocol.md" ] && cat "$OUT/protocol.md"
exit "$rc"

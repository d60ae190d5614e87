#!/usr/bin/env bash
# On the GPU machine, in the repository root (binaries from build_carry.sh in $BIN): fig7's
# ResNet50-HP row for real through the interposer. HP ResNet50 inference (batch 4, Poisson
# 15/s) against each BE training job (ResNet50 32, MobileNetV2 64, ResNet101 32, BERT 8,
# Transformer 8) under ideal (each client alone), temporal, streams, priority-streams, reef,
# orion (the interposer's scheduler) and mps (a process per client under MPS):
#   orion-real --policy P --trace resnet50_BE --hp-rate 15 --duration $DURATION -o ...
# Resumable: a cell whose report exists is skipped; END (epoch seconds) stops starting new
# cells when too little time is left for one. Reports in $OUT/fig7/, logs and each run's files
# (workload and interposer configurations, driver outputs, interposer reports) in $OUT/work/.
#   SMOKE=1: one short orion run, one mps run and one ideal run of resnet50_bert only.
set -u
OUT=${OUT:-./device-out}
BIN=${BIN:-.carry}
DURATION=${DURATION:-10s}
BES=${BES:-resnet50 mobilenetv2 resnet101 bert transformer}
POLICIES=${POLICIES:-ideal orion streams priority-streams reef temporal mps}
CELL_S=${CELL_S:-45}
R=$OUT/fig7; [ -n "${SMOKE:-}" ] && R=$OUT/smoke
mkdir -p "$R" "$OUT/work"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
LOG=$OUT/fig7.log
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,compute_mode --format=csv >>"$LOG" 2>&1
python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)' >>"$LOG" 2>&1
cell() { # cell BE POLICY [extra args]
  local be=$1 p=$2
  shift 2
  local rep=$R/resnet50_$be-$p.json
  [ -s "$rep" ] && return 0
  if [ -n "${END:-}" ] && [ "$(date +%s)" -gt $((END - CELL_S)) ]; then
    echo "deadline: skipped resnet50_$be $p" | tee -a "$LOG"
    return 0
  fi
  local ideal=()
  if [ "$p" != ideal ]; then
    if [ -s "$R/resnet50_$be-ideal.json" ]; then ideal=(--ideal-from "$R/resnet50_$be-ideal.json"); else ideal=(--no-ideal); fi
  fi
  echo "-- resnet50_$be $p $(date +%T)" | tee -a "$LOG"
  local t0=$(date +%s)
  "$BIN/orion-real" --policy "$p" --trace "resnet50_$be" --hp-rate 15 --duration "$DURATION" "${ideal[@]}" \
    --startup-timeout "${STARTUP:-60}" --work-dir "$OUT/work/${SMOKE:+smoke-}resnet50_$be-$p" -o "$rep.tmp" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "rc=$rc $(( $(date +%s) - t0 )) s" | tee -a "$LOG"
  if [ $rc = 0 ]; then
    mv "$rep.tmp" "$rep"
  else # the driver's and the interposer's own words
    for f in "$OUT/work/${SMOKE:+smoke-}resnet50_$be-$p"/*.log; do
      [ -f "$f" ] && { echo "   [$f]"; grep -E "orion-preload|Error|error|Traceback" "$f" | tail -n 5; } >>"$LOG"
    done
  fi
  tail -n 8 "$LOG" | grep -E "^(hp|be|resnet|mobilenet|bert|transformer|error)" || true
}
if [ -n "${SMOKE:-}" ]; then
  DURATION=${SMOKE_DURATION:-4s}
  for p in orion mps ideal; do cell bert $p; done
fi
[ -z "${SMOKE:-}" ] && for be in $BES; do
  for p in $POLICIES; do cell "$be" "$p"; done
done
# One archive of the runs' files (the device tool returns few files): drop the copies of the
# Python driver and the profiles, pack the rest.
rm -rf "$OUT"/work/*/driver "$OUT"/work/*/traces
tar -C "$OUT" -cJf "$OUT/work.tar.xz" work && rm -rf "$OUT/work"
tar -C "$OUT" -cJf "$OUT/fig7-reports.tar.xz" "$(basename "$R")"

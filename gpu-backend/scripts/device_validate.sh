#!/usr/bin/env bash
# Validation of orion-real on the GPU machine in one go: the GPU's facts, the GPU tests, the
# synthetic-kernel fidelity sweep over every built-in trace, the executor's overhead, and a
# short two-client orion replay. Results go to $OUT (default ./device-out).
#
# Build here first (the GPU machine has no Rust toolchain):
#   gpu-backend/scripts/build_carry.sh
# then run, in the repository root on the GPU machine:
#   gpu-backend/scripts/device_validate.sh
set -u
OUT=${OUT:-./device-out}
BIN=${BIN:-.carry}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
LOG="$OUT/validate.log"
: >"$LOG"
step() { # step NAME TIMEOUT_S CMD...
  local name=$1 limit=$2
  shift 2
  echo "=== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=20 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc, $((SECONDS - t0)) s" | tee -a "$LOG"
}
{ nvidia-smi; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv; ls /usr/local/cuda/lib64/libnvrtc* 2>&1; } >>"$LOG" 2>&1
step info 30 "$BIN/orion-real" info
step fidelity 150 "$BIN/orion-real" calibrate -o "$OUT/fidelity.json" --kernels-out "$OUT/kernels.json" --calib-cache "$OUT/calib-cache.json"
step tests 200 "$BIN/orion-gpu-tests" --test-threads 1 --nocapture --skip builtin_traces_meet_the_fidelity_criterion
step overhead 60 "$BIN/orion-real" overhead --trace resnet50 --requests 200 -o "$OUT/overhead.json" --calib-cache "$OUT/calib-cache.json"
step replay 90 "$BIN/orion-real" replay --policy orion --trace resnet50_bert --duration 10s --calib-cache "$OUT/calib-cache.json" -o "$OUT/replay-orion.json"
# Ctrl-C: SIGINT after 12 s of a 60 s run must end it with exit code 130 and a report marked
# interrupted.
echo "=== sigint" | tee -a "$LOG"
"$BIN/orion-real" replay --policy priority-streams --trace resnet50_bert --duration 60s --calib-cache "$OUT/calib-cache.json" \
  -o "$OUT/interrupted.json" >>"$LOG" 2>&1 &
pid=$!
sleep 12
kill -INT $pid
wait $pid
echo "=== sigint: rc=$? (130 expected), interrupted: $(grep -o '"interrupted": [a-z]*' "$OUT/interrupted.json" 2>/dev/null)" | tee -a "$LOG"
if [ "${SMOKE:-0}" = 1 ]; then
  # The matrix script, briefly, on one pair (a smoke test of the command, not the matrix).
  step matrix-smoke 150 env DURATION=2s PAIRS=resnet50_bert BIN="$BIN" bash "$BIN/matrix.sh" "$OUT/matrix"
  tar -C "$OUT" -czf "$OUT/matrix-smoke.tgz" matrix && rm -rf "$OUT/matrix"
fi
nvidia-smi --query-gpu=memory.used,clocks.sm,temperature.gpu --format=csv >>"$LOG" 2>&1
grep -E "^=== |overhead_per_op|within 5%|^(all|resnet|mobilenet|bert|transformer)|test result|\.\.\. (ok|FAILED|ignored)|scheduler:|synthetic kernels:" "$LOG"

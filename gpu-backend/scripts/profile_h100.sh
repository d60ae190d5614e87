#!/usr/bin/env bash
# The measured H100 traces of model_kernels/h100/ in one GPU-machine call, within a deadline:
#   1. capture (Kineto) of the ten configs, no ncu: trace files with durations and host gaps;
#   2. `driver.py measure` of the ten configs (pass 1 unprofiled latency and CUDA-event span,
#      pass 2 one torch.profiler step: kernel_time_us), right after the captures;
#   3. `capture.py time` of the five inference configs (the captures' unprofiled timing code
#      alone), right after the driver: capture and driver timings back to back, twice over;
#   4. ncu (one launch per distinct launch configuration) for each config, inference first,
#      re-converting the traces with classes.
# Everything (traces, capture folders with the Kineto JSONs, ncu CSVs, logs, timings) is packed
# into OUT/h100-profile.tar.gz after each phase, so a run cut short still brings back what it
# did; `orion-profile convert --work-dir work/NAME` redoes the traces from it without a GPU.
#
# Usage (repository root of the GPU machine; .carry/orion-profile built here by
#   cargo build --release -p orion-gpu --bin orion-profile && cp target/release/orion-profile .carry/):
#   gpu-backend/scripts/profile_h100.sh OUT [DEADLINE_S (default 540)] [CONFIGS]
# NCU_ARGS adds orion-profile options to the ncu phase, e.g. NCU_ARGS=--ncu-every-launch to
# profile every launch instead of one per launch configuration (ncu's per-launch-config filter
# merges launches that orion-profile tells apart, leaving their classes unknown).
set -u
OUT=${1:?usage: profile_h100.sh OUT [DEADLINE_S] [CONFIGS]}
DEADLINE=${2:-540}
CONFIGS=${3:-"resnet50:inference mobilenetv2:inference resnet101:inference bert:inference transformer:inference resnet50:training mobilenetv2:training resnet101:training bert:training transformer:training"}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
W=/tmp/orion-profile-h100
mkdir -p "$W/work" "$W/traces" "$OUT"
PROF=${PROF:-.carry/orion-profile}
T0=$(date +%s)
left() { echo $((DEADLINE - ($(date +%s) - T0))); }
say() { echo "[profile_h100 +$(($(date +%s) - T0))s] $*"; }
pack() { tar -C "$W" -czf "$OUT/h100-profile.tar.gz" --exclude='*.ncu-rep' . && say "packed $(du -h "$OUT/h100-profile.tar.gz" | cut -f1)"; }
args_of() { # steps, warm-up and timed steps per mode
  if [ "$1" = training ]; then echo "--steps 3 --warmup 10 --latency-steps 10"; else echo "--steps 5 --warmup 10 --latency-steps 100"; fi
}

say "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,compute_mode --format=csv,noheader)"
say "ncu: $(command -v ncu) $(ncu --version 2>/dev/null | tail -1)"
git log -1 --format='commit %H' 2>/dev/null | tee "$W/commit.txt"

say "phase 1: captures"
for c in $CONFIGS; do
  m=${c%%:*}; mode=${c##*:}; t=$(left)
  [ "$t" -gt 20 ] || { say "deadline: skipping capture $c"; continue; }
  # shellcheck disable=SC2046
  timeout "$t" "$PROF" --model "$m" --mode "$mode" $(args_of "$mode") --no-ncu \
    --work-dir "$W/work/$m-$mode" --out-dir "$W/traces" 2>&1 | grep -v '^\[orion-profile\]   capture' | tail -n 4
done
pack

say "phase 2: driver.py measure"
t=$(left)
if [ "$t" -gt 60 ]; then
  timeout "$t" python3 gpu-backend/workloads/driver.py measure --warmup 10 --requests-inference 100 \
    --requests-training 10 --events-inference 10 --events-training 5 --profile-warmup 3 \
    --out "$W/driver-measure.json" 2>&1 | tail -n 30
fi

say "phase 3: capture.py time (inference), after the driver"
for c in $CONFIGS; do
  m=${c%%:*}; mode=${c##*:}; t=$(left)
  [ "$mode" = inference ] && [ "$t" -gt 150 ] || continue
  timeout 60 python3 gpu-backend/workloads/capture.py time --model "$m" --mode inference --warmup 10 \
    --latency-steps 100 --out "$W/time-$m-inference.json" 2>&1 | tail -n 1
done
pack

say "phase 4: ncu"
for c in $CONFIGS; do
  m=${c%%:*}; mode=${c##*:}; t=$(left)
  [ "$t" -gt 25 ] || { say "deadline: no ncu for $c"; continue; }
  # shellcheck disable=SC2046,SC2086
  timeout "$((t - 10))" "$PROF" --model "$m" --mode "$mode" $(args_of "$mode") --reuse-capture ${NCU_ARGS:-} \
    --work-dir "$W/work/$m-$mode" --out-dir "$W/traces" 2>&1 | grep -v 'kernels profiled' | tail -n 5
done
pack
say "done"

#!/usr/bin/env bash
# Calibration microbenchmarks on the real GPU (written by `orion-validate calibrate plan`).
# Replays every scenario of this folder under its policies with orion-real, one report each,
# into RESULTS; the first policy of a scenario also measures the ideal reference (each client
# alone), writes the replay's kernel list (measured standalone times) and the replayed traces;
# later policies take the ideal reference from it. Resumable: existing reports are skipped.
# Stops starting runs that would end after END (epoch seconds).
#
#   BIN=.carry RESULTS=validation/results/calib-h100 END=$(( $(date +%s) + 360 )) \
#     bash validation/calibration/plan/run.sh
#
# Then, on a machine with Rust: orion-validate calibrate fit --results RESULTS ...
set -u
PLAN=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-.carry}
RESULTS=${RESULTS:-validation/results/calib-$(date -u +%Y-%m-%d)}
END=${END:-0}
mkdir -p "$RESULTS/traces"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cp "$PLAN/plan.json" "$RESULTS/plan.json"
CACHE="$RESULTS/calib-cache.json"
LOG="$RESULTS/run.log"
done_n=0; skipped=0; failed=0; late=0
while IFS=$'\t' read -r name policy ideal est; do
  out="$RESULTS/$name-$policy.json"
  if [ -s "$out" ]; then skipped=$((skipped + 1)); continue; fi
  now=$(date +%s)
  if [ "$END" -gt 0 ] && [ $((now + est)) -gt "$END" ]; then
    echo "== $name $policy: not started, the deadline is near" | tee -a "$LOG"
    late=$((late + 1)); continue
  fi
  if [ "$ideal" = "-" ]; then
    extra=(--kernels-out "$RESULTS/$name-kernels.json" --traces-out "$RESULTS/traces")
  elif [ -s "$RESULTS/$ideal" ]; then
    extra=(--ideal-from "$RESULTS/$ideal")
  else
    echo "== $name $policy: no $ideal, running without an ideal reference" | tee -a "$LOG"
    extra=(--no-ideal)
  fi
  echo "== $name $policy" | tee -a "$LOG"
  if "$BIN/orion-real" replay --policy "$policy" "$PLAN/$name.json" --calib-cache "$CACHE" \
       -o "$out.tmp" "${extra[@]}" >>"$LOG" 2>&1; then
    mv "$out.tmp" "$out"; done_n=$((done_n + 1))
  else
    echo "== $name $policy: FAILED (see $LOG)" | tee -a "$LOG"; rm -f "$out.tmp"; failed=$((failed + 1))
  fi
done < "$PLAN/runs.tsv"
echo "calibration runs: $done_n done, $skipped already there, $failed failed, $late left for lack of time; reports in $RESULTS" | tee -a "$LOG"
[ "$failed" -eq 0 ] && [ "$late" -eq 0 ]

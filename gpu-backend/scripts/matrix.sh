#!/usr/bin/env bash
# The policy matrix on the real GPU: the six policies of the seed paper (ideal, temporal,
# streams, priority-streams, reef, orion) on two HP/BE pairs, one JSON report each, written to
# DIR (default validation/results/real-<date>). The ideal run of a pair is made first and is
# the reference of the other five (--ideal-from), so each pair costs 2 + 5 runs of DURATION.
# Calibrations are cached in DIR/calib-cache.json and shared by all runs; the replayed traces
# go to DIR/traces/ (orion-validate simulates exactly those).
#
#   gpu-backend/scripts/matrix.sh [DIR]      (env: DURATION=30s PAIRS="..." BIN=.carry)
set -u
BIN=${BIN:-.carry}
DURATION=${DURATION:-30s}
PAIRS=${PAIRS:-"resnet50_bert mobilenetv2_resnet101"}
POLICIES="temporal streams priority-streams reef orion"
DIR=${1:-validation/results/real-$(date -u +%Y-%m-%d)}
mkdir -p "$DIR"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
CACHE="$DIR/calib-cache.json"
fail=0
for pair in $PAIRS; do
  echo "== $pair: ideal"
  "$BIN/orion-real" replay --policy ideal --trace "$pair" --duration "$DURATION" --calib-cache "$CACHE" \
    --kernels-out "$DIR/$pair-kernels.json" --traces-out "$DIR/traces" -o "$DIR/$pair-ideal.json" || fail=1
  for p in $POLICIES; do
    echo "== $pair: $p"
    if [ -f "$DIR/$pair-ideal.json" ]; then ref=(--ideal-from "$DIR/$pair-ideal.json"); else ref=(--no-ideal); fi
    "$BIN/orion-real" replay --policy "$p" --trace "$pair" --duration "$DURATION" --calib-cache "$CACHE" \
      "${ref[@]}" -o "$DIR/$pair-$p.json" || fail=1
  done
done
echo "reports in $DIR"
exit $fail

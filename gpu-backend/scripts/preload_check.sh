#!/usr/bin/env bash
# On the GPU machine, in the repository root: one client (ResNet50) without the interposer,
# under it counting, and under it scheduling with the pass-through policy `streams` (and
# `orion`): outputs compared (deterministic algorithms) and throughput against no interposer
# (inference batch 4, training batch 32). Each configuration runs twice, alternating, to see
# the run-to-run noise. Results in $OUT (default ./device-out): check-*.pt, check.json, check.log.
set -u
OUT=${OUT:-./device-out}
BIN=${BIN:-.carry}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1
LIB=$PWD/$BIN/liborion_preload.so
S=gpu-backend/preload/tests/sched_check.py
cfg() { # cfg POLICY FILE
  printf '{"policy": "%s", "device": {"name": "H100", "sm_count": 132}, "clients": [{"name": "c0", "role": "hp", "kind": "inference", "warmup": 0}]}\n' "$1" >"$2"
}
cfg streams "$OUT/streams.json"
cfg orion "$OUT/orion.json"
files=()
for round in 1 2; do
  python3 $S run --out "$OUT/check-none-$round.pt" ${REQ:+--requests $REQ} && files+=("$OUT/check-none-$round.pt")
  LD_PRELOAD=$LIB ORION_PRELOAD_MODE=count python3 $S run --out "$OUT/check-count-$round.pt" && files+=("$OUT/check-count-$round.pt")
  LD_PRELOAD=$LIB ORION_PRELOAD_CONFIG=$OUT/streams.json python3 $S run --out "$OUT/check-streams-$round.pt" && files+=("$OUT/check-streams-$round.pt")
done
LD_PRELOAD=$LIB ORION_PRELOAD_CONFIG=$OUT/orion.json python3 $S run --out "$OUT/check-orion-1.pt" && files+=("$OUT/check-orion-1.pt")
python3 $S compare "${files[@]}" --out "$OUT/check.json"

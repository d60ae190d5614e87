#!/usr/bin/env bash
# On the GPU machine: how many launches one stream holds before a launch call blocks
# (queue_depth.cu; the fitted device's `submitter.queue_depth`, 1,024 until measured).
# Writes $OUT/queue_depth.jsonl: one line per stream count and kernel length.
set -u
OUT=${OUT:-./device-out}
W=${WORK:-/tmp/orion-queue-depth}
mkdir -p "$OUT" "$W"
nvcc -O2 -o "$W/queue_depth" gpu-backend/scripts/queue_depth.cu || { echo "queue_depth: nvcc failed"; exit 1; }
for spin in 50 200; do
  "$W/queue_depth" "${N:-4000}" "$spin" | tee -a "$OUT/queue_depth.jsonl"
done

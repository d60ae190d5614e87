#!/bin/bash
# GPU check of the real-backend timeline (issue 8): the GPU test, then orion and streams on
# resnet50_bert with timelines of 1.00-1.25 s.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH
OUT=${1:?usage: timeline_check.sh OUT (repository root of the GPU machine, carry .carry from build_carry.sh)}
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $OUT/smi.txt 2>&1
zcat validation/results/real-2026-11-24-h100/calib-cache.json.gz > /tmp/cc.json
timeout 90 .carry/orion-gpu-tests a_replay_writes_a_valid_timeline --nocapture > $OUT/gpu-test.log 2>&1
echo "rc=$? at $(( $(date +%s) - T0 )) s" >> $OUT/gpu-test.log
for p in orion streams; do
  timeout 50 .carry/orion-real replay --policy $p --trace resnet50_bert --duration 3s --no-ideal \
    --calib-cache /tmp/cc.json --timeline $OUT/real-resnet50_bert-$p.json --window 1s..1.25s \
    --json -o $OUT/real-resnet50_bert-$p-report.json > $OUT/real-$p.log 2>&1
  echo "rc=$? at $(( $(date +%s) - T0 )) s" >> $OUT/real-$p.log
done
gzip -9 $OUT/real-resnet50_bert-*.json
ls -la $OUT

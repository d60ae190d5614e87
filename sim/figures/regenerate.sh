#!/usr/bin/env bash
# Regenerates the figures shown in the README (PNG; every command also writes SVG).
# Usage: bash sim/figures/regenerate.sh   (from the repository root; about a minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p orion-sim
sim="${CARGO_TARGET_DIR:-target}/release/orion-sim"

out=sim/figures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# fig7: HP p95 per BE job and policy (ideal as a line), stacked HP + BE throughput, HP latency CDF.
$sim experiment fig7 --duration 10s --plot "$tmp/fig7" >/dev/null
cp "$tmp/fig7/fig7_latency.png" "$tmp/fig7/fig7_throughput.png" "$out/"
cp "$tmp/fig7/fig7_cdf_resnet50_bert.png" "$out/fig7_cdf_resnet50_bert.png"
# fig10: bursty HP inference against BE inference jobs.
$sim experiment fig10 --duration 10s --plot "$tmp/fig10" >/dev/null
cp "$tmp/fig10/fig10_latency.png" "$out/"
# Utilisation timeline of one run: SMs busy per client and DRAM bandwidth, 200 ms of it.
$sim --trace resnet50_bert --policy orion --duration 5s --window 1s..1.2s --plot "$tmp/run" >/dev/null
cp "$tmp/run/utilization.png" "$out/utilization_resnet50_bert_orion.png"
# Sweep: Orion's duration gate and REEF's queue depth, HP p95 overhead vs BE throughput.
$sim sweep --trace resnet50_bert --policy orion,reef --param orion.dur_threshold=20us..2ms:log:40 \
  --param reef.reef_depth=1,2,4,8,12,16,24,32 --duration 10s --quiet -o "$tmp/sweep.csv" --plot "$tmp/sweep"
cp "$tmp/sweep/sweep_pareto.png" "$out/"
ls -la "$out"

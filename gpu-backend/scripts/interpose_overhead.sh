#!/usr/bin/env bash
# On the GPU machine, in the repository root (interposer built by build_carry.sh; BIN names
# the folder holding liborion_preload.so): the interposer's overhead on one client alone
# (issue 6: at most 5% throughput lost with a pass-through policy). Each run is one process of
# gpu-backend/preload/tests/sched_check.py: an inference phase (batch 4, REQ timed requests after
# IWARM untimed ones) then a training phase (the model's training batch, ITERS timed iterations
# after TWARM+3 untimed), each client on its own stream, one client at a time. Modes:
#   none     no interposer;
#   count    the interposer counting every call, passing it on;
#   streams  scheduling mode, policy `streams` (every op submitted as soon as it is captured);
#   orion    scheduling mode, policy `orion` (the client alone is the HP client);
#   streamsN, orionN: the same with ORION_PRELOAD_POLL_US=N (the scheduler's completion polling).
# MODELS x MODES, ROUNDS rounds interleaved (fewer if END, a deadline in epoch seconds, is near).
# BLOCKS=K (default 0) also times each phase in-process as K pairs of blocks, with request marks
# (scheduled) and without (the interposer passes them through), alternating AB BA: the host's
# launch rate drifts by a third between processes minutes apart, and this pairs the two within
# seconds (`<model>.<mode>.<phase>_inproc`: median and quartiles of the per-pair ratios; under
# `none` both blocks are alike, which shows the method's own noise).
# Results in $OUT/overhead: overhead.json (per model, mode and phase: median, spread, median of
# the ratios to `none` within each round; the interposer's waits and scheduler-thread times of
# the last round) and overhead.log.
set -u
OUT=${OUT:-./device-out}/overhead
BIN=${BIN:-.carry}
ROUNDS=${ROUNDS:-3}
MODELS=${MODELS:-resnet50}
MODES=${MODES:-none count streams orion}
W=${WORK:-/tmp/orion-overhead}
mkdir -p "$OUT" "$W"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1
LIB=$PWD/$BIN/liborion_preload.so
S=gpu-backend/preload/tests/sched_check.py
LOG=$OUT/overhead.log
for p in streams orion; do
  printf '{"policy": "%s", "device": {"name": "H100", "sm_count": 132}, "clients": [{"name": "infer", "role": "hp", "kind": "inference", "warmup": 0}, {"name": "train", "role": "be", "kind": "training", "warmup": 0}]}\n' "$p" >"$W/$p.json"
done
train_batch() { case $1 in mobilenetv2) echo 64 ;; bert|transformer) echo 8 ;; *) echo 32 ;; esac; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv >>"$LOG" 2>&1
echo "nproc $(nproc); cgroup cpu.max $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo -)" >>"$LOG"
for r in $(seq 1 "$ROUNDS"); do
  if [ -n "${END:-}" ] && [ "$(date +%s)" -gt $((END - 60)) ]; then echo "deadline: $((r - 1)) rounds" | tee -a "$LOG"; break; fi
  for m in $MODELS; do
    for mode in $MODES; do
      a=(--model "$m" --train-batch "$(train_batch "$m")" --requests "${REQ:-600}" --iters "${ITERS:-40}"
         --infer-warmup "${IWARM:-100}" --train-warmup "${TWARM:-5}" --blocks "${BLOCKS:-0}" --no-deterministic --out "$W/$m-$mode-$r.pt")
      t0=$(date +%s.%N)
      case $mode in
        none) timeout 300 python3 $S run "${a[@]}" ;;
        count) LD_PRELOAD=$LIB ORION_PRELOAD_MODE=count timeout 300 python3 $S run "${a[@]}" ;;
        *) policy=${mode%%[0-9]*}; poll=${mode#"$policy"}
           LD_PRELOAD=$LIB ORION_PRELOAD_CONFIG=$W/$policy.json env ${poll:+ORION_PRELOAD_POLL_US=$poll} \
             timeout 300 python3 $S run "${a[@]}" ;;
      esac >>"$LOG" 2>&1
      echo "round $r $m $mode rc=$? $(python3 -c "import time; print('%.1f s' % (time.time() - $t0))")" | tee -a "$LOG"
    done
  done
done
# HOOK_PAIRS=N (default 0): the hook's own pass-through cost, hook_cost.cu run N times without
# and with the interposer, alternately (host ns per empty-kernel launch): $OUT/hook_cost.jsonl.
if [ "${HOOK_PAIRS:-0}" -gt 0 ]; then
  nvcc -O2 -o "$W/hook_cost" gpu-backend/scripts/hook_cost.cu -ldl >>"$LOG" 2>&1 || echo "hook_cost: nvcc failed" | tee -a "$LOG"
  for i in $(seq 1 "$HOOK_PAIRS"); do
    "$W/hook_cost" >>"$OUT/hook_cost.jsonl" 2>>"$LOG"
    LD_PRELOAD=$LIB ORION_PRELOAD_CONFIG=$W/streams.json "$W/hook_cost" >>"$OUT/hook_cost.jsonl" 2>>"$LOG"
  done
  python3 - "$OUT/hook_cost.jsonl" <<'PY' 2>&1 | tee -a "$LOG"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
none = [r["median_ns"] for r in rows if not r["preload"]]
pre = [r["median_ns"] for r in rows if r["preload"]]
d = [b - a for a, b in zip(none, pre)]
print("hook_cost", json.dumps({"pairs": len(d), "none_median_ns": statistics.median(none), "preload_median_ns": statistics.median(pre),
                               "paired_diff_median_ns": statistics.median(d), "paired_diff_ns": [round(x, 1) for x in d]}))
PY
fi
python3 - "$W" "$OUT/overhead.json" "$MODELS" "$MODES" <<'PY' 2>&1 | tee -a "$LOG"
import glob, json, os, re, statistics, sys, torch
w, out, models, modes = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
runs = {}
for f in glob.glob(os.path.join(w, "*.pt")):
    m = re.match(r"(.+)-([a-z]+\d*)-(\d+)\.pt$", os.path.basename(f))
    if not m:
        continue
    d = torch.load(f, weights_only=False)
    runs.setdefault(m[1], {}).setdefault(m[2], {})[int(m[3])] = d
res = {"rounds": {m: {k: sorted(v) for k, v in r.items()} for m, r in runs.items()}, "summary": {}, "interposer": {}}
for model, by_mode in runs.items():
    for mode, rs in by_mode.items():
        for k in ("infer_per_s", "train_per_s"):
            v = [d[k] for d in rs.values()]
            base = by_mode.get("none", {})
            paired = [rs[r][k] / base[r][k] for r in rs if r in base]
            res["summary"][f"{model}.{mode}.{k}"] = {
                "n": len(v), "median": statistics.median(v), "min": min(v), "max": max(v),
                "spread_pct": 100 * (max(v) - min(v)) / statistics.median(v),
                "paired_vs_none_pct": 100 * (statistics.median(paired) - 1) if paired else None,
                "paired_ratios": paired}
        for ph in ("infer", "train"):
            ratios, per_round = [], []
            for d in rs.values():
                b = d.get(ph + "_blocks") or []
                rr = []
                for i in range(0, len(b) - 1, 2):
                    m, p = (b[i], b[i + 1]) if b[i][0] else (b[i + 1], b[i])
                    rr.append((m[2] / m[1]) / (p[2] / p[1]))
                ratios += rr
                if rr:
                    per_round.append(statistics.median(rr))
            if ratios:
                q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
                res["summary"][f"{model}.{mode}.{ph}_inproc"] = {
                    "pairs": len(ratios), "median_pct": 100 * (statistics.median(ratios) - 1),
                    "q1_pct": 100 * (q[0] - 1), "q3_pct": 100 * (q[2] - 1),
                    "per_round_median_pct": [100 * (x - 1) for x in per_round]}
        last = rs[max(rs)].get("stats")
        if last:
            sch = last.get("schedule") or {}
            res["interposer"][f"{model}.{mode}"] = {
                "waits": last.get("waits"), "capture_ns": last.get("capture_ns"), "calls": last.get("calls"),
                "uncaptured": last.get("uncaptured"),
                "scheduler_thread": sch.get("scheduler_thread"), "policy_calls": sch.get("policy_calls"),
                "submit_errors": sch.get("submit_errors"),
                "clients": [{k: c.get(k) for k in ("name", "submitted", "completed", "requests", "ops_from_other_threads")}
                            for c in sch.get("clients", [])]}
json.dump(res, open(out, "w"), indent=1)
for k, v in sorted(res["summary"].items()):
    print(k, json.dumps({a: (round(b, 3) if isinstance(b, float) else b) for a, b in v.items() if a != "paired_ratios"}))
for k, v in sorted(res["interposer"].items()):
    print(k, json.dumps({a: b for a, b in v.items() if a != "calls"}))
PY

#!/usr/bin/env bash
# On the GPU machine, in the repository root (interposer built by build_carry.sh; BIN names
# the folder holding liborion_preload.so): the interposer's scheduling mode checked on the
# H100, each run one process (gpu-backend/preload/tests/sched_check.py: an inference phase as
# client 0, a training phase as client 1, each on its own stream; backward() on PyTorch's
# autograd thread).
#   1. correctness: ResNet50 (inference b4, training b32) and BERT (b2, b8), deterministic
#      algorithms, no interposer vs `streams` vs `orion`: outputs and losses compared;
#   2. profile matching: the five models under `streams` with the measured H100 profiles
#      (model_kernels/h100/, default algorithms as when they were measured): per client the
#      ops matched by position, loosely, by (name, grid), unknown, and the first mismatches;
#   3. serve: gpu-backend/workloads/driver.py serve with an HP/BE pair (ResNet50 inference b4,
#      Poisson arrivals, as client 0; ResNet50 training b32, closed loop, as client 1), each
#      client thread on its own stream, without the interposer and under `streams` and
#      `orion` (request marks through the C ABI; the interposer's report at exit);
#   4. overhead: interpose_overhead.sh on ResNet50 (inference b4, training b32; no interposer /
#      count / streams / orion, ROUNDS interleaved rounds, fewer if END is near).
# SECTIONS picks the sections (default: correct match serve overhead); CORRECT_MODELS and
# MATCH_MODELS the models; REQ_C the timed requests of the correctness runs.
# Results in $OUT: validate.log, correct-*.json, serve.json, overhead/.
set -u
OUT=${OUT:-./device-out}
BIN=${BIN:-.carry}
ROUNDS=${ROUNDS:-4}
W=${WORK:-/tmp/orion-validate}
mkdir -p "$OUT" "$W"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1
LIB=$PWD/$BIN/liborion_preload.so
S=gpu-backend/preload/tests/sched_check.py
K=$PWD/model_kernels/h100
LOG=$OUT/validate.log
cfg() { # cfg POLICY FILE [INFER_TRACE TRAIN_TRACE]
  local t0="" t1=""
  [ -n "${3:-}" ] && t0=", \"trace\": \"$K/$3\""
  [ -n "${4:-}" ] && t1=", \"trace\": \"$K/$4\""
  printf '{"policy": "%s", "device": {"name": "H100", "sm_count": 132}, "clients": [{"name": "infer", "role": "hp", "kind": "inference", "warmup": 0%s}, {"name": "train", "role": "be", "kind": "training", "warmup": 0%s}]}\n' "$1" "$t0" "$t1" >"$2"
}
batches() { case $1 in resnet50|resnet101) echo "4 32" ;; mobilenetv2) echo "4 64" ;; bert) echo "2 8" ;; transformer) echo "4 8" ;; esac; }
cfg streams "$W/streams.json"
cfg orion "$W/orion.json"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv >>"$LOG" 2>&1
SECTIONS=" ${SECTIONS:-correct match serve overhead} "
on() { [[ $SECTIONS == *" $1 "* ]]; }
on correct && echo "== 1. correctness" | tee -a "$LOG"
on correct && for m in ${CORRECT_MODELS:-resnet50 bert}; do
  read -r ib tb <<<"$(batches $m)"
  a=(--model $m --infer-batch $ib --train-batch $tb --requests ${REQ_C:-20} --iters 3)
  files=()
  echo "-- $m none" | tee -a "$LOG"
  python3 $S run --out "$W/c-$m-none.pt" "${a[@]}" >>"$LOG" 2>&1 && files+=("$W/c-$m-none.pt")
  for p in ${POLICIES:-streams orion}; do
    echo "-- $m $p" | tee -a "$LOG"
    LD_PRELOAD=$LIB ORION_PRELOAD_CONFIG=$W/$p.json timeout 120 python3 $S run --out "$W/c-$m-$p.pt" "${a[@]}" >>"$LOG" 2>&1 && files+=("$W/c-$m-$p.pt")
  done
  python3 $S compare "${files[@]}" --out "$OUT/correct-$m.json" 2>&1 | tee -a "$LOG"
done
on match && echo "== 2. profile matching" | tee -a "$LOG"
on match && for m in ${MATCH_MODELS:-resnet50 mobilenetv2 resnet101 bert transformer}; do
  read -r ib tb <<<"$(batches $m)"
  cfg streams "$W/match-$m.json" "$m-inference-b$ib.csv" "$m-training-b$tb.csv"
  echo "-- $m" | tee -a "$LOG"
  LD_PRELOAD=$LIB ORION_PRELOAD_CONFIG=$W/match-$m.json timeout 120 python3 $S run --out "$W/m-$m.pt" \
    --model $m --infer-batch $ib --train-batch $tb --requests 20 --iters 3 --no-deterministic 2>&1 | tee -a "$LOG" | grep -E "^client|^schedule|rror"
done
if on serve; then
echo "== 3. serve" | tee -a "$LOG"
RATE=${RATE:-50}
printf '{"policy": "%s", "device": {"name": "H100", "sm_count": 132}, "clients": [{"name": "hp", "role": "hp", "kind": "inference", "warmup": 10, "trace": "%s"}, {"name": "be", "role": "be", "kind": "training", "warmup": 10, "trace": "%s"}]}\n' \
  streams "$K/resnet50-inference-b4.csv" "$K/resnet50-training-b32.csv" >"$W/serve-streams.json"
sed 's/"streams"/"orion"/' "$W/serve-streams.json" >"$W/serve-orion.json"
for p in none streams orion; do
  a=(gpu-backend/workloads/driver.py serve --stream-per-client --duration ${SERVE_DURATION:-10s} --warmup 10
     --client model=resnet50,mode=inference,batch=4,arrival=poisson:$RATE,role=hp,name=hp
     --client model=resnet50,mode=training,batch=32,arrival=closed,role=be,name=be --out "$W/serve-$p.json")
  echo "-- serve $p" | tee -a "$LOG"
  if [ $p = none ]; then
    timeout 120 python3 "${a[@]}" >>"$LOG" 2>&1
  else
    LD_PRELOAD=$LIB ORION_PRELOAD_CONFIG=$W/serve-$p.json ORION_PRELOAD_REPORT=$W/preload-$p.json timeout 120 python3 "${a[@]}" >>"$LOG" 2>&1
  fi
  echo "rc=$?" | tee -a "$LOG"
done
python3 - "$W" "$OUT/serve.json" <<'PY' 2>&1 | tee -a "$LOG"
import json, os, sys
w, out = sys.argv[1], sys.argv[2]
res = {}
for p in ("none", "streams", "orion"):
    r = {}
    f = os.path.join(w, f"serve-{p}.json")
    if os.path.exists(f):
        d = json.load(open(f))
        r["driver"] = {k: v for k, v in d.items() if k != "clients"}
        r["clients"] = [{k: v for k, v in c.items() if k not in ("requests", "samples", "warmup_ms")} for c in d.get("clients", [])]
    f = os.path.join(w, f"preload-{p}.json")
    if os.path.exists(f):
        d = json.load(open(f))
        sch = d.get("schedule") or {}
        for c in sch.get("clients", []):
            if isinstance(c.get("latency"), dict):
                c["latency"].pop("requests_ns", None)
        r["preload"] = {"captured": d.get("captured"), "uncaptured": d.get("uncaptured"),
                        "failure_logged": d.get("failure_logged"), "schedule": sch}
    res[p] = r
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res)[:6000])
PY
fi
on overhead || exit 0
echo "== 4. overhead (interpose_overhead.sh)" | tee -a "$LOG"
OUT=$OUT BIN=$BIN ROUNDS=$ROUNDS MODELS=resnet50 bash "$(dirname "$0")/interpose_overhead.sh"

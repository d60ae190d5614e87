#!/bin/bash
# 600 s leak/hang run of orion-real on the device machine, in two device calls:
#   bash .carry/leak600.sh start     # starts the run detached (setsid), sleeps $SLEEP s (570)
#   bash .carry/leak600.sh collect   # waits for the end (<= $WAIT s), copies the results to $OUT
# Run from the repo root. Samples: nvidia-smi memory every 5 s, host RSS of orion-real every 5 s,
# plus the report's own engine.gpu_memory_mib samples (every 10 s).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH
D=/tmp/leak
DUR=${DUR:-600s}
case $1 in
start)
  mkdir -p $D
  nvidia-smi > $D/smi-before.txt 2>&1
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,power.limit --format=csv >> $D/smi-before.txt 2>&1
  D=$D DUR=$DUR setsid bash -c '
    nvidia-smi --query-gpu=timestamp,memory.used,memory.free,utilization.gpu,temperature.gpu,clocks.sm --format=csv -lms 5000 > $D/gpu-mem.csv 2>&1 & SMI=$!
    echo "t0 $(date +%s.%N) $(date -u +%FT%TZ)" > $D/meta.txt
    echo "cmd .carry/orion-real replay --policy orion --trace resnet50_bert --duration $DUR --no-ideal -o $D/leak.json" >> $D/meta.txt
    .carry/orion-real replay --policy orion --trace resnet50_bert --duration $DUR --no-ideal -o $D/leak.json > $D/run.log 2>&1 & P=$!
    echo $P > $D/pid
    T0=$(date +%s)
    echo "elapsed_s rss_kib" > $D/rss.txt
    while kill -0 $P 2>/dev/null; do
      echo "$(( $(date +%s) - T0 )) $(awk "/VmRSS/{print \$2}" /proc/$P/status 2>/dev/null)" >> $D/rss.txt; sleep 5
    done &
    wait $P; RC=$?
    echo "t1 $(date +%s.%N) $(date -u +%FT%TZ)" >> $D/meta.txt
    echo "rc $RC" >> $D/meta.txt
    sleep 6; kill $SMI
    nvidia-smi >> $D/smi-after.txt 2>&1
    touch $D/done
  ' < /dev/null > $D/wrapper.log 2>&1 &
  sleep ${SLEEP:-570}
  ls -la $D; cat $D/meta.txt; tail -5 $D/run.log; head -3 $D/gpu-mem.csv; tail -3 $D/gpu-mem.csv; tail -2 $D/rss.txt
  ;;
collect)
  for i in $(seq 1 ${WAIT:-240}); do [ -f $D/done ] && break; sleep 1; done
  if [ ! -f $D/done ]; then
    echo "NOT DONE after wait: HANG? sending SIGINT to $(cat $D/pid)"; echo "hang: SIGINT sent $(date -u +%FT%TZ)" >> $D/meta.txt
    kill -INT $(cat $D/pid); for i in $(seq 1 60); do [ -f $D/done ] && break; sleep 1; done
  fi
  cat $D/smi-before.txt $D/smi-after.txt > $D/nvidia-smi.txt 2>/dev/null
  cp $D/leak.json $D/gpu-mem.csv $D/rss.txt $D/run.log $D/meta.txt $D/nvidia-smi.txt $D/wrapper.log $OUT/ 2>&1
  cat $D/meta.txt; cat $D/run.log; wc -l $D/gpu-mem.csv $D/rss.txt; ls -la $OUT
  ;;
esac

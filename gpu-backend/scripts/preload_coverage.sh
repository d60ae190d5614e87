#!/usr/bin/env bash
# On the GPU machine, in the repository root: facts about the CUDA libraries' launch paths
# (which launch and lookup symbols PyTorch, cuBLAS and cuDNN import), then the interposer's
# tests, the GPU coverage test included (five models, inference and training). Results go to
# $OUT (default ./device-out): symbols.txt, preload-tests.log, coverage.json.
set -u
OUT=${OUT:-./device-out}
BIN=${BIN:-.carry}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
  nvidia-smi -L
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
  site=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
  for lib in "$site"/torch/lib/libtorch_cuda.so "$site"/nvidia/*/lib/libcudnn*.so* "$site"/nvidia/*/lib/libcublas*.so* \
    "$site"/nvidia/*/lib/libcudart.so*; do
    [ -f "$lib" ] || continue
    echo "== $lib"
    nm -D --with-symbol-versions "$lib" 2>/dev/null | grep -E ' U .*(dlsym|dlvsym|dlopen|cuGetProcAddress|Launch|cuGetExportTable)' | sort -u | head -40
  done
  echo "== libcudart exports"
  nm -D --with-symbol-versions --defined-only "$site"/nvidia/*/lib/libcudart.so.13* 2>/dev/null | grep -iE 'launch' | head -40
} >"$OUT/symbols.txt" 2>&1
ORION_COVERAGE_OUT="$OUT/coverage.json" timeout --kill-after=10 "${COVERAGE_TIMEOUT:-420}" \
  "$BIN/orion-preload-tests" --test-threads 1 2>&1 | tee "$OUT/preload-tests.log"

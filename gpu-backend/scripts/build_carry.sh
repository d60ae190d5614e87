#!/usr/bin/env bash
# Builds orion-real, the GPU test binary, the interposer (liborion_preload.so) and its test
# binary in release mode and copies them to .carry/ (ignored by git), for the GPU machine, which
# has no Rust toolchain: pass carry [".carry"] to the device tool and run the binaries as
# .carry/orion-real, .carry/orion-gpu-tests and .carry/orion-preload-tests there (the last finds
# .carry/liborion_preload.so next to itself).
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-target}
cargo build --release -p orion-gpu -p orion-preload
test_exe() { # test_exe PACKAGE TEST
  cargo test --release -p "$1" --test "$2" --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | grep "/$2-" | head -n1 | cut -d'"' -f4
}
mkdir -p .carry
cp "$T"/release/orion-real .carry/orion-real
cp "$(test_exe orion-gpu gpu)" .carry/orion-gpu-tests
cp "$T"/release/liborion_preload.so .carry/liborion_preload.so
cp "$(test_exe orion-preload preload)" .carry/orion-preload-tests
strip .carry/orion-real .carry/orion-gpu-tests .carry/orion-preload-tests 2>/dev/null || true
strip --strip-debug .carry/liborion_preload.so 2>/dev/null || true
cp gpu-backend/scripts/*.sh .carry/
ls -la .carry

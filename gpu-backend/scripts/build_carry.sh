#!/usr/bin/env bash
# Builds orion-real and the GPU test binary in release mode and copies them to .carry/ (ignored
# by git), for the GPU machine, which has no Rust toolchain: pass carry [".carry"] to the
# device tool and run the binaries as .carry/orion-real and .carry/orion-gpu-tests there.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p orion-gpu
test_bin=$(cargo test --release -p orion-gpu --test gpu --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | grep '/gpu-' | head -n1 | cut -d'"' -f4)
mkdir -p .carry
cp target/release/orion-real .carry/orion-real
cp "$test_bin" .carry/orion-gpu-tests
strip .carry/orion-real .carry/orion-gpu-tests 2>/dev/null || true
cp gpu-backend/scripts/*.sh .carry/
ls -la .carry

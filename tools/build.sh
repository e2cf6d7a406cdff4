#!/usr/bin/env bash
# Installs missing build dependencies, configures (CUDA on when nvcc is found) and builds into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build

#!/usr/bin/env bash
# Builds everything (installing missing packages) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"

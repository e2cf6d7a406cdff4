#!/usr/bin/env bash
# GPU tests in two halves, because the GPU machine has nvcc but none of our Debian packages:
#   tools/gpu_test.sh build [TARGET...]  (here)  builds (all, or the named targets) with CUDA
#                                          and stages the GPU test/bench binaries (all, or the
#                                          named ones: the device call carries 64 MiB at most)
#                                          in .gpu-bin/
#   tools/gpu_test.sh run                 (there) runs every staged test binary; logs to $OUT
# Device call: run(command="tools/gpu_test.sh run", carry=[".gpu-bin"]).
# GPU_BIN=.gpu-bin-NAME selects another staging folder (so parallel work does not collide).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${GPU_BIN:-.gpu-bin}"
case "${1:-}" in
  build)
    tools/setup.sh
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    shift
    cmake --build build-gpu ${1:+--target "$@"}
    rm -rf "$bin" && mkdir -p "$bin"
    for binary in build-gpu/dsv4 build-gpu/tests/dsv4_cuda_*_tests build-gpu/bench/dsv4_*_bench; do
      name="$(basename "$binary")"
      if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
      if [ -x "$binary" ]; then cp "$binary" "$bin/"; fi
    done
    du -sh "$bin"
    ;;
  run)
    logs="${OUT:-$bin/logs}"
    mkdir -p "$logs"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$logs/device.txt"
    status=0
    for tests in "$bin"/dsv4_cuda_*_tests; do
      "$tests" 2>&1 | tee "$logs/$(basename "$tests").txt" || status=1
    done
    exit $status
    ;;
  *)
    echo "usage: tools/gpu_test.sh build|run" >&2
    exit 2
    ;;
esac

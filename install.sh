#!/usr/bin/env bash
# Installs flowc and what it needs on a fresh Debian/Ubuntu machine.
#   bash install.sh          flowc itself (pip install .)
#   bash install.sh --test   flowc editable, with the test dependencies and the CUDA target's
#                            libraries (pip install -e ".[test,cuda]"): CI builds CUDA projects with nvcc
#   bash install.sh --cuda   flowc with the CUDA target's libraries, cuBLAS and NCCL (pip install ".[cuda]")
# Debian packages: CMake and g++ build the generated C++ projects, OpenBLAS is the CPU
# backend's BLAS, Graphviz's dot draws flowc viz's pictures, OpenMPI runs a model compiled for
# a device mesh as one process per rank (mpirun).
set -euo pipefail
cd "$(dirname "$0")"

need=()
for pkg in cmake g++ pkg-config libopenblas-dev graphviz openmpi-bin libopenmpi-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "install.sh: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

case "${1:-}" in
  --test) python3 -m pip install -q -e ".[test,cuda]" ;;
  --cuda) python3 -m pip install -q ".[cuda]" ;;
  *) python3 -m pip install -q . ;;
esac

# The CPU runtime and kernels, compiled once into flowc's cache ($FLOWC_CACHE_DIR/cpu-runtime, default
# ~/.cache/flowc/cpu-runtime): a model's compile then builds only its own code.
python3 -c "from flowc.codegen.cpu.build import prebuild_runtime as p; print(f'install.sh: CPU runtime built in {p():.1f} s')"

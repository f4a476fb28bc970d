#!/usr/bin/env bash
# Builds the CUDA backend's kernels (moe_kernels.cu) for both targets, from Maven's generate-resources:
# - always, with g++ and OpenMP: target/kernels-host/libmoe_kernels_host.so, the same sources for the CPU
#   (host_shim.h), which the tests' host device layer loads (CudaKernelsTest);
# - where nvcc exists (CUDA 13; the build machines and CI have it): the fatbin the jar carries, SASS for
#   sm_80 and sm_90 and PTX for newer chips, and each kernel's registers, shared memory and spills from
#   ptxas, printed and kept in target/kernels-resource-usage.txt. Without nvcc the build goes on, CPU only.
# usage: build-kernels.sh TARGET_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
target=$1
cuda=${CUDA_HOME:-/usr/local/cuda}
nvcc=$(command -v nvcc || echo "$cuda/bin/nvcc")
mkdir -p "$target/kernels-host" "$target/classes/io/moespark/ops/backend/cuda"

# cuda_bf16.h gives the host NVIDIA's own bf16 conversions; without a CUDA toolkit the host build has none.
include=$cuda/include
[[ -f $include/cuda_bf16.h ]] || { echo "build-kernels: $include/cuda_bf16.h not found (set CUDA_HOME to a CUDA 13 toolkit)" >&2; exit 1; }
command -v g++ > /dev/null || { echo "build-kernels: g++ not found (apt-get install g++): the kernels' host build needs it" >&2; exit 1; }
g++ -std=c++17 -O2 -fopenmp -fPIC -shared -DMOE_HOST -I"$include" -Wall -Wextra -Werror \
  -o "$target/kernels-host/libmoe_kernels_host.so" "$src/host_launch.cpp"

if [[ ! -x $nvcc ]]; then
  echo "build-kernels: no nvcc at $nvcc: the jar carries no GPU kernels (the CUDA backend cannot run from it)"
  exit 0
fi
"$nvcc" -fatbin -std=c++17 -Werror all-warnings \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
  -Xptxas -v -o "$target/classes/io/moespark/ops/backend/cuda/moe_kernels.fatbin" "$src/moe_kernels.cu" \
  2> "$target/kernels-ptxas.log"
# One line per kernel and chip: what each kernel costs a streaming multiprocessor.
awk '
  /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); k = substr($0, RSTART + 1, RLENGTH - 2); match($0, /sm_[0-9]+/); arch = substr($0, RSTART, RLENGTH) }
  /spill stores/ { split($0, f, ","); spills = f[2] " /" f[3]; gsub(/^ +/, "", spills) }
  /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15); smem = "0";
    if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11);
    printf "%-28s %-6s %3d registers %6d bytes shared %s\n", k, arch, regs, smem, spills }
' "$target/kernels-ptxas.log" | sort > "$target/kernels-resource-usage.txt"
echo "build-kernels: $(wc -l < "$target/kernels-resource-usage.txt") kernel builds (nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')):"
cat "$target/kernels-resource-usage.txt"

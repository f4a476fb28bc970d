// CUDA's execution model on the host, so that the kernels' own CUDA C sources run on a CPU in CI
// (the approach of hipCPU and Kokkos's OpenMP back end). Included instead of the CUDA headers when the
// kernels are compiled by g++ (-DMOE_HOST -fopenmp) into the test library the host device layer loads.
//
// - A block's threads are fibers (host_launch.cpp) on one OS thread, each with its own threadIdx; a block runs
//   its fibers in turn up to the next __syncthreads(), the barrier, which every thread of the block must
//   reach, as on a GPU (host_launch.cpp refuses a block whose threads part at a barrier).
// - Blocks are independent, as on a GPU: OpenMP threads run them in parallel, one block per OS thread at
//   a time, so __shared__ arrays are thread_local statics (one copy per running block).
// - Warp shuffles go through a per-block exchange array with barriers, so every thread of the block
//   must call them (the kernels call them outside divergent code).
#pragma once
#include <cmath>
#include <cstdint>
#include <omp.h>
#include <cuda_bf16.h>

struct moe_dim3 {
  unsigned x, y, z;
};

namespace moe_host {
extern thread_local moe_dim3 thread_idx, block_idx;
extern moe_dim3 block_dim, grid_dim;
extern thread_local double shuffle_exchange[1024];
// Leaves the running fiber for the block's scheduler until every thread of the block has arrived.
void sync_threads();
}  // namespace moe_host

#define threadIdx (moe_host::thread_idx)
#define blockIdx (moe_host::block_idx)
#define blockDim (moe_host::block_dim)
#define gridDim (moe_host::grid_dim)
// cuda_bf16.h's host_defines.h gives these a meaning for nvcc's host pass: here they are plain C++.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __syncthreads() moe_host::sync_threads()

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

// __shfl_xor_sync over a full warp of 32 lanes: lane i reads lane (i ^ mask)'s value, within its own warp
// since mask < 32. Every thread of the block must call it (it holds two block barriers).
inline double __shfl_xor_sync(unsigned, double v, int mask) {
  unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  __syncthreads();
  moe_host::shuffle_exchange[t] = v;
  __syncthreads();
  return moe_host::shuffle_exchange[t ^ mask];
}

// The host library's entry point: launches a kernel of moe_kernels.cu by name, over its grid, with its
// arguments packed as cuLaunchKernel takes them (an array of pointers to each argument's value), so the
// Java side packs a launch the same way for the GPU and for the host.
#include <cstring>
#include <mutex>
#include <type_traits>
#include <utility>

#include "moe_kernels.cu"

namespace moe_host {
thread_local moe_dim3 thread_idx;
moe_dim3 block_idx, block_dim, grid_dim;
double shuffle_exchange[1024];
}  // namespace moe_host

namespace {
template <typename F>
struct arity;
template <typename... A>
struct arity<void (*)(A...)> {
  static constexpr std::size_t value = sizeof...(A);
};

template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

template <auto Kernel>
void trampoline(void** args) {
  call(Kernel, args, std::make_index_sequence<arity<decltype(Kernel)>::value>{});
}

struct Entry {
  const char* name;
  void (*run)(void**);
};

#define MOE_ENTRY(k) {#k, &trampoline<k>},
const Entry kEntries[] = {MOE_KERNELS(MOE_ENTRY)};

// One launch at a time: __shared__ arrays are statics, as one stream orders a GPU's launches.
std::mutex launches;
}  // namespace

// 0: done; 1: no kernel of that name; 2: a block of 0 or more than 1024 threads; 3: OpenMP gave a team of
// another size than the block (the kernel did not run).
extern "C" int moe_host_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                               unsigned bz, void** args) {
  const Entry* entry = nullptr;
  for (const Entry& e : kEntries) {
    if (std::strcmp(e.name, name) == 0) {
      entry = &e;
    }
  }
  if (entry == nullptr) {
    return 1;
  }
  unsigned threads = bx * by * bz;
  if (threads == 0 || threads > 1024) {
    return 2;
  }
  std::lock_guard<std::mutex> lock(launches);
  omp_set_dynamic(0);
  moe_host::grid_dim = {gx, gy, gz};
  moe_host::block_dim = {bx, by, bz};
  for (unsigned z = 0; z < gz; z++) {
    for (unsigned y = 0; y < gy; y++) {
      for (unsigned x = 0; x < gx; x++) {
        moe_host::block_idx = {x, y, z};
        bool whole = true;
#pragma omp parallel num_threads(threads)
        {
          if (omp_get_num_threads() != (int)threads) {
#pragma omp single
            whole = false;
          } else {
            unsigned t = omp_get_thread_num();
            moe_host::thread_idx = {t % bx, (t / bx) % by, t / (bx * by)};
            entry->run(args);
          }
        }
        if (!whole) {
          return 3;
        }
      }
    }
  }
  return 0;
}

// cuBLAS's cublasSgemm on the host, with its exact argument semantics (column-major, op, leading
// dimensions) and the reference BLAS's argument checks, so that the CUDA backend's GEMM calls (the
// row-major to column-major mapping, the leading dimensions) are checked without a GPU. Returns 0, or the
// position of the first bad argument as the reference BLAS's xerbla numbers it (m = 3 ... ldc = 13).
// Sums in double in k order: one rounding per element of C.
extern "C" int moe_host_sgemm(int transa, int transb, int m, int n, int k, float alpha, const float* a, int lda,
                              const float* b, int ldb, float beta, float* c, int ldc) {
  int rowsA = transa ? k : m, rowsB = transb ? n : k;
  if (m < 0) return 3;
  if (n < 0) return 4;
  if (k < 0) return 5;
  if (lda < (rowsA > 1 ? rowsA : 1)) return 8;
  if (ldb < (rowsB > 1 ? rowsB : 1)) return 10;
  if (ldc < (m > 1 ? m : 1)) return 13;
  for (int j = 0; j < n; j++) {
    for (int i = 0; i < m; i++) {
      double acc = 0;
      for (int l = 0; l < k; l++) {
        double x = transa ? a[l + (long)i * lda] : a[i + (long)l * lda];
        double y = transb ? b[j + (long)l * ldb] : b[l + (long)j * ldb];
        acc += x * y;
      }
      float* out = c + i + (long)j * ldc;
      *out = beta == 0.0f ? (float)(alpha * acc) : (float)(alpha * acc + (double)beta * *out);
    }
  }
  return 0;
}

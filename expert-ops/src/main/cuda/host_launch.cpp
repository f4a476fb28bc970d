// The host library's entry point: launches a kernel of moe_kernels.cu by name, over its grid, with its
// arguments packed as cuLaunchKernel takes them (an array of pointers to each argument's value), so the
// Java side packs a launch the same way for the GPU and for the host.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "moe_kernels.cu"

namespace moe_host {
thread_local moe_dim3 thread_idx, block_idx;
moe_dim3 block_dim, grid_dim;
thread_local double shuffle_exchange[1024];
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

// One launch at a time, as one stream orders a GPU's launches.
std::mutex launches;

// A GPU thread of the running block: a fiber with its own stack. The kernels keep a few scalars and no
// arrays on their stacks.
constexpr std::size_t kStack = 64 * 1024;
struct Fiber {
  void* sp;  // its saved stack pointer while it is not running
  std::unique_ptr<char[]> stack{new char[kStack]};
  bool done;
};

// Per OS thread: the block it runs (its fibers, the scheduler's saved stack pointer, which fiber runs).
thread_local std::vector<Fiber> fibers;
thread_local void* scheduler;
thread_local unsigned current;
thread_local const Entry* kernel;
thread_local void** kernel_args;
}  // namespace

// Switches fibers: saves the callee-saved registers and the SSE/x87 control words on the current stack,
// stores the stack pointer in *save, and resumes the context saved at `to`. A fiber switch is the
// hottest thing here (a barrier of a 256-thread block is 512 of them), so it is a dozen instructions
// instead of swapcontext, which also makes a system call for the signal mask.
#if !defined(__x86_64__)
#error "the kernels' host build switches fibers with x86-64 code: build the tests on an x86-64 machine"
#endif
extern "C" void moe_fiber_switch(void** save, void* to) __attribute__((visibility("hidden")));
asm(R"(
  .text
  .globl moe_fiber_switch
  .hidden moe_fiber_switch
  .type moe_fiber_switch, @function
moe_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size moe_fiber_switch, .-moe_fiber_switch
)");

namespace {
[[noreturn]] void fiber_main() {
  kernel->run(kernel_args);
  fibers[current].done = true;
  void* unused;
  moe_fiber_switch(&unused, scheduler);  // never resumed
  __builtin_unreachable();
}

// A fresh fiber's stack, as moe_fiber_switch leaves one: the control words, six registers (zero) and
// fiber_main as the return address, placed so that fiber_main starts with the stack aligned as after a call.
void* fresh_stack(char* stack) {
  auto top = reinterpret_cast<std::uintptr_t>(stack + kStack) & ~std::uintptr_t(15);
  auto* sp = reinterpret_cast<std::uint64_t*>(top) - 2;  // sp + 8 is 16-aligned at fiber_main's entry
  *--sp = reinterpret_cast<std::uint64_t>(&fiber_main);
  for (int r = 0; r < 6; r++) {
    *--sp = 0;
  }
  --sp;
  std::uint32_t mxcsr;
  std::uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpucw, 2);
  return sp;
}

// Runs one block: its fibers in turn, each up to its next barrier or its end, until all have ended.
// 0: done; 4: part of the block ended while the rest waited at a barrier (a hang or worse on a GPU).
int run_block(const Entry* entry, void** args, unsigned threads, moe_dim3 block) {
  if (fibers.size() < threads) {
    fibers.resize(threads);
  }
  kernel = entry;
  kernel_args = args;
  moe_host::block_idx = block;
  for (unsigned i = 0; i < threads; i++) {
    fibers[i].sp = fresh_stack(fibers[i].stack.get());
    fibers[i].done = false;
  }
  const moe_dim3 d = moe_host::block_dim;
  for (;;) {
    unsigned waiting = 0, ended = 0;
    for (unsigned i = 0; i < threads; i++) {
      if (fibers[i].done) {
        continue;
      }
      current = i;
      moe_host::thread_idx = {i % d.x, (i / d.x) % d.y, i / (d.x * d.y)};
      moe_fiber_switch(&scheduler, fibers[i].sp);
      (fibers[i].done ? ended : waiting)++;
    }
    if (waiting == 0) {
      return 0;
    }
    if (ended > 0) {
      return 4;
    }
  }
}
}  // namespace

void moe_host::sync_threads() { moe_fiber_switch(&fibers[current].sp, scheduler); }

// 0: done; 1: no kernel of that name; 2: a block of 0 or more than 1024 threads; 4: a block's threads
// parted at a barrier.
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
  moe_host::grid_dim = {gx, gy, gz};
  moe_host::block_dim = {bx, by, bz};
  long blocks = (long)gx * gy * gz;
  int rc = 0;
#pragma omp parallel for schedule(static) reduction(max : rc)
  for (long b = 0; b < blocks; b++) {
    moe_dim3 block = {(unsigned)(b % gx), (unsigned)((b / gx) % gy), (unsigned)(b / ((long)gx * gy))};
    rc = std::max(rc, run_block(entry, args, threads, block));
  }
  return rc;
}

// cuBLAS's GEMM on the host, with its exact argument semantics (column-major, op, leading dimensions) and
// the reference BLAS's argument checks, so that the CUDA backend's GEMM calls (the row-major to
// column-major mapping, the leading dimensions) are checked without a GPU. Returns 0, or the position of
// the first bad argument as the reference BLAS's xerbla numbers it (m = 3 ... ldc = 13). Sums in double in
// k order: one rounding per element of C. The operands: inputs 0, F32 (cublasSgemm, TF32 off); 1, F32
// rounded to TF32 (10-bit mantissa, to nearest even) as tensor cores take them; 2, bf16 (a and b point to
// bf16 values, cublasGemmEx with CUDA_R_16BF inputs); C is F32 in all three.
namespace {
double operand(const void* m, long i, int inputs) {
  if (inputs == 2) {
    std::uint32_t bits = (std::uint32_t) static_cast<const std::uint16_t*>(m)[i] << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  float f = static_cast<const float*>(m)[i];
  if (inputs == 1 && std::isfinite(f)) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    bits = (bits + 0xfffu + ((bits >> 13) & 1u)) & ~0x1fffu;
    std::memcpy(&f, &bits, 4);
  }
  return f;
}
}  // namespace

extern "C" int moe_host_gemm(int inputs, int transa, int transb, int m, int n, int k, float alpha, const void* a,
                             int lda, const void* b, int ldb, float beta, float* c, int ldc) {
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
        double x = operand(a, transa ? l + (long)i * lda : i + (long)l * lda, inputs);
        double y = operand(b, transb ? j + (long)l * ldb : l + (long)j * ldb, inputs);
        acc += x * y;
      }
      float* out = c + i + (long)j * ldc;
      *out = beta == 0.0f ? (float)(alpha * acc) : (float)(alpha * acc + (double)beta * *out);
    }
  }
  return 0;
}

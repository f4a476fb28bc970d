// The CUDA backend's kernels. One source for both targets: nvcc compiles it into the fatbin the jar
// carries (SASS for sm_80 and sm_90, PTX for newer chips); g++ compiles it for the host with host_shim.h,
// so that CI runs these very kernels on the CPU against the CPU backend (CudaKernelsTest).
//
// Conventions: F32 tensors in c order; reductions that reach a result run in a fixed order (a block-wide
// tree over a fixed block size, then rows in order), never through floating-point atomics, so a run is
// bit-identical on the same GPU. Block-wide reductions assume blockDim.x == MOE_BLOCK.
#ifdef MOE_HOST
#include "host_shim.h"
#else
#include <cuda_bf16.h>
#endif

#define MOE_BLOCK 256

// Sum of v over the block's MOE_BLOCK threads in a fixed order, every thread gets it: a shared-memory tree
// down to 32 partial sums, then a warp butterfly (every warp runs it, so that no thread of the block skips
// the shuffles), and lane 0's sum, broadcast: the other lanes add in other orders.
__device__ __forceinline__ double block_sum(double v, double* buf) {
  unsigned t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
  for (unsigned s = MOE_BLOCK / 2; s >= 32; s >>= 1) {
    if (t < s) {
      buf[t] += buf[t + s];
    }
    __syncthreads();
  }
  double w = buf[t & 31];
  for (int lane = 16; lane > 0; lane >>= 1) {
    w += __shfl_xor_sync(0xffffffffu, w, lane);
  }
  __syncthreads();  // every thread has read its partial before buf[0] is overwritten
  if (t == 0) {
    buf[0] = w;
  }
  __syncthreads();
  double total = buf[0];
  __syncthreads();  // buf is reused by the next reduction
  return total;
}

__device__ __forceinline__ double block_max(double v, double* buf) {
  unsigned t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
  for (unsigned s = MOE_BLOCK / 2; s > 0; s >>= 1) {
    if (t < s && buf[t + s] > buf[t]) {
      buf[t] = buf[t + s];
    }
    __syncthreads();
  }
  double m = buf[0];
  __syncthreads();
  return m;
}

// ---- RMSNorm: one block per row ----

// y = x * rstd * w, rstd[r] = rsqrt(mean(x^2) + eps) (kept in double for the backward).
extern "C" __global__ void moe_rmsnorm_forward(const float* x, const float* w, float* y, double* rstd, int rows,
                                               int d, double eps) {
  __shared__ double buf[MOE_BLOCK];
  int r = blockIdx.x;
  if (r >= rows) {
    return;  // the whole block leaves together: no barrier is skipped by part of it
  }
  const float* xr = x + (long)r * d;
  double ss = 0;
  for (int c = threadIdx.x; c < d; c += MOE_BLOCK) {
    double v = xr[c];
    ss += v * v;
  }
  double s = 1.0 / sqrt(block_sum(ss, buf) / d + eps);
  if (threadIdx.x == 0) {
    rstd[r] = s;
  }
  for (int c = threadIdx.x; c < d; c += MOE_BLOCK) {
    y[(long)r * d + c] = (float)(xr[c] * s * w[c]);
  }
}

// dx += rstd * (g - xhat * mean(g * xhat)), g = dy * w; one block per row.
extern "C" __global__ void moe_rmsnorm_backward_dx(const float* x, const float* w, const double* rstd, const float* dy,
                                                   float* dx, int rows, int d) {
  __shared__ double buf[MOE_BLOCK];
  int r = blockIdx.x;
  if (r >= rows) {
    return;
  }
  long o = (long)r * d;
  double s = rstd[r], dot = 0;
  for (int c = threadIdx.x; c < d; c += MOE_BLOCK) {
    dot += (double)dy[o + c] * w[c] * x[o + c] * s;
  }
  double mean = block_sum(dot, buf) / d;
  for (int c = threadIdx.x; c < d; c += MOE_BLOCK) {
    double xhat = x[o + c] * s;
    dx[o + c] = (float)(dx[o + c] + s * (dy[o + c] * (double)w[c] - xhat * mean));
  }
}

// dw[c] += sum over rows, in row order, of dy * x * rstd: one thread per column, no atomics.
extern "C" __global__ void moe_rmsnorm_backward_dw(const float* x, const double* rstd, const float* dy, float* dw,
                                                   int rows, int d) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) {
    return;
  }
  float acc = dw[c];
  for (int r = 0; r < rows; r++) {
    acc = (float)(acc + (double)dy[(long)r * d + c] * x[(long)r * d + c] * rstd[r]);
  }
  dw[c] = acc;
}

// ---- activations: one thread per element ----

// a = silu(h1) * h3; saved = sigmoid(h1).
extern "C" __global__ void moe_swiglu_forward(const float* h1, const float* h3, float* a, float* saved, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) {
    return;
  }
  float s = 1.0f / (1.0f + expf(-h1[i]));
  saved[i] = s;
  a[i] = h1[i] * s * h3[i];
}

// dh3 = da * h1 * s; dh1 = da * h3 * s * (1 + h1 (1 - s)); overwrites.
extern "C" __global__ void moe_swiglu_backward(const float* h1, const float* h3, const float* saved, const float* da,
                                               float* dh1, float* dh3, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) {
    return;
  }
  float s = saved[i];
  dh3[i] = da[i] * h1[i] * s;
  dh1[i] = da[i] * h3[i] * s * (1.0f + h1[i] * (1.0f - s));
}

// a = gelu(h1), tanh approximation (PyTorch approximate="tanh"); double inside, as the CPU backend.
#define MOE_GELU_C 0.7978845608028654  // sqrt(2 / pi)
#define MOE_GELU_A 0.044715

extern "C" __global__ void moe_gelu_forward(const float* h1, float* a, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) {
    return;
  }
  double h = h1[i];
  a[i] = (float)(0.5 * h * (1 + tanh(MOE_GELU_C * (h + MOE_GELU_A * h * h * h))));
}

// dh1 = da * gelu'(h1); overwrites.
extern "C" __global__ void moe_gelu_backward(const float* h1, const float* da, float* dh1, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) {
    return;
  }
  double h = h1[i], t = tanh(MOE_GELU_C * (h + MOE_GELU_A * h * h * h));
  dh1[i] = (float)(da[i] * (0.5 * (1 + t) + 0.5 * h * (1 - t * t) * MOE_GELU_C * (1 + 3 * MOE_GELU_A * h * h)));
}

// ---- elementwise: one thread per element ----

extern "C" __global__ void moe_fill(float* t, float value, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    t[i] = value;
  }
}

// y += x.
extern "C" __global__ void moe_add(float* y, const float* x, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    y[i] += x[i];
  }
}

// t *= s, in F32 as the CPU backend's (ND4J's) scalar multiply.
extern "C" __global__ void moe_scale(float* t, float s, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    t[i] *= s;
  }
}

// ---- rows (layout transforms, embedding): row indices are int, a negative row means none ----

// dst[i] = src[srcRow[i]] (zeros for a negative row); one thread per element of dst.
extern "C" __global__ void moe_gather_rows(const float* src, const int* srcRow, int count, int d, float* dst) {
  long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (long)count * d) {
    return;
  }
  long i = e / d, c = e % d;
  int row = srcRow[i];
  dst[e] = row < 0 ? 0.0f : src[(long)row * d + c];
}

// dst[dstRow[i]] = scale[i] * src[srcRow[i]] where dstRow[i] >= 0; each destination at most once; scale
// may be null (1).
extern "C" __global__ void moe_scatter_rows(const float* src, const int* srcRow, const double* scale, const int* dstRow,
                                            int count, int d, float* dst) {
  long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (long)count * d) {
    return;
  }
  long i = e / d, c = e % d;
  int to = dstRow[i];
  if (to >= 0) {
    double g = scale == nullptr ? 1.0 : scale[i];
    dst[(long)to * d + c] = (float)(g * src[(long)srcRow[i] * d + c]);
  }
}

// dst[dstRow[i]] += scale[i] * src[srcRow[i]] for i in order (srcRow null: the identity; scale null: 1),
// skipping a negative row on either side. One thread per column walks the pairs in order, so repeated
// destinations add in index order: the same sums on every run, and the CPU backend's.
extern "C" __global__ void moe_scatter_add_rows(const float* src, const int* srcRow, const double* scale,
                                                const int* dstRow, int count, int d, float* dst) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) {
    return;
  }
  for (int i = 0; i < count; i++) {
    int from = srcRow == nullptr ? i : srcRow[i], to = dstRow[i];
    if (from < 0 || to < 0) {
      continue;
    }
    double g = scale == nullptr ? 1.0 : scale[i];
    long o = (long)to * d + c;
    dst[o] = (float)(dst[o] + g * src[(long)from * d + c]);
  }
}

// out[i] = a[aRow[i]] . b[bRow[i]] (0 where bRow[i] is negative); one block per i.
extern "C" __global__ void moe_row_dots(const float* a, const int* aRow, const float* b, const int* bRow, int count,
                                        int d, double* out) {
  __shared__ double buf[MOE_BLOCK];
  int i = blockIdx.x;
  if (i >= count) {
    return;
  }
  int q = bRow[i];
  if (q < 0) {
    if (threadIdx.x == 0) {
      out[i] = 0;
    }
    return;  // the whole block: q is the same for all its threads
  }
  const float* x = a + (long)aRow[i] * d;
  const float* y = b + (long)q * d;
  double acc = 0;
  for (int c = threadIdx.x; c < d; c += MOE_BLOCK) {
    acc += (double)x[c] * y[c];
  }
  acc = block_sum(acc, buf);
  if (threadIdx.x == 0) {
    out[i] = acc;
  }
}

// ---- the global norm: sums of squares ----

// partials[blockIdx] = sum of x^2 over the block's share of n elements (a grid fixed by n, so the same
// partials on every run); moe_sum_in_order then adds the partials of every part in order.
extern "C" __global__ void moe_sum_squares(const float* x, long n, double* partials) {
  __shared__ double buf[MOE_BLOCK];
  double acc = 0;
  for (long i = (long)blockIdx.x * MOE_BLOCK + threadIdx.x; i < n; i += (long)gridDim.x * MOE_BLOCK) {
    double v = x[i];
    acc += v * v;
  }
  acc = block_sum(acc, buf);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = acc;
  }
}

// ---- attention: the materialised algorithm of the CPU backend (scores and probabilities [B*H, T, T]) ----

// Row r of the scores (query i = r % t) becomes softmax(scale * scores[r, 0..i]), zeros after i; one
// block per row. Each exp is kept as F32, then divided by the double sum, as the CPU backend does.
extern "C" __global__ void moe_causal_softmax_forward(float* s, int rows, int t, double scale) {
  __shared__ double buf[MOE_BLOCK];
  int r = blockIdx.x;
  if (r >= rows) {
    return;
  }
  int i = r % t;
  float* row = s + (long)r * t;
  double m = -INFINITY;
  for (int j = threadIdx.x; j <= i; j += MOE_BLOCK) {
    m = fmax(m, row[j] * scale);
  }
  m = block_max(m, buf);
  double sum = 0;
  for (int j = threadIdx.x; j <= i; j += MOE_BLOCK) {
    double e = exp(row[j] * scale - m);
    row[j] = (float)e;
    sum += e;
  }
  sum = block_sum(sum, buf);
  for (int j = threadIdx.x; j < t; j += MOE_BLOCK) {
    row[j] = j <= i ? (float)(row[j] / sum) : 0.0f;
  }
}

// d = scale * p * (d - sum_j d p) over j <= i, zeros after i; one block per row.
extern "C" __global__ void moe_causal_softmax_backward(const float* p, float* d, int rows, int t, double scale) {
  __shared__ double buf[MOE_BLOCK];
  int r = blockIdx.x;
  if (r >= rows) {
    return;
  }
  int i = r % t;
  const float* pr = p + (long)r * t;
  float* dr = d + (long)r * t;
  double dot = 0;
  for (int j = threadIdx.x; j <= i; j += MOE_BLOCK) {
    dot += (double)dr[j] * pr[j];
  }
  dot = block_sum(dot, buf);
  for (int j = threadIdx.x; j < t; j += MOE_BLOCK) {
    dr[j] = j <= i ? (float)(scale * pr[j] * (dr[j] - dot)) : 0.0f;
  }
}

// Between rows [B*T, H*hd] and heads [B*H, T, hd], rotating by RoPE when cos/sin ([T, hd/2], double) are
// given: toRows 0 writes heads from rows, 1 writes rows from heads with the inverse rotation. One thread
// per element of a head row (with rotation, the first half's threads move both halves).
extern "C" __global__ void moe_rope_layout(float* rows, float* heads, int batch, int nHeads, int seq, int hd,
                                           const double* cos, const double* sin, int toRows) {
  long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (long)batch * nHeads * seq * hd) {
    return;
  }
  long i = e / hd;
  int c = e % hd, half = hd / 2, d = nHeads * hd;
  int t = i % seq, h = (i / seq) % nHeads, b = i / ((long)seq * nHeads);
  long ro = ((long)b * seq + t) * d + (long)h * hd, so = i * hd;
  if (cos == nullptr) {
    if (toRows) {
      rows[ro + c] = heads[so + c];
    } else {
      heads[so + c] = rows[ro + c];
    }
    return;
  }
  if (c >= half) {
    return;
  }
  double cs = cos[t * half + c], sn = sin[t * half + c];
  if (toRows) {
    double d1 = heads[so + c], d2 = heads[so + c + half];
    rows[ro + c] = (float)(d1 * cs + d2 * sn);
    rows[ro + c + half] = (float)(d2 * cs - d1 * sn);
  } else {
    double x1 = rows[ro + c], x2 = rows[ro + c + half];
    heads[so + c] = (float)(x1 * cs - x2 * sn);
    heads[so + c + half] = (float)(x1 * sn + x2 * cs);
  }
}

// ---- cross-entropy: one block per row ----

// rowLoss[r] = logsumexp(z_r) - z_r[y_r]; with globalCount > 0, z_r = (softmax(z_r) - onehot(y_r)) / globalCount.
extern "C" __global__ void moe_cross_entropy_rows(float* z, const int* targets, double* rowLoss, int rows, int v,
                                                  long globalCount) {
  __shared__ double buf[MOE_BLOCK];
  int r = blockIdx.x;
  if (r >= rows) {
    return;
  }
  float* zr = z + (long)r * v;
  double m = -INFINITY;
  for (int c = threadIdx.x; c < v; c += MOE_BLOCK) {
    m = fmax(m, (double)zr[c]);
  }
  m = block_max(m, buf);
  double sum = 0;
  for (int c = threadIdx.x; c < v; c += MOE_BLOCK) {
    sum += exp(zr[c] - m);
  }
  sum = block_sum(sum, buf);
  int y = targets[r];
  double target = zr[y];  // read by every thread before any thread overwrites the row
  __syncthreads();
  if (threadIdx.x == 0) {
    rowLoss[r] = m + log(sum) - target;
  }
  if (globalCount > 0) {
    double norm = 1.0 / (sum * globalCount);
    for (int c = threadIdx.x; c < v; c += MOE_BLOCK) {
      double p = exp(zr[c] - m) * norm;
      zr[c] = (float)(c == y ? p - 1.0 / globalCount : p);
    }
  }
}

// out[index] = sum of rowLoss in row order: one thread, so the sum is the same on every run.
extern "C" __global__ void moe_sum_in_order(const double* values, int n, double* out, int index) {
  if (blockIdx.x != 0 || threadIdx.x != 0) {
    return;
  }
  double s = 0;
  for (int i = 0; i < n; i++) {
    s += values[i];
  }
  out[index] = s;
}

// ---- routing: double arithmetic, one thread per token (or assignment), each in the CPU backend's order ----

// probs [t, e] = softmax of the router logits, lse [t] their logsumexp.
extern "C" __global__ void moe_router_softmax(const float* logits, double* probs, double* lse, int t, int e) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= t) {
    return;
  }
  const float* l = logits + (long)i * e;
  double m = -INFINITY;
  for (int j = 0; j < e; j++) {
    m = fmax(m, (double)l[j]);
  }
  double sum = 0;
  for (int j = 0; j < e; j++) {
    sum += exp(l[j] - m);
  }
  for (int j = 0; j < e; j++) {
    probs[(long)i * e + j] = exp(l[j] - m) / sum;
  }
  lse[i] = m + log(sum);
}

// Token i's k choices of highest probs + bias (bias may be null), in the order (score descending, expert
// ascending) without a per-token array: each choice is the best expert after the previous one in that
// order. Gates are the probabilities, divided by their sum when normalize.
extern "C" __global__ void moe_route_topk(const double* probs, const double* bias, int t, int e, int k, int normalize,
                                          int* token, int* expert, double* gate) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= t) {
    return;
  }
  const double* p = probs + (long)i * e;
  double prevScore = INFINITY, sum = 0;
  int prev = -1;
  for (int s = 0; s < k; s++) {
    int best = -1;
    double bestScore = -INFINITY;
    for (int j = 0; j < e; j++) {
      double score = p[j] + (bias == nullptr ? 0.0 : bias[j]);
      bool after = score < prevScore || (score == prevScore && j > prev);
      if (after && (best < 0 || score > bestScore)) {
        best = j;
        bestScore = score;
      }
    }
    prev = best;
    prevScore = bestScore;
    long a = (long)i * k + s;
    token[a] = i;
    expert[a] = best;
    gate[a] = p[best];
    sum += p[best];
  }
  if (normalize) {
    for (int s = 0; s < k; s++) {
      gate[(long)i * k + s] /= sum;
    }
  }
}

// Expert choice, step 1: chosen[i, j] = 1 when token i is among expert j's `capacity` tokens of highest
// probability (earlier token on ties): its rank in column j is below capacity. One thread per (i, j).
extern "C" __global__ void moe_expert_choice_mark(const double* probs, int t, int e, int capacity, int* chosen) {
  long x = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long)t * e) {
    return;
  }
  int i = x / e, j = x % e;
  double v = probs[x];
  int rank = 0;
  for (int u = 0; u < t && rank < capacity; u++) {
    double w = probs[(long)u * e + j];
    rank += (w > v || (w == v && u < i)) ? 1 : 0;
  }
  chosen[x] = rank < capacity ? 1 : 0;
}

// Expert choice, step 2: the chosen (token, expert) pairs listed in row-major order. One thread.
extern "C" __global__ void moe_expert_choice_list(const double* probs, const int* chosen, int t, int e, int* token,
                                                  int* expert, double* gate) {
  if (blockIdx.x != 0 || threadIdx.x != 0) {
    return;
  }
  long a = 0;
  for (long x = 0; x < (long)t * e; x++) {
    if (chosen[x]) {
      token[a] = x / e;
      expert[a] = x % e;
      gate[a] = probs[x];
      a++;
    }
  }
}

// Hash routing: token i to the murmur3 finaliser of its id mod experts, gate 1 (Router.hashExpert).
extern "C" __global__ void moe_route_hash(const int* ids, int t, int experts, int* token, int* expert, double* gate) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= t) {
    return;
  }
  unsigned h = (unsigned)ids[i];
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  token[i] = i;
  expert[i] = (int)(h % (unsigned)experts);
  gate[i] = 1.0;
}

// order[rank] = the assignment of that rank by gate, descending, earlier first on ties (a stable sort):
// each thread counts the assignments before its own. One thread per assignment.
extern "C" __global__ void moe_rank_by_gate(const double* gate, int a, int* order) {
  int x = blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= a) {
    return;
  }
  double g = gate[x];
  int rank = 0;
  for (int y = 0; y < a; y++) {
    rank += (gate[y] > g || (gate[y] == g && y < x)) ? 1 : 0;
  }
  order[rank] = x;
}

// The dispatch plan of Backend.planDispatch in one thread, in the CPU backend's order: the statistics
// (assigned, kept per expert, probability sums per expert over tokens in order, sum of lse^2), the slots
// (destination-major by expertOrder, then assignment order; -1 when dropped) and the send rows' tokens.
// order: the assignments by priority (null: assignment order); scratch: a + 3e ints.
extern "C" __global__ void moe_plan_dispatch(const int* token, const int* expert, const int* order, const double* probs,
                                             const double* lse, int t, int a, int e, int capacity,
                                             const int* expertOrder, int* slot, int* sendToken, double* stats,
                                             int* scratch) {
  if (blockIdx.x != 0 || threadIdx.x != 0) {
    return;
  }
  int *keep = scratch, *assigned = scratch + a, *kept = assigned + e, *cursor = kept + e;
  for (int j = 0; j < e; j++) {
    assigned[j] = 0;
    kept[j] = 0;
  }
  for (int i = 0; i < a; i++) {
    keep[i] = 0;
  }
  for (int i = 0; i < a; i++) {
    assigned[expert[i]]++;
    int as = order == nullptr ? i : order[i];
    if (kept[expert[as]] < capacity) {
      keep[as] = 1;
      kept[expert[as]]++;
    }
  }
  int row = 0;
  for (int j = 0; j < e; j++) {
    int x = expertOrder[j];
    cursor[x] = row;
    row += kept[x];
  }
  for (int i = 0; i < a; i++) {
    if (keep[i]) {
      int s = cursor[expert[i]]++;
      slot[i] = s;
      sendToken[s] = token[i];
    } else {
      slot[i] = -1;
    }
  }
  for (int j = 0; j < e; j++) {
    stats[j] = assigned[j];
    stats[e + j] = kept[j];
    stats[2 * e + j] = 0;
  }
  stats[3 * e] = 0;
  if (probs != nullptr) {
    for (int i = 0; i < t; i++) {
      for (int j = 0; j < e; j++) {
        stats[2 * e + j] += probs[(long)i * e + j];
      }
      stats[3 * e] += lse[i] * lse[i];
    }
  }
}

// The router's backward, step 1: dp [t, e] (zeroed by the caller) from the gates. With k > 0 (normalised
// top-k) one thread per token, through the renormalisation; else one thread per assignment (each (token,
// expert) pair is assigned at most once, so no two threads write one element).
extern "C" __global__ void moe_router_backward_gates(const int* token, const int* expert, const double* gate,
                                                     const double* dGate, const double* probs, int t, int e, int a,
                                                     int k, double* dp) {
  int x = blockIdx.x * blockDim.x + threadIdx.x;
  if (k > 0) {
    if (x >= t) {
      return;
    }
    double s = 0, dot = 0;
    for (int j = 0; j < k; j++) {
      long as = (long)x * k + j;
      s += probs[(long)x * e + expert[as]];
      dot += dGate[as] * gate[as];
    }
    for (int j = 0; j < k; j++) {
      long as = (long)x * k + j;
      dp[(long)x * e + expert[as]] += (dGate[as] - dot) / s;
    }
  } else if (x < a) {
    dp[(long)token[x] * e + expert[x]] += dGate[x];
  }
}

// Step 2, one thread per token: the aux gradient (aux may be null), then through the softmax, plus the
// z-loss: dLogits = p (dp - dp.p) + 2 zScale lse p.
extern "C" __global__ void moe_router_backward_softmax(const double* probs, const double* lse, const double* aux,
                                                       double zScale, int t, int e, double* dp, float* dLogits) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= t) {
    return;
  }
  double dot = 0;
  for (int j = 0; j < e; j++) {
    long x = (long)i * e + j;
    if (aux != nullptr) {
      dp[x] += aux[j];
    }
    dot += dp[x] * probs[x];
  }
  for (int j = 0; j < e; j++) {
    long x = (long)i * e + j;
    dLogits[x] = (float)(probs[x] * (dp[x] - dot) + 2 * zScale * lse[i] * probs[x]);
  }
}

extern "C" __global__ void moe_fill_f64(double* t, double value, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    t[i] = value;
  }
}

// ---- optimizer: one thread per element ----

// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w = w * decay - stepSize * m / (sqrt(v) / bc2Sqrt + eps).
extern "C" __global__ void moe_adamw(float* w, const float* g, float* m, float* v, long n, double beta1, double beta2,
                                     double eps, double decay, double stepSize, double bc2Sqrt) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) {
    return;
  }
  double gi = g[i];
  double mi = beta1 * m[i] + (1 - beta1) * gi;
  double vi = beta2 * v[i] + (1 - beta2) * gi * gi;
  m[i] = (float)mi;
  v[i] = (float)vi;
  w[i] = (float)(w[i] * decay - stepSize * mi / (sqrt(vi) / bc2Sqrt + eps));
}

// ---- precision ----

// dst = src rounded to bf16 (round to nearest even, NVIDIA's conversion), as bf16 bits.
extern "C" __global__ void moe_to_bf16(const float* src, __nv_bfloat16* dst, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    dst[i] = __float2bfloat16(src[i]);
  }
}

extern "C" __global__ void moe_from_bf16(const __nv_bfloat16* src, float* dst, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    dst[i] = __bfloat162float(src[i]);
  }
}

// F32 <-> F64, elementwise (copies between the model's F32 and the routing's F64 tensors).
extern "C" __global__ void moe_f32_to_f64(const float* src, double* dst, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    dst[i] = src[i];
  }
}

// Rounded to nearest, as Java's and ND4J's casts.
extern "C" __global__ void moe_f64_to_f32(const double* src, float* dst, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    dst[i] = (float)src[i];
  }
}

// The kernels the host library registers by name (host_launch.cpp), as cuModuleGetFunction finds them.
#define MOE_KERNELS(X)        \
  X(moe_rmsnorm_forward)      \
  X(moe_rmsnorm_backward_dx)  \
  X(moe_rmsnorm_backward_dw)  \
  X(moe_swiglu_forward)       \
  X(moe_swiglu_backward)      \
  X(moe_cross_entropy_rows)   \
  X(moe_sum_in_order)         \
  X(moe_adamw)                \
  X(moe_to_bf16)              \
  X(moe_from_bf16)            \
  X(moe_gelu_forward)         \
  X(moe_gelu_backward)        \
  X(moe_fill)                 \
  X(moe_add)                  \
  X(moe_scale)                \
  X(moe_gather_rows)          \
  X(moe_scatter_rows)         \
  X(moe_scatter_add_rows)     \
  X(moe_row_dots)             \
  X(moe_sum_squares)          \
  X(moe_causal_softmax_forward) \
  X(moe_causal_softmax_backward) \
  X(moe_rope_layout)          \
  X(moe_router_softmax)       \
  X(moe_route_topk)           \
  X(moe_expert_choice_mark)   \
  X(moe_expert_choice_list)   \
  X(moe_route_hash)           \
  X(moe_rank_by_gate)         \
  X(moe_plan_dispatch)        \
  X(moe_router_backward_gates) \
  X(moe_router_backward_softmax) \
  X(moe_fill_f64)             \
  X(moe_f32_to_f64)           \
  X(moe_f64_to_f32)

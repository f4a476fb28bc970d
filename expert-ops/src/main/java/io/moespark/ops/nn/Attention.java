package io.moespark.ops.nn;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * Causal multi-head self-attention with RoPE on q and k: y = Wo · concat_h softmax(q_h k_h^T / sqrt(hd)
 * + mask) v_{kv(h)}. Rows of x are B sequences of T positions, [B*T, D]. With grouped-query attention
 * (KV key/value heads, KV dividing H; 1: multi-query) Wk and Wv are [KV*hd, D] and query head h reads
 * key/value head kv(h) = h / (H / KV), as transformers' repeat_kv does: the KV heads are gathered to H
 * before the backend's attention and the gradients of each group summed back (a scatter-add, in order).
 * The projections and the head layout are here; the attention itself is the backend's ({@link
 * Backend#attentionForward}: the CPU materialises the probabilities, a device may run a fused kernel). One
 * instance per layer holds the activations of the step in flight for its backward, in buffers reused from
 * step to step.
 */
public final class Attention {
  private final int heads;
  private final int kvHeads;
  private final Rope rope;
  private final Rope layout = Rope.layoutOnly();
  private int batch;
  private int seq;
  private Tensor x;
  private Tensor q;
  private Tensor k;
  private Tensor v;
  private Tensor qh;
  private Tensor kh;
  private Tensor vh;
  /** What the backend's attention keeps for the backward ({@link Backend#attentionStateShape}). */
  private Tensor state;
  private Tensor ctx;
  private Tensor merged;
  // Backward scratch.
  private Tensor dMerged;
  private Tensor dCtx;
  private Tensor dqh;
  private Tensor dkh;
  private Tensor dvh;
  private Tensor dRows;
  // Grouped-query attention: the KV heads as computed, the KV head of each (sequence, query head), the
  // gradients of the KV heads.
  private Tensor kvK;
  private Tensor kvV;
  private Tensor kvOf;
  private Tensor dkvK;
  private Tensor dkvV;
  private Tensor dkvRows;
  /** [N, 1] of 1s: the q/k/v biases' rank-1 GEMMs. */
  private Tensor ones;
  // Generation after the prompt: one query row per head against the cached positions, backed by buffers
  // of the cache's capacity whose first positions are viewed each step.
  private Tensor scores;
  private Tensor probs;
  private Tensor probsF64;
  private Tensor lse;

  public Attention(int heads, int kvHeads, double ropeTheta) {
    this(heads, kvHeads, new Rope(ropeTheta));
  }

  /** With a RoPE of its own (scaled frequencies). */
  public Attention(int heads, int kvHeads, Rope rope) {
    this.heads = heads;
    this.kvHeads = kvHeads;
    this.rope = rope;
  }

  private boolean grouped() {
    return kvHeads != heads;
  }

  /** y[B*T, D] = attention(x); Wq and Wo are [D, D], Wk and Wv [KV*hd, D]. */
  public void forward(Tensor x, int batch, int seq, Tensor wq, Tensor wk, Tensor wv, Tensor wo, Tensor y) {
    forward(x, batch, seq, wq, wk, wv, wo, null, y);
  }

  /** As above, with the q/k/v projections' biases ({@code biases} = {bq, bk, bv}, or null: none). */
  public void forward(Tensor x, int batch, int seq, Tensor wq, Tensor wk, Tensor wv, Tensor wo, Tensor[] biases,
      Tensor y) {
    this.x = x;
    this.batch = batch;
    this.seq = seq;
    Backend be = x.backend();
    DType type = x.dtype();
    long n = x.size(0), d = x.size(1), hd = d / heads, bh = (long) batch * heads, dkv = kvHeads * hd;
    q = be.ensure(q, type, n, d);
    k = be.ensure(k, type, n, dkv);
    v = be.ensure(v, type, n, dkv);
    merged = be.ensure(merged, type, n, d);
    qh = be.ensure(qh, type, bh, seq, hd);
    kh = be.ensure(kh, type, bh, seq, hd);
    vh = be.ensure(vh, type, bh, seq, hd);
    ctx = be.ensure(ctx, type, bh, seq, hd);
    state = be.ensure(state, type, be.attentionStateShape(bh, seq));
    Linear.forward(x, wq, q);
    Linear.forward(x, wk, k);
    Linear.forward(x, wv, v);
    if (biases != null) {
      if (ones == null || ones.size(0) != n || ones.dtype() != type) {
        ones = be.ensure(ones, type, n, 1).fill(1);
      }
      Linear.addBias(ones, biases[0], q);
      Linear.addBias(ones, biases[1], k);
      Linear.addBias(ones, biases[2], v);
    }
    rope.forward(q, batch, heads, qh);
    if (grouped()) {
      long bkv = (long) batch * kvHeads;
      kvK = be.ensure(kvK, type, bkv, seq, hd);
      kvV = be.ensure(kvV, type, bkv, seq, hd);
      rope.forward(k, batch, kvHeads, kvK);
      layout.forward(v, batch, kvHeads, kvV);
      if (kvOf == null || kvOf.length() != bh) { // once per batch shape: not a per-step host copy
        int[] of = new int[(int) bh]; // (b, h) reads KV head b * KV + h / (H / KV)
        for (int i = 0; i < of.length; i++) {
          of[i] = (i / heads) * kvHeads + (i % heads) / (heads / kvHeads);
        }
        kvOf = be.ensure(kvOf, DType.I32, bh);
        be.fromInts(of, kvOf);
      }
      be.gather(rowsOf(kvK), kvOf, (int) bh, rowsOf(kh));
      be.gather(rowsOf(kvV), kvOf, (int) bh, rowsOf(vh));
    } else {
      rope.forward(k, batch, heads, kh);
      layout.forward(v, batch, heads, vh);
    }
    be.attentionForward(qh, kh, vh, ctx, state, 1.0 / Math.sqrt(hd));
    layout.backward(ctx, batch, heads, merged);
    Linear.forward(merged, wo, y);
  }

  /**
   * Generation: y[c, D] = the attention of one sequence's next c positions, at {@code cache.length()} on,
   * over every position so far; their keys and values join the cache's layer {@code layer} (the caller
   * advances it after the last layer). The prompt (an empty cache) runs the training forward, causal over
   * its positions; after it, one position at a time: per key/value head, its query heads' scores against
   * the cached keys (one GEMM), their softmax (the backend's row softmax, F64) and the weighted values (one
   * GEMM).
   */
  public void forwardCached(Tensor x, KvCache cache, int layer, Tensor wq, Tensor wk, Tensor wv, Tensor wo,
      Tensor[] biases, Tensor y) {
    int c = (int) x.size(0), start = cache.length();
    if (start + c > cache.capacity()) {
      throw new IllegalArgumentException("positions " + start + ".." + (start + c - 1) + " exceed the KV cache of "
          + cache.capacity());
    }
    if (start == 0) {
      forward(x, 1, c, wq, wk, wv, wo, biases, y);
      cache.store(grouped() ? kvK : kh, cache.keys(layer));
      cache.store(grouped() ? kvV : vh, cache.values(layer));
      return;
    }
    if (c != 1) {
      throw new IllegalArgumentException("after the prompt, positions are generated one at a time (got " + c + ")");
    }
    Backend be = x.backend();
    DType type = x.dtype();
    long d = x.size(1), hd = d / heads, dkv = kvHeads * hd, group = heads / kvHeads, cap = cache.capacity();
    int len = start + 1;
    q = be.ensure(q, type, 1, d);
    k = be.ensure(k, type, 1, dkv);
    v = be.ensure(v, type, 1, dkv);
    qh = be.ensure(qh, type, heads, 1, hd);
    kvK = be.ensure(kvK, type, kvHeads, 1, hd);
    kvV = be.ensure(kvV, type, kvHeads, 1, hd);
    ctx = be.ensure(ctx, type, heads, 1, hd);
    merged = be.ensure(merged, type, 1, d);
    scores = be.ensure(scores, type, group * cap);
    probs = be.ensure(probs, type, group * cap);
    probsF64 = be.ensure(probsF64, DType.F64, group * cap);
    lse = be.ensure(lse, DType.F64, group);
    Linear.forward(x, wq, q);
    Linear.forward(x, wk, k);
    Linear.forward(x, wv, v);
    if (biases != null) {
      ones = be.ensure(ones, type, 1, 1).fill(1);
      Linear.addBias(ones, biases[0], q);
      Linear.addBias(ones, biases[1], k);
      Linear.addBias(ones, biases[2], v);
    }
    rope.forwardAt(q, start, heads, qh);
    rope.forwardAt(k, start, kvHeads, kvK);
    layout.forward(v, 1, kvHeads, kvV);
    cache.store(kvK, cache.keys(layer));
    cache.store(kvV, cache.values(layer));
    Tensor s = be.view(scores, 0, group, len), p = be.view(probs, 0, group, len);
    Tensor p64 = be.view(probsF64, 0, group, len);
    for (long g = 0; g < kvHeads; g++) { // query heads g*group .. (g+1)*group-1 read key/value head g
      Tensor keys = be.view(cache.keys(layer), g * cap * hd, len, hd);
      Tensor values = be.view(cache.values(layer), g * cap * hd, len, hd);
      be.gemm(be.view(qh, g * group * hd, group, hd), keys, s, false, true, 0);
      be.scale(s, 1.0 / Math.sqrt(hd));
      be.routerSoftmax(s, p64, lse);
      be.copy(p64, p);
      be.gemm(p, values, be.view(ctx, g * group * hd, group, hd), false, false, 0);
    }
    layout.backward(ctx, 1, heads, merged);
    Linear.forward(merged, wo, y);
  }

  /** dx += gradient of the last forward's input; dW* += weight gradients. */
  public void backward(Tensor dy, Tensor wq, Tensor wk, Tensor wv, Tensor wo,
      Tensor dx, Tensor dwq, Tensor dwk, Tensor dwv, Tensor dwo) {
    backward(dy, wq, wk, wv, wo, dx, dwq, dwk, dwv, dwo, null);
  }

  /** As above; {@code dBiases} = {dbq, dbk, dbv} += the biases' gradients (null when the forward had none). */
  public void backward(Tensor dy, Tensor wq, Tensor wk, Tensor wv, Tensor wo,
      Tensor dx, Tensor dwq, Tensor dwk, Tensor dwv, Tensor dwo, Tensor[] dBiases) {
    Backend be = x.backend();
    long n = x.size(0), d = x.size(1), hd = d / heads, bh = (long) batch * heads, dkv = kvHeads * hd;
    DType type = x.dtype();
    dMerged = be.ensure(dMerged, type, n, d);
    dRows = be.ensure(dRows, type, n, d);
    dCtx = be.ensure(dCtx, type, bh, seq, hd);
    dqh = be.ensure(dqh, type, bh, seq, hd);
    dkh = be.ensure(dkh, type, bh, seq, hd);
    dvh = be.ensure(dvh, type, bh, seq, hd);
    Linear.backward(merged, wo, dy, dMerged, dwo, false);
    layout.forward(dMerged, batch, heads, dCtx);
    be.attentionBackward(qh, kh, vh, state, dCtx, dqh, dkh, dvh, 1.0 / Math.sqrt(hd));
    rope.backward(dqh, batch, heads, dRows);
    Linear.backward(x, wq, dRows, dx, dwq, true);
    biasBackward(dBiases, 0, dRows);
    // Grouped-query attention: the query heads' key/value gradients summed into their KV heads first.
    Tensor dk = dkh, dv = dvh, rows = dRows;
    int kvh = heads;
    if (grouped()) {
      long bkv = (long) batch * kvHeads;
      dk = dkvK = be.ensure(dkvK, type, bkv, seq, hd);
      dv = dkvV = be.ensure(dkvV, type, bkv, seq, hd);
      rows = dkvRows = be.ensure(dkvRows, type, n, dkv);
      kvh = kvHeads;
      dk.fill(0);
      dv.fill(0);
      be.scatterAdd(rowsOf(dkh), null, null, kvOf, (int) bh, rowsOf(dk)); // each group's sum, in head order
      be.scatterAdd(rowsOf(dvh), null, null, kvOf, (int) bh, rowsOf(dv));
    }
    rope.backward(dk, batch, kvh, rows);
    Linear.backward(x, wk, rows, dx, dwk, true);
    biasBackward(dBiases, 1, rows);
    layout.backward(dv, batch, kvh, rows);
    Linear.backward(x, wv, rows, dx, dwv, true);
    biasBackward(dBiases, 2, rows);
  }

  private void biasBackward(Tensor[] dBiases, int which, Tensor dRows) {
    if (dBiases != null) {
      Linear.biasBackward(ones, dRows, dBiases[which]);
    }
  }

  /** Heads [B*H, T, hd] as a matrix of one row per (sequence, head), for the row gathers. */
  private static Tensor rowsOf(Tensor heads) {
    return heads.backend().view(heads, 0, heads.size(0), heads.size(1) * heads.size(2));
  }
}

package io.moespark.ops.nn;

import io.moespark.ops.tensor.Buffers;
import io.moespark.ops.tensor.Parallel;
import io.moespark.ops.tensor.Raw;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Causal multi-head self-attention with RoPE on q and k: y = Wo · concat_h softmax(q_h k_h^T / sqrt(hd)
 * + mask) v_h. Rows of x are B sequences of T positions, [B*T, D]. One instance per layer holds the
 * activations of the step in flight for its backward, in buffers reused from step to step.
 */
public final class Attention {
  private final int heads;
  private final Rope rope;
  private final Rope layout = Rope.layoutOnly();
  private int batch;
  private int seq;
  private INDArray x;
  private INDArray q;
  private INDArray k;
  private INDArray v;
  private INDArray qh;
  private INDArray kh;
  private INDArray vh;
  private INDArray probs;
  private INDArray ctx;
  private INDArray merged;
  // Backward scratch.
  private INDArray dMerged;
  private INDArray dCtx;
  private INDArray dProbs;
  private INDArray dqh;
  private INDArray dkh;
  private INDArray dvh;
  private INDArray dRows;

  public Attention(int heads, double ropeTheta) {
    this.heads = heads;
    this.rope = new Rope(ropeTheta);
  }

  /** y[B*T, D] = attention(x); W* are [D, D]. */
  public void forward(INDArray x, int batch, int seq, INDArray wq, INDArray wk, INDArray wv, INDArray wo, INDArray y) {
    this.x = x;
    this.batch = batch;
    this.seq = seq;
    DataType type = x.dataType();
    long n = x.size(0), d = x.size(1), hd = d / heads, bh = (long) batch * heads;
    q = Buffers.ensure(q, type, n, d);
    k = Buffers.ensure(k, type, n, d);
    v = Buffers.ensure(v, type, n, d);
    merged = Buffers.ensure(merged, type, n, d);
    qh = Buffers.ensure(qh, type, bh, seq, hd);
    kh = Buffers.ensure(kh, type, bh, seq, hd);
    vh = Buffers.ensure(vh, type, bh, seq, hd);
    ctx = Buffers.ensure(ctx, type, bh, seq, hd);
    probs = Buffers.ensure(probs, type, bh, seq, seq);
    Linear.forward(x, wq, q);
    Linear.forward(x, wk, k);
    Linear.forward(x, wv, v);
    rope.forward(q, batch, heads, qh);
    rope.forward(k, batch, heads, kh);
    layout.forward(v, batch, heads, vh);
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(qh.slice(i), kh.slice(i), probs.slice(i), false, true, 0.0);
    }
    causalSoftmax(probs, 1.0 / Math.sqrt(hd));
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(probs.slice(i), vh.slice(i), ctx.slice(i), false, false, 0.0);
    }
    layout.backward(ctx, batch, heads, merged);
    Linear.forward(merged, wo, y);
  }

  /** dx += gradient of the last forward's input; dW* += weight gradients. */
  public void backward(INDArray dy, INDArray wq, INDArray wk, INDArray wv, INDArray wo,
      INDArray dx, INDArray dwq, INDArray dwk, INDArray dwv, INDArray dwo) {
    long n = x.size(0), d = x.size(1), hd = d / heads, bh = (long) batch * heads;
    DataType type = x.dataType();
    dMerged = Buffers.ensure(dMerged, type, n, d);
    dRows = Buffers.ensure(dRows, type, n, d);
    dCtx = Buffers.ensure(dCtx, type, bh, seq, hd);
    dqh = Buffers.ensure(dqh, type, bh, seq, hd);
    dkh = Buffers.ensure(dkh, type, bh, seq, hd);
    dvh = Buffers.ensure(dvh, type, bh, seq, hd);
    dProbs = Buffers.ensure(dProbs, type, bh, seq, seq);
    Linear.backward(merged, wo, dy, dMerged, dwo, false);
    layout.forward(dMerged, batch, heads, dCtx);
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(dCtx.slice(i), vh.slice(i), dProbs.slice(i), false, true, 0.0);
      Buffers.gemm(probs.slice(i), dCtx.slice(i), dvh.slice(i), true, false, 0.0);
    }
    causalSoftmaxBackward(probs, dProbs, 1.0 / Math.sqrt(hd));
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(dProbs.slice(i), kh.slice(i), dqh.slice(i), false, false, 0.0);
      Buffers.gemm(dProbs.slice(i), qh.slice(i), dkh.slice(i), true, false, 0.0);
    }
    rope.backward(dqh, batch, heads, dRows);
    Linear.backward(x, wq, dRows, dx, dwq, true);
    rope.backward(dkh, batch, heads, dRows);
    Linear.backward(x, wk, dRows, dx, dwk, true);
    layout.backward(dvh, batch, heads, dRows);
    Linear.backward(x, wv, dRows, dx, dwv, true);
  }

  /**
   * In place over [N, T, T] scores: row i becomes softmax(scale * s[i, 0..i]) and 0 above the diagonal
   * (the causal mask), in one pass per row.
   */
  static void causalSoftmax(INDArray scores, double scale) {
    int t = (int) scores.size(1);
    Raw s = Raw.of(scores);
    Parallel.rows((int) scores.size(0) * t, (from, to) -> {
      for (int r = from; r < to; r++) {
        int i = r % t, o = r * t;
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= i; j++) {
          max = Math.max(max, s.get(o + j) * scale);
        }
        double sum = 0;
        for (int j = 0; j <= i; j++) {
          double e = Math.exp(s.get(o + j) * scale - max);
          s.set(o + j, e);
          sum += e;
        }
        for (int j = 0; j <= i; j++) {
          s.set(o + j, s.get(o + j) / sum);
        }
        for (int j = i + 1; j < t; j++) {
          s.set(o + j, 0.0);
        }
      }
    });
  }

  /** In place: dP becomes dS = scale * P * (dP - rowsum(dP * P)), zero above the diagonal. */
  static void causalSoftmaxBackward(INDArray probs, INDArray dProbs, double scale) {
    int t = (int) probs.size(1);
    Raw p = Raw.of(probs), d = Raw.of(dProbs);
    Parallel.rows((int) probs.size(0) * t, (from, to) -> {
      for (int r = from; r < to; r++) {
        int i = r % t, o = r * t;
        double dot = 0;
        for (int j = 0; j <= i; j++) {
          dot += d.get(o + j) * p.get(o + j);
        }
        for (int j = 0; j <= i; j++) {
          d.set(o + j, scale * p.get(o + j) * (d.get(o + j) - dot));
        }
        for (int j = i + 1; j < t; j++) {
          d.set(o + j, 0.0);
        }
      }
    });
  }
}

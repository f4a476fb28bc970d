package io.moespark.ops.nn;

import io.moespark.ops.tensor.Buffers;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Causal multi-head self-attention with RoPE on q and k: y = Wo · concat_h softmax(q_h k_h^T / sqrt(hd)
 * + mask) v_h. Rows of x are B sequences of T positions, [B*T, D]. One instance per layer holds the
 * activations of the step in flight for its backward.
 */
public final class Attention {
  private final int heads;
  private final Rope rope;
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
  private INDArray mask;

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
    Linear.forward(x, wq, q);
    Linear.forward(x, wk, k);
    Linear.forward(x, wv, v);
    qh = Buffers.ensure(qh, type, bh, seq, hd);
    kh = Buffers.ensure(kh, type, bh, seq, hd);
    rope.forward(splitHeads(q), qh);
    rope.forward(splitHeads(k), kh);
    vh = splitHeads(v);
    probs = Buffers.ensure(probs, type, bh, seq, seq);
    ctx = Buffers.ensure(ctx, type, bh, seq, hd);
    double scale = 1.0 / Math.sqrt(hd);
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(qh.slice(i), kh.slice(i), probs.slice(i), false, true, 0.0);
    }
    INDArray flat = probs.reshape(bh * seq, seq);
    flat.muli(scale);
    flat.reshape(bh, (long) seq * seq).addiRowVector(causalMask(type));
    flat.subiColumnVector(flat.max(true, 1));
    Transforms.exp(flat, false);
    flat.diviColumnVector(flat.sum(true, 1));
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(probs.slice(i), vh.slice(i), ctx.slice(i), false, false, 0.0);
    }
    merged = mergeHeads(ctx);
    Linear.forward(merged, wo, y);
  }

  /** dx += gradient of the last forward's input; dW* += weight gradients. */
  public void backward(INDArray dy, INDArray wq, INDArray wk, INDArray wv, INDArray wo,
      INDArray dx, INDArray dwq, INDArray dwk, INDArray dwv, INDArray dwo) {
    long d = x.size(1), hd = d / heads, bh = (long) batch * heads;
    DataType type = x.dataType();
    INDArray dMerged = Nd4j.createUninitialized(type, merged.shape());
    Linear.backward(merged, wo, dy, dMerged, dwo, false);
    INDArray dCtx = splitHeads(dMerged);
    INDArray dProbs = Nd4j.createUninitialized(type, bh, seq, seq);
    INDArray dvh = Nd4j.createUninitialized(type, bh, seq, hd);
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(dCtx.slice(i), vh.slice(i), dProbs.slice(i), false, true, 0.0);
      Buffers.gemm(probs.slice(i), dCtx.slice(i), dvh.slice(i), true, false, 0.0);
    }
    // softmax backward: dS = P * (dP - rowsum(dP * P)), then the 1/sqrt(hd) scale.
    INDArray p = probs.reshape(bh * seq, seq);
    INDArray dS = dProbs.reshape(bh * seq, seq);
    INDArray rowDot = dS.mul(p).sum(true, 1);
    dS.subiColumnVector(rowDot).muli(p).muli(1.0 / Math.sqrt(hd));
    INDArray dqh = Nd4j.createUninitialized(type, bh, seq, hd);
    INDArray dkh = Nd4j.createUninitialized(type, bh, seq, hd);
    for (int i = 0; i < bh; i++) {
      Buffers.gemm(dProbs.slice(i), kh.slice(i), dqh.slice(i), false, false, 0.0);
      Buffers.gemm(dProbs.slice(i), qh.slice(i), dkh.slice(i), true, false, 0.0);
    }
    INDArray dqRot = Nd4j.createUninitialized(type, bh, seq, hd);
    INDArray dkRot = Nd4j.createUninitialized(type, bh, seq, hd);
    rope.backward(dqh, dqRot);
    rope.backward(dkh, dkRot);
    Linear.backward(x, wq, mergeHeads(dqRot), dx, dwq, true);
    Linear.backward(x, wk, mergeHeads(dkRot), dx, dwk, true);
    Linear.backward(x, wv, mergeHeads(dvh), dx, dwv, true);
  }

  /** [B*T, D] -> [B*H, T, hd], a contiguous copy so each head is one GEMM operand. */
  private INDArray splitHeads(INDArray m) {
    long hd = m.size(1) / heads;
    return m.reshape(batch, seq, heads, hd).permute(0, 2, 1, 3).dup('c').reshape((long) batch * heads, seq, hd);
  }

  /** [B*H, T, hd] -> [B*T, D]. */
  private INDArray mergeHeads(INDArray h) {
    long hd = h.size(2);
    return h.reshape(batch, heads, seq, hd).permute(0, 2, 1, 3).dup('c').reshape((long) batch * seq, heads * hd);
  }

  /** [1, T*T] row of 0 on and below the diagonal and -inf above it. */
  private INDArray causalMask(DataType type) {
    if (mask == null || mask.size(1) != (long) seq * seq || mask.dataType() != type) {
      double[] m = new double[seq * seq];
      for (int r = 0; r < seq; r++) {
        for (int c = r + 1; c < seq; c++) {
          m[r * seq + c] = Double.NEGATIVE_INFINITY;
        }
      }
      mask = Nd4j.create(m, new long[] {1, (long) seq * seq}, DataType.DOUBLE).castTo(type);
    }
    return mask;
  }
}

package io.moespark.ops.moe;

import io.moespark.ops.nn.Activation;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;
import java.util.List;
import java.util.stream.IntStream;

/**
 * A group of FFN experts applied to contiguous row segments of one input: y_s = w2_e · act(w1_e x_s,
 * w3_e x_s) for segment s of expert e. The activation runs once over all rows; each of the three products is one grouped GEMM over the segments ({@link Backend#gemmGrouped}).
 * A dense FFN is a bank of one expert with one segment. Holds the activations of the step in
 * flight in buffers that grow but are not reallocated per step.
 */
public final class ExpertBank {
  private final Activation activation;
  private final Param[] w1;
  private final Param[] w3;
  private final Param[] w2;
  private Tensor h1Buf;
  private Tensor h3Buf;
  private Tensor aBuf;
  private Tensor savedBuf;
  private Tensor dABuf;
  private Tensor dh1Buf;
  private Tensor dh3Buf;
  private Tensor in;
  private int rows;
  private int[] segExpert;
  private int[] segStart;
  private int[] segLen;
  /** Indices of the segments with rows (the groups of the grouped GEMMs). */
  private int[] nonEmpty;

  /** w3 entries are null for non-gated activations. */
  public ExpertBank(Activation activation, Param[] w1, Param[] w3, Param[] w2) {
    this.activation = activation;
    this.w1 = w1.clone();
    this.w3 = w3.clone();
    this.w2 = w2.clone();
  }

  public int experts() {
    return w1.length;
  }

  /** The parameters of the bank's j-th expert: w1, w3 (when gated), w2. */
  public List<Param> params(int j) {
    return w3[j] == null ? List.of(w1[j], w2[j]) : List.of(w1[j], w3[j], w2[j]);
  }

  /** Forward over segments (expert index into this bank, first row, row count) of {@code in}, into out. */
  public void forward(Tensor in, int[] segExpert, int[] segStart, int[] segLen, Tensor out) {
    this.in = in;
    this.rows = (int) in.size(0);
    this.segExpert = segExpert;
    this.segStart = segStart;
    this.segLen = segLen;
    this.nonEmpty = IntStream.range(0, segLen.length).filter(s -> segLen[s] > 0).toArray();
    Backend be = in.backend();
    long f = w1[0].shape()[0];
    h1Buf = be.grow(h1Buf, in.dtype(), rows, f);
    h3Buf = be.grow(h3Buf, in.dtype(), rows, f);
    aBuf = be.grow(aBuf, in.dtype(), rows, f);
    savedBuf = be.grow(savedBuf, in.dtype(), rows, f);
    if (rows == 0) {
      return;
    }
    Tensor h1 = h1Buf.rows(0, rows), h3 = h3Buf.rows(0, rows), a = aBuf.rows(0, rows);
    be.gemmGrouped(segs(in), weights(w1, false), segs(h1), false, true, 0.0);
    if (activation.gated()) {
      be.gemmGrouped(segs(in), weights(w3, false), segs(h3), false, true, 0.0);
    }
    activation.forward(h1, h3, a, savedBuf.rows(0, rows));
    be.gemmGrouped(segs(a), weights(w2, false), segs(out), false, true, 0.0);
  }

  /** Given dOut for the last forward, writes dIn (overwrites) and accumulates weight gradients. */
  public void backward(Tensor dOut, Tensor dIn) {
    if (rows == 0) {
      return;
    }
    Backend be = dOut.backend();
    Tensor h1 = h1Buf.rows(0, rows), h3 = h3Buf.rows(0, rows), a = aBuf.rows(0, rows);
    long f = a.size(1);
    dABuf = be.grow(dABuf, a.dtype(), rows, f);
    dh1Buf = be.grow(dh1Buf, a.dtype(), rows, f);
    dh3Buf = activation.gated() ? be.grow(dh3Buf, a.dtype(), rows, f) : null;
    Tensor dA = dABuf.rows(0, rows);
    Tensor[] dOs = segs(dOut);
    be.gemmGrouped(dOs, segs(a), weights(w2, true), true, false, 1.0);
    be.gemmGrouped(dOs, weights(w2, false), segs(dA), false, false, 0.0);
    Tensor dh1 = dh1Buf.rows(0, rows), dh3 = dh3Buf == null ? null : dh3Buf.rows(0, rows);
    activation.backward(h1, h3, savedBuf.rows(0, rows), dA, dh1, dh3);
    Tensor[] xs = segs(in), dxs = segs(dIn);
    be.gemmGrouped(segs(dh1), xs, weights(w1, true), true, false, 1.0);
    be.gemmGrouped(segs(dh1), weights(w1, false), dxs, false, false, 0.0);
    if (activation.gated()) {
      be.gemmGrouped(segs(dh3), xs, weights(w3, true), true, false, 1.0);
      be.gemmGrouped(segs(dh3), weights(w3, false), dxs, false, false, 1.0);
    }
  }

  /** The non-empty segments of m, in order: the groups of a grouped GEMM. */
  private Tensor[] segs(Tensor m) {
    Tensor[] g = new Tensor[nonEmpty.length];
    for (int i = 0; i < g.length; i++) {
      int s = nonEmpty[i];
      g[i] = m.rows(segStart[s], segStart[s] + segLen[s]);
    }
    return g;
  }

  /** The weight (or its gradient) of each non-empty segment's expert. */
  private Tensor[] weights(Param[] w, boolean grad) {
    Tensor[] g = new Tensor[nonEmpty.length];
    for (int i = 0; i < g.length; i++) {
      Param p = w[segExpert[nonEmpty[i]]];
      g[i] = grad ? p.grad() : p.value();
    }
    return g;
  }
}

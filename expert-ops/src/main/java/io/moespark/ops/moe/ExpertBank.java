package io.moespark.ops.moe;

import io.moespark.ops.nn.Activation;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;

/**
 * A group of FFN experts applied to contiguous row segments of one input: y_s = w2_e · act(w1_e x_s,
 * w3_e x_s) for segment s of expert e. Two GEMMs per segment in, one out; the activation runs once over
 * all rows. A dense FFN is a bank of one expert with one segment. Holds the activations of the step in
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

  /** Forward over segments (expert index into this bank, first row, row count) of {@code in}, into out. */
  public void forward(Tensor in, int[] segExpert, int[] segStart, int[] segLen, Tensor out) {
    this.in = in;
    this.rows = (int) in.size(0);
    this.segExpert = segExpert;
    this.segStart = segStart;
    this.segLen = segLen;
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
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        int e = segExpert[s];
        Tensor xs = seg(in, s);
        be.gemm(xs, w1[e].value(), seg(h1, s), false, true, 0.0);
        if (activation.gated()) {
          be.gemm(xs, w3[e].value(), seg(h3, s), false, true, 0.0);
        }
      }
    }
    activation.forward(h1, h3, a, savedBuf.rows(0, rows));
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        be.gemm(seg(a, s), w2[segExpert[s]].value(), seg(out, s), false, true, 0.0);
      }
    }
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
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        Param p = w2[segExpert[s]];
        Tensor dOs = seg(dOut, s);
        be.gemm(dOs, seg(a, s), p.grad(), true, false, 1.0);
        be.gemm(dOs, p.value(), seg(dA, s), false, false, 0.0);
      }
    }
    Tensor dh1 = dh1Buf.rows(0, rows), dh3 = dh3Buf == null ? null : dh3Buf.rows(0, rows);
    activation.backward(h1, h3, savedBuf.rows(0, rows), dA, dh1, dh3);
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        int e = segExpert[s];
        Tensor xs = seg(in, s), dxs = seg(dIn, s);
        be.gemm(seg(dh1, s), xs, w1[e].grad(), true, false, 1.0);
        be.gemm(seg(dh1, s), w1[e].value(), dxs, false, false, 0.0);
        if (activation.gated()) {
          be.gemm(seg(dh3, s), xs, w3[e].grad(), true, false, 1.0);
          be.gemm(seg(dh3, s), w3[e].value(), dxs, false, false, 1.0);
        }
      }
    }
  }

  private Tensor seg(Tensor m, int s) {
    return m.rows(segStart[s], segStart[s] + segLen[s]);
  }
}

package io.moespark.ops.moe;

import io.moespark.ops.nn.Activation;
import io.moespark.ops.tensor.Buffers;
import io.moespark.ops.tensor.Param;
import org.nd4j.linalg.api.ndarray.INDArray;

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
  private INDArray h1Buf;
  private INDArray h3Buf;
  private INDArray aBuf;
  private INDArray savedBuf;
  private INDArray dABuf;
  private INDArray dh1Buf;
  private INDArray dh3Buf;
  private INDArray in;
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
  public void forward(INDArray in, int[] segExpert, int[] segStart, int[] segLen, INDArray out) {
    this.in = in;
    this.rows = (int) in.size(0);
    this.segExpert = segExpert;
    this.segStart = segStart;
    this.segLen = segLen;
    long f = w1[0].value().size(0);
    h1Buf = Buffers.grow(h1Buf, in.dataType(), rows, f);
    h3Buf = Buffers.grow(h3Buf, in.dataType(), rows, f);
    aBuf = Buffers.grow(aBuf, in.dataType(), rows, f);
    savedBuf = Buffers.grow(savedBuf, in.dataType(), rows, f);
    if (rows == 0) {
      return;
    }
    INDArray h1 = Buffers.rows(h1Buf, 0, rows), h3 = Buffers.rows(h3Buf, 0, rows), a = Buffers.rows(aBuf, 0, rows);
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        int e = segExpert[s];
        INDArray xs = seg(in, s);
        Buffers.gemm(xs, w1[e].value(), seg(h1, s), false, true, 0.0);
        if (activation.gated()) {
          Buffers.gemm(xs, w3[e].value(), seg(h3, s), false, true, 0.0);
        }
      }
    }
    activation.forward(h1, h3, a, Buffers.rows(savedBuf, 0, rows));
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        Buffers.gemm(seg(a, s), w2[segExpert[s]].value(), seg(out, s), false, true, 0.0);
      }
    }
  }

  /** Given dOut for the last forward, writes dIn (overwrites) and accumulates weight gradients. */
  public void backward(INDArray dOut, INDArray dIn) {
    if (rows == 0) {
      return;
    }
    INDArray h1 = Buffers.rows(h1Buf, 0, rows), h3 = Buffers.rows(h3Buf, 0, rows), a = Buffers.rows(aBuf, 0, rows);
    long f = a.size(1);
    dABuf = Buffers.grow(dABuf, a.dataType(), rows, f);
    dh1Buf = Buffers.grow(dh1Buf, a.dataType(), rows, f);
    dh3Buf = activation.gated() ? Buffers.grow(dh3Buf, a.dataType(), rows, f) : null;
    INDArray dA = Buffers.rows(dABuf, 0, rows);
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        Param p = w2[segExpert[s]];
        INDArray dOs = seg(dOut, s);
        Buffers.gemm(dOs, seg(a, s), p.grad(), true, false, 1.0);
        Buffers.gemm(dOs, p.value(), seg(dA, s), false, false, 0.0);
      }
    }
    INDArray dh1 = Buffers.rows(dh1Buf, 0, rows), dh3 = dh3Buf == null ? null : Buffers.rows(dh3Buf, 0, rows);
    activation.backward(h1, h3, Buffers.rows(savedBuf, 0, rows), dA, dh1, dh3);
    for (int s = 0; s < segExpert.length; s++) {
      if (segLen[s] > 0) {
        int e = segExpert[s];
        INDArray xs = seg(in, s), dxs = seg(dIn, s);
        Buffers.gemm(seg(dh1, s), xs, w1[e].grad(), true, false, 1.0);
        Buffers.gemm(seg(dh1, s), w1[e].value(), dxs, false, false, 0.0);
        if (activation.gated()) {
          Buffers.gemm(seg(dh3, s), xs, w3[e].grad(), true, false, 1.0);
          Buffers.gemm(seg(dh3, s), w3[e].value(), dxs, false, false, 1.0);
        }
      }
    }
  }

  private INDArray seg(INDArray m, int s) {
    return Buffers.rows(m, segStart[s], segStart[s] + segLen[s]);
  }
}

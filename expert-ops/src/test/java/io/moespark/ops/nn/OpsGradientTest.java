package io.moespark.ops.nn;

import static io.moespark.ops.GradCheck.check;
import static io.moespark.ops.GradCheck.randn;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/** Finite-difference checks (float64) of every dense op's backward. Loss = sum(out * R). */
class OpsGradientTest {
  /** The ops take the project's tensors; these tests build and read them as ND4J arrays on the CPU backend. */
  private static Tensor w(INDArray a) {
    return a == null ? null : CpuBackend.wrap(a);
  }

  private static Tensor ints(int[] v) {
    Tensor t = CpuBackend.INSTANCE.empty(DType.I32, v.length);
    CpuBackend.INSTANCE.fromInts(v, t);
    return t;
  }

  private static double ceLoss(Tensor logits, int[] targets) {
    Tensor sum = CpuBackend.INSTANCE.zeros(DType.F64, 1);
    CrossEntropy.loss(logits, ints(targets), sum);
    return sum.toDoubles()[0];
  }

  private static double ceForwardBackward(Tensor logits, int[] targets, long count) {
    Tensor sum = CpuBackend.INSTANCE.zeros(DType.F64, 1);
    CrossEntropy.forwardBackward(logits, ints(targets), count, sum);
    return sum.toDoubles()[0];
  }

  private static Tensor rstd(long n) {
    return CpuBackend.INSTANCE.zeros(DType.F64, n);
  }

  @Test
  void linear() {
    INDArray x = randn(1, 5, 4), w = randn(2, 3, 4), r = randn(3, 5, 3);
    INDArray dx = Nd4j.zeros(DataType.DOUBLE, 5, 4), dw = Nd4j.zeros(DataType.DOUBLE, 3, 4);
    Linear.backward(w(x), w(w), w(r), w(dx), w(dw), false);
    java.util.function.DoubleSupplier loss = () -> {
      INDArray y = Nd4j.zeros(DataType.DOUBLE, 5, 3);
      Linear.forward(w(x), w(w), w(y));
      return y.mul(r).sumNumber().doubleValue();
    };
    check("dx", x, dx, loss, 100);
    check("dw", w, dw, loss, 100);
  }

  @Test
  void rmsNorm() {
    INDArray x = randn(4, 6, 8), w = randn(5, 8), r = randn(6, 6, 8);
    INDArray y = x.ulike();
    Tensor rstd = rstd(6);
    RmsNorm.forward(w(x), w(w), 1e-5, w(y), rstd);
    INDArray dx = Nd4j.zeros(DataType.DOUBLE, 6, 8), dw = Nd4j.zeros(DataType.DOUBLE, 8);
    RmsNorm.backward(w(x), w(w), rstd, w(r), w(dx), w(dw));
    java.util.function.DoubleSupplier loss = () -> {
      INDArray out = x.ulike();
      RmsNorm.forward(w(x), w(w), 1e-5, w(out), rstd(6));
      return out.mul(r).sumNumber().doubleValue();
    };
    check("dx", x, dx, loss, 100);
    check("dw", w, dw, loss, 100);
  }

  @Test
  void rmsNormMatchesDefinition() {
    INDArray x = randn(7, 3, 4), w = randn(8, 4), y = x.ulike();
    RmsNorm.forward(w(x), w(w), 1e-5, w(y), rstd(3));
    for (int i = 0; i < 3; i++) {
      double ms = 0;
      for (int j = 0; j < 4; j++) {
        ms += x.getDouble(i, j) * x.getDouble(i, j) / 4;
      }
      for (int j = 0; j < 4; j++) {
        assertEquals(x.getDouble(i, j) / Math.sqrt(ms + 1e-5) * w.getDouble(j), y.getDouble(i, j), 1e-12);
      }
    }
  }

  @Test
  void embedding() {
    int[] ids = {3, 1, 3, 0, 3};
    INDArray table = randn(9, 4, 6), r = randn(10, 5, 6);
    INDArray dt = Nd4j.zeros(DataType.DOUBLE, 4, 6);
    Embedding.backward(ints(ids), w(r), w(dt));
    check("dtable", table, dt, () -> {
      INDArray out = Nd4j.zeros(DataType.DOUBLE, 5, 6);
      Embedding.forward(ints(ids), w(table), w(out));
      return out.mul(r).sumNumber().doubleValue();
    }, 100);
  }

  @Test
  void rope() {
    // 2 sequences of 5 positions, 3 heads of dim 8: rows [10, 24] -> heads [6, 5, 8].
    INDArray x = randn(11, 10, 24), r = randn(12, 6, 5, 8);
    for (Rope rope : new Rope[] {new Rope(10000), Rope.layoutOnly()}) {
      INDArray dx = x.ulike();
      rope.backward(w(r), 2, 3, w(dx));
      check("dx", x, dx, () -> {
        INDArray out = r.ulike();
        rope.forward(w(x), 2, 3, w(out));
        return out.mul(r).sumNumber().doubleValue();
      }, 120);
    }
  }

  @Test
  void ropeRotatesHalvesByPosition() {
    // One sequence of 3 positions, 2 heads of dim 4 (half 2): position p rotates pair (j, j + 2) of each
    // head by p * theta^(-j/2).
    INDArray x = randn(13, 3, 8), out = Nd4j.zeros(DataType.DOUBLE, 2, 3, 4);
    new Rope(100).forward(w(x), 1, 2, w(out));
    for (int h = 0; h < 2; h++) {
      for (int p = 0; p < 3; p++) {
        for (int j = 0; j < 2; j++) {
          double a = p * Math.pow(100, -j / 2.0), x1 = x.getDouble(p, h * 4 + j), x2 = x.getDouble(p, h * 4 + j + 2);
          assertEquals(x1 * Math.cos(a) - x2 * Math.sin(a), out.getDouble(h, p, j), 1e-12);
          assertEquals(x1 * Math.sin(a) + x2 * Math.cos(a), out.getDouble(h, p, j + 2), 1e-12);
        }
      }
    }
  }

  @ParameterizedTest(name = "heads={0} kvHeads={1}")
  @CsvSource({"2,2", "4,2", "4,1"})
  void attention(int heads, int kvHeads) {
    int b = 2, t = 5, d = 8, dkv = kvHeads * (d / heads);
    INDArray x = randn(14, b * t, d), wq = randn(15, d, d).muli(0.5), wk = randn(16, dkv, d).muli(0.5);
    INDArray wv = randn(17, dkv, d), wo = randn(18, d, d), r = randn(19, b * t, d);
    Attention att = new Attention(heads, kvHeads, 10000);
    INDArray y = x.ulike();
    att.forward(w(x), b, t, w(wq), w(wk), w(wv), w(wo), w(y));
    INDArray dx = x.ulike().assign(0), dwq = wq.ulike().assign(0), dwk = wk.ulike().assign(0);
    INDArray dwv = wv.ulike().assign(0), dwo = wo.ulike().assign(0);
    att.backward(w(r), w(wq), w(wk), w(wv), w(wo), w(dx), w(dwq), w(dwk), w(dwv), w(dwo));
    Attention fresh = new Attention(heads, kvHeads, 10000);
    java.util.function.DoubleSupplier loss = () -> {
      INDArray out = x.ulike();
      fresh.forward(w(x), b, t, w(wq), w(wk), w(wv), w(wo), w(out));
      return out.mul(r).sumNumber().doubleValue();
    };
    check("dx", x, dx, loss, 80);
    check("dwq", wq, dwq, loss, 64);
    check("dwk", wk, dwk, loss, 64);
    check("dwv", wv, dwv, loss, 64);
    check("dwo", wo, dwo, loss, 64);
  }

  /**
   * Grouped-query attention is multi-head attention whose key/value weights repeat each KV head for its
   * group of H / KV query heads, in order (transformers' repeat_kv): the same outputs, to rounding.
   */
  @ParameterizedTest(name = "heads={0} kvHeads={1}")
  @CsvSource({"4,2", "4,1", "6,3"})
  void groupedQueryAttentionIsMultiHeadWithRepeatedKeyValueHeads(int heads, int kvHeads) {
    int b = 2, t = 5, hd = 2, d = heads * hd, g = heads / kvHeads;
    INDArray x = randn(30, b * t, d), wq = randn(31, d, d), wk = randn(32, kvHeads * hd, d), wv = randn(33, kvHeads * hd, d);
    INDArray wo = randn(34, d, d), wkFull = Nd4j.zeros(DataType.DOUBLE, d, d), wvFull = Nd4j.zeros(DataType.DOUBLE, d, d);
    for (int h = 0; h < heads; h++) {
      for (int j = 0; j < hd; j++) {
        wkFull.putRow(h * hd + j, wk.getRow((h / g) * hd + j));
        wvFull.putRow(h * hd + j, wv.getRow((h / g) * hd + j));
      }
    }
    INDArray grouped = x.ulike(), full = x.ulike();
    new Attention(heads, kvHeads, 10000).forward(w(x), b, t, w(wq), w(wk), w(wv), w(wo), w(grouped));
    new Attention(heads, heads, 10000).forward(w(x), b, t, w(wq), w(wkFull), w(wvFull), w(wo), w(full));
    assertEquals(0.0, grouped.sub(full).amaxNumber().doubleValue(), 1e-12 * full.amaxNumber().doubleValue());
  }

  @Test
  void attentionIsCausal() {
    int b = 1, t = 6, d = 4;
    INDArray x = randn(20, t, d), w = randn(21, d, d);
    Attention att = new Attention(2, 2, 10000);
    INDArray y1 = x.ulike(), y2 = x.ulike();
    att.forward(w(x), b, t, w(w), w(w), w(w), w(w), w(y1));
    INDArray x2 = x.dup();
    x2.getRow(t - 1).addi(5.0);
    att.forward(w(x2), b, t, w(w), w(w), w(w), w(w), w(y2));
    assertEquals(0.0, y1.getRows(0, 1, 2, 3, 4).sub(y2.getRows(0, 1, 2, 3, 4)).amaxNumber().doubleValue(), 1e-12);
  }

  @ParameterizedTest
  @EnumSource(Activation.class)
  void activation(Activation act) {
    INDArray h1 = randn(22, 4, 6).muli(2), h3 = randn(23, 4, 6), r = randn(24, 4, 6);
    INDArray dh1 = h1.ulike(), dh3 = h1.ulike().assign(0), saved = h1.ulike();
    act.forward(w(h1), w(h3), w(h1.ulike()), w(saved));
    act.backward(w(h1), w(h3), w(saved), w(r), w(dh1), w(dh3));
    java.util.function.DoubleSupplier loss = () -> {
      INDArray a = h1.ulike();
      act.forward(w(h1), w(h3), w(a), w(h1.ulike()));
      return a.mul(r).sumNumber().doubleValue();
    };
    check("dh1", h1, dh1, loss, 100);
    if (act.gated()) {
      check("dh3", h3, dh3, loss, 100);
    }
  }

  @Test
  void crossEntropy() {
    INDArray logits = randn(25, 6, 5);
    int[] targets = {0, 4, 2, 2, 1, 3};
    INDArray grad = logits.dup();
    double sum = ceForwardBackward(w(grad), targets, 10);
    assertEquals(sum, ceLoss(w(logits), targets), 1e-12);
    check("dlogits", logits, grad, () -> ceLoss(w(logits), targets) / 10, 100);
  }
}

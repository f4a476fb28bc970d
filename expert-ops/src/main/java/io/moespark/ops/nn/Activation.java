package io.moespark.ops.nn;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * The expert non-linearity. SWIGLU: a = silu(h1) * h3. GELU: a = gelu(h1) with the tanh approximation
 * (PyTorch {@code approximate="tanh"}); h3 is unused and has no weight.
 */
public enum Activation {
  SWIGLU,
  GELU;

  private static final double GELU_C = Math.sqrt(2 / Math.PI);
  private static final double GELU_A = 0.044715;

  public boolean gated() {
    return this == SWIGLU;
  }

  /** a = act(h1, h3); all [N, F]. */
  public void forward(INDArray h1, INDArray h3, INDArray a) {
    if (this == SWIGLU) {
      a.assign(h1.mul(Transforms.sigmoid(h1, true)).muli(h3));
    } else {
      INDArray inner = h1.mul(h1).muli(GELU_A).addi(1).muli(h1).muli(GELU_C);
      a.assign(Transforms.tanh(inner, false).addi(1).muli(h1).muli(0.5));
    }
  }

  /** Given da, writes dh1 (and dh3 for SWIGLU); overwrites, does not accumulate. */
  public void backward(INDArray h1, INDArray h3, INDArray da, INDArray dh1, INDArray dh3) {
    if (this == SWIGLU) {
      INDArray s = Transforms.sigmoid(h1, true);
      INDArray silu = h1.mul(s);
      dh3.assign(da.mul(silu));
      // d silu / dh = s * (1 + h (1 - s))
      INDArray dsilu = s.rsub(1).muli(h1).addi(1).muli(s);
      dh1.assign(da.mul(h3).muli(dsilu));
    } else {
      INDArray h2 = h1.mul(h1);
      INDArray t = Transforms.tanh(h2.mul(GELU_A).addi(1).muli(h1).muli(GELU_C), false);
      // d/dh 0.5 h (1 + t) = 0.5 (1 + t) + 0.5 h (1 - t^2) c (1 + 3 a h^2)
      INDArray left = t.add(1).muli(0.5);
      INDArray right = t.mul(t).rsubi(1).muli(h1).muli(0.5 * GELU_C).muli(h2.muli(3 * GELU_A).addi(1));
      dh1.assign(da.mul(left.addi(right)));
    }
  }
}

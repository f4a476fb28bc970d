package io.moespark.ops.nn;

import io.moespark.ops.tensor.Parallel;
import io.moespark.ops.tensor.Raw;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarReverseSubtraction;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Sigmoid;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The expert non-linearity, written into caller-owned buffers with no temporaries (these arrays are the
 * largest of a step). SWIGLU: a = silu(h1) * h3. GELU: a = gelu(h1) with the tanh approximation
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

  /**
   * a = act(h1, h3); all contiguous and of one shape. {@code saved} receives what backward reuses
   * (sigmoid(h1) for SWIGLU; unused for GELU).
   */
  public void forward(INDArray h1, INDArray h3, INDArray a, INDArray saved) {
    if (this == SWIGLU) {
      // In place with native ops: at expert sizes these arrays are the largest of the step.
      Nd4j.exec(new Sigmoid(h1, saved));
      Nd4j.exec(new MulOp(h1, saved, a));
      a.muli(h3);
      return;
    }
    Raw x = Raw.of(h1), out = Raw.of(a);
    Parallel.rows((int) h1.length(), (from, to) -> {
      for (int i = from; i < to; i++) {
        double h = x.get(i);
        out.set(i, 0.5 * h * (1 + Math.tanh(GELU_C * (h + GELU_A * h * h * h))));
      }
    });
  }

  /** Given da and what forward saved, writes dh1 (and dh3 for SWIGLU); overwrites, does not accumulate. */
  public void backward(INDArray h1, INDArray h3, INDArray saved, INDArray da, INDArray dh1, INDArray dh3) {
    if (this == SWIGLU) {
      // dh3 = da * silu(h1) = da * h1 * s;  dh1 = da * h3 * s * (1 + h1 * (1 - s)).
      Nd4j.exec(new MulOp(da, h1, dh3));
      dh3.muli(saved);
      Nd4j.exec(new ScalarReverseSubtraction(saved, dh1, 1.0));
      dh1.muli(h1).addi(1.0).muli(saved).muli(h3).muli(da);
      return;
    }
    Raw x = Raw.of(h1), dA = Raw.of(da), d1 = Raw.of(dh1);
    Parallel.rows((int) h1.length(), (from, to) -> {
      for (int i = from; i < to; i++) {
        double h = x.get(i), t = Math.tanh(GELU_C * (h + GELU_A * h * h * h));
        d1.set(i, dA.get(i) * (0.5 * (1 + t) + 0.5 * h * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * h * h)));
      }
    });
  }
}

package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/**
 * The expert non-linearity, written into caller-owned buffers with no temporaries (these arrays are the
 * largest of a step). SWIGLU: a = silu(h1) * h3. GELU: a = gelu(h1) with the tanh approximation
 * (PyTorch {@code approximate="tanh"}); h3 is unused and has no weight.
 */
public enum Activation {
  SWIGLU,
  GELU;

  public boolean gated() {
    return this == SWIGLU;
  }

  /**
   * a = act(h1, h3); all contiguous and of one shape. {@code saved} receives what backward reuses
   * (sigmoid(h1) for SWIGLU; unused for GELU).
   */
  public void forward(Tensor h1, Tensor h3, Tensor a, Tensor saved) {
    if (this == SWIGLU) {
      h1.backend().swigluForward(h1, h3, a, saved);
    } else {
      h1.backend().geluForward(h1, a);
    }
  }

  /** Given da and what forward saved, writes dh1 (and dh3 for SWIGLU); overwrites, does not accumulate. */
  public void backward(Tensor h1, Tensor h3, Tensor saved, Tensor da, Tensor dh1, Tensor dh3) {
    if (this == SWIGLU) {
      h1.backend().swigluBackward(h1, h3, saved, da, dh1, dh3);
    } else {
      h1.backend().geluBackward(h1, da, dh1);
    }
  }
}

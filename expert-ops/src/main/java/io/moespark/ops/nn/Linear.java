package io.moespark.ops.nn;

import io.moespark.ops.tensor.Buffers;
import org.nd4j.linalg.api.ndarray.INDArray;

/** y = x W^T with W in PyTorch layout [out, in]; no bias anywhere in this model. */
public final class Linear {
  private Linear() {}

  /** y[N, out] = x[N, in] W[out, in]^T. */
  public static void forward(INDArray x, INDArray w, INDArray y) {
    Buffers.gemm(x, w, y, false, true, 0.0);
  }

  /**
   * dW += dy^T x; dx = dy W when {@code accumulateDx} is false, dx += dy W otherwise. dx may be null
   * when the input needs no gradient.
   */
  public static void backward(INDArray x, INDArray w, INDArray dy, INDArray dx, INDArray dw, boolean accumulateDx) {
    Buffers.gemm(dy, x, dw, true, false, 1.0);
    if (dx != null) {
      Buffers.gemm(dy, w, dx, false, false, accumulateDx ? 1.0 : 0.0);
    }
  }
}

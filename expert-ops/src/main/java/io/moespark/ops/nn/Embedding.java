package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/** Token embedding: out[i] = table[ids[i]]. */
public final class Embedding {
  private Embedding() {}

  public static void forward(int[] ids, Tensor table, Tensor out) {
    long v = table.size(0);
    for (int id : ids) {
      if (id < 0 || id >= v) {
        throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + v + ")");
      }
    }
    table.backend().gather(table, ids, ids.length, out);
  }

  /** dtable[ids[i]] += dout[i], sequentially so repeated ids sum in a fixed order. */
  public static void backward(int[] ids, Tensor dout, Tensor dtable) {
    dout.backend().scatterAdd(dout, identity(ids.length), null, ids, ids.length, dtable);
  }

  private static int[] identity(int n) {
    int[] r = new int[n];
    for (int i = 0; i < n; i++) {
      r[i] = i;
    }
    return r;
  }
}

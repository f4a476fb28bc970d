package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/** Token embedding: out[i] = table[ids[i]], ids an I32 tensor on the table's backend. */
public final class Embedding {
  private Embedding() {}

  /** Checks host token ids before they go up: each in [0, vocab). */
  public static void checkIds(int[] ids, long vocab) {
    for (int id : ids) {
      if (id < 0 || id >= vocab) {
        throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + vocab + ")");
      }
    }
  }

  public static void forward(Tensor ids, Tensor table, Tensor out) {
    table.backend().gather(table, ids, (int) ids.length(), out);
  }

  /** dtable[ids[i]] += dout[i], sequentially so repeated ids sum in a fixed order. */
  public static void backward(Tensor ids, Tensor dout, Tensor dtable) {
    dout.backend().scatterAdd(dout, null, null, ids, (int) ids.length(), dtable);
  }
}

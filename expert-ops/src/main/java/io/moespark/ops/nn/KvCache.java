package io.moespark.ops.nn;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * The keys (after RoPE) and values of one sequence's positions so far, for generation: per layer
 * [KV, capacity, hd] on the backend, each key/value head's positions contiguous, so that the attention of
 * a new position reads a head's first {@link #length} rows as one matrix.
 */
public final class KvCache implements AutoCloseable {
  private final Backend backend;
  private final Tensor[] keys;
  private final Tensor[] values;
  private final int capacity;
  private int length;

  public KvCache(Backend backend, DType type, int layers, int kvHeads, int capacity, long headDim) {
    this.backend = backend;
    this.capacity = capacity;
    keys = new Tensor[layers];
    values = new Tensor[layers];
    for (int l = 0; l < layers; l++) {
      keys[l] = backend.zeros(type, kvHeads, capacity, headDim);
      values[l] = backend.zeros(type, kvHeads, capacity, headDim);
    }
  }

  public int capacity() {
    return capacity;
  }

  /** Positions held (the same in every layer once a step is done). */
  public int length() {
    return length;
  }

  Tensor keys(int layer) {
    return keys[layer];
  }

  Tensor values(int layer) {
    return values[layer];
  }

  /** Marks {@code n} more positions as held, after every layer stored them. */
  public void advance(int n) {
    if (length + n > capacity) {
      throw new IllegalStateException("KV cache of " + capacity + " positions is full");
    }
    length += n;
  }

  /** Copies heads [KV, n, hd] of positions length .. length+n-1 into the layer's keys or values. */
  void store(Tensor heads, Tensor into) {
    long n = heads.size(1), hd = heads.size(2);
    for (long h = 0; h < heads.size(0); h++) {
      backend.copy(backend.view(heads, h * n * hd, n, hd), backend.view(into, (h * capacity + length) * hd, n, hd));
    }
  }

  @Override
  public void close() {
    for (int l = 0; l < keys.length; l++) {
      backend.free(keys[l]);
      backend.free(values[l]);
    }
  }
}

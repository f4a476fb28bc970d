package io.moespark.ops.tensor;

import io.moespark.ops.backend.Backend;
import java.util.Arrays;

/**
 * A handle to a dense c-order array that lives where its {@link Backend} keeps memory (host memory for
 * the CPU backend, device memory for an accelerator). It knows its shape and element type; the values
 * are reached only through the backend ({@link Backend#toHost} and the ops). Views (row ranges, slices)
 * share memory with the tensor they come from.
 */
public final class Tensor {
  private final Backend backend;
  private final DType dtype;
  private final long[] shape;
  private final long length;
  private final Object handle;

  /** For backends: {@code handle} is the backend's own reference to the memory (opaque to everyone else). */
  public Tensor(Backend backend, DType dtype, long[] shape, Object handle) {
    this.backend = backend;
    this.dtype = dtype;
    this.shape = shape.clone();
    long n = 1;
    for (long s : shape) {
      n *= s;
    }
    this.length = n;
    this.handle = handle;
  }

  public Backend backend() {
    return backend;
  }

  public DType dtype() {
    return dtype;
  }

  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  public long size(int dim) {
    return shape[dim];
  }

  public long length() {
    return length;
  }

  public boolean isEmpty() {
    return length == 0;
  }

  /** The backend's reference to the memory; only the backend that made the tensor may interpret it. */
  public Object handle() {
    return handle;
  }

  /** Rows [from, to) of the leading dimension, as a view. */
  public Tensor rows(long from, long to) {
    return backend.rows(this, from, to);
  }

  /** Element {@code i} of the leading dimension, as a view of one rank less. */
  public Tensor slice(long i) {
    return backend.slice(this, i);
  }

  /** Sets every element to {@code v}; returns this. */
  public Tensor fill(double v) {
    backend.fill(this, v);
    return this;
  }

  /** this += x (same shape); returns this. */
  public Tensor addi(Tensor x) {
    backend.add(this, x);
    return this;
  }

  /** this *= s; returns this. */
  public Tensor muli(double s) {
    backend.scale(this, s);
    return this;
  }

  /** Copies {@code src} (same length) into this; returns this. */
  public Tensor assign(Tensor src) {
    backend.copy(src, this);
    return this;
  }

  /** The values as doubles, in c order (a copy to the host). */
  public double[] toDoubles() {
    return backend.toDoubles(this);
  }

  @Override
  public String toString() {
    return dtype + Arrays.toString(shape) + "@" + backend.name();
  }
}

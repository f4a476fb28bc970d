package io.moespark.ops.tensor;

import java.util.Arrays;

/**
 * A named trainable tensor and its gradient: views into the {@link ParamStore}'s flat block of its
 * {@link Kind}. {@code expert} is the expert index for expert weights (they live on the ranks that hold
 * the expert and are never all-reduced) and -1 for dense weights (replicated on every rank). A
 * {@code replica} is an expert weight whose primary holder is another rank: equal to the primary's copy,
 * neither written to this rank's checkpoint shard nor counted in its gradient norm.
 */
public final class Param {
  /** Which flat block a parameter lives in. */
  public enum Kind {
    /** Replicated on every rank; gradients are all-reduced. */
    DENSE,
    /** One rank's shard of routed experts. */
    EXPERT
  }

  private final String name;
  private final int expert;
  private final long[] shape;
  private final long offset;
  private final boolean replica;
  private Tensor value;
  private Tensor grad;

  Param(String name, int expert, boolean replica, long[] shape, long offset) {
    if (replica && expert < 0) {
      throw new IllegalArgumentException(name + ": only an expert weight can be a replica");
    }
    this.name = name;
    this.expert = expert;
    this.replica = replica;
    this.shape = shape.clone();
    this.offset = offset;
  }

  void bind(Tensor value, Tensor grad) {
    this.value = value;
    this.grad = grad;
  }

  public String name() {
    return name;
  }

  public int expert() {
    return expert;
  }

  public boolean isExpert() {
    return expert >= 0;
  }

  /** An expert weight whose primary holder is another rank (see the class comment). */
  public boolean isReplica() {
    return replica;
  }

  /**
   * Whether rank {@code rank}'s checkpoint shard (and its share of the gathered model) carries this
   * parameter: an expert weight on its primary holder, a dense one on rank 0. Every parameter is then
   * written exactly once.
   */
  public boolean writtenBy(int rank) {
    return isExpert() ? !replica : rank == 0;
  }

  public Kind kind() {
    return isExpert() ? Kind.EXPERT : Kind.DENSE;
  }

  public long[] shape() {
    return shape.clone();
  }

  /** Elements of this parameter. */
  public long length() {
    return Arrays.stream(shape).reduce(1, (a, b) -> a * b);
  }

  /** First element of this parameter in its kind's flat block. */
  public long offset() {
    return offset;
  }

  public Tensor value() {
    if (value == null) {
      throw new IllegalStateException("parameter " + name + " is not allocated yet (ParamStore.allocate)");
    }
    return value;
  }

  public Tensor grad() {
    if (grad == null) {
      throw new IllegalStateException("parameter " + name + " is not allocated yet (ParamStore.allocate)");
    }
    return grad;
  }

  /** Weight decay applies to matrices only (not to norm gains). */
  public boolean decays() {
    return shape.length == 2;
  }
}

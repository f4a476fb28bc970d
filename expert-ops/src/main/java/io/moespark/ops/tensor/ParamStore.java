package io.moespark.ops.tensor;

import io.moespark.ops.backend.Backend;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parameters of one rank in creation order, by their checkpoint names (DESIGN §3). Values and
 * gradients live in one contiguous block per {@link Param.Kind} (the dense replica, the expert shard),
 * each parameter a view into it in creation order, so that the all-reduce of dense gradients, clipping
 * and the optimizer run over flat ranges without copies. Parameters are registered first
 * ({@link #add}), then {@link #allocate} creates the blocks (zero-filled) on the backend.
 */
public final class ParamStore {
  private final Backend backend;
  private final DType type;
  private final Map<String, Param> byName = new LinkedHashMap<>();
  private final EnumMap<Param.Kind, Long> sizes = new EnumMap<>(Param.Kind.class);
  private final EnumMap<Param.Kind, Tensor> values = new EnumMap<>(Param.Kind.class);
  private final EnumMap<Param.Kind, Tensor> grads = new EnumMap<>(Param.Kind.class);
  private final EnumMap<Param.Kind, Tensor[]> gradParts = new EnumMap<>(Param.Kind.class);
  /** Sums of squares of the gradients per kind (F64 [2], dense then expert): the global norm's one output. */
  private Tensor gradSquares;

  public ParamStore(Backend backend, DType type) {
    this.backend = backend;
    this.type = type;
    for (Param.Kind k : Param.Kind.values()) {
      sizes.put(k, 0L);
    }
  }

  public Backend backend() {
    return backend;
  }

  public DType type() {
    return type;
  }

  /** Registers a parameter; its tensors exist after {@link #allocate}. */
  public Param add(String name, int expert, long... shape) {
    return add(name, expert, false, shape);
  }

  /** Registers a parameter, an expert's replica when {@code replica} ({@link Param#isReplica}). */
  public Param add(String name, int expert, boolean replica, long... shape) {
    if (!values.isEmpty()) {
      throw new IllegalStateException("parameter " + name + " added after allocate");
    }
    if (byName.containsKey(name)) {
      throw new IllegalStateException("duplicate parameter " + name);
    }
    Param.Kind kind = expert >= 0 ? Param.Kind.EXPERT : Param.Kind.DENSE;
    Param p = new Param(name, expert, replica, shape, sizes.get(kind));
    sizes.put(kind, sizes.get(kind) + p.length());
    byName.put(name, p);
    return p;
  }

  /** Creates the flat blocks and binds every parameter's views; once. */
  public void allocate() {
    if (!values.isEmpty()) {
      throw new IllegalStateException("parameters already allocated");
    }
    for (Param.Kind k : Param.Kind.values()) {
      values.put(k, backend.zeros(type, sizes.get(k)));
      grads.put(k, backend.zeros(type, sizes.get(k)));
    }
    for (Param p : byName.values()) {
      p.bind(view(values.get(p.kind()), p), view(grads.get(p.kind()), p));
    }
    for (Param.Kind k : Param.Kind.values()) {
      gradParts.put(k, byName.values().stream().filter(p -> p.kind() == k && !p.isReplica()).map(Param::grad)
          .toArray(Tensor[]::new));
    }
    gradSquares = backend.zeros(DType.F64, Param.Kind.values().length);
  }

  /**
   * The gradient views of a kind's parameters in creation order, replicas left out: the parts whose
   * squares this rank adds to the global gradient norm (a replica's equal copy counts on its primary).
   */
  public Tensor[] normParts(Param.Kind kind) {
    allocated(values);
    return gradParts.get(kind).clone();
  }

  /** The F64 [kinds] tensor that {@code GradClip} sums the squares of each kind's gradients into. */
  public Tensor gradSquares() {
    allocated(values);
    return gradSquares;
  }

  /** The view of {@code p} in a flat block laid out like this store's (values, gradients, moments). */
  public Tensor view(Tensor block, Param p) {
    return backend.view(block, p.offset(), p.shape());
  }

  /** Elements of a kind's block. */
  public long size(Param.Kind kind) {
    return sizes.get(kind);
  }

  /** The flat value block of a kind ([size]). */
  public Tensor values(Param.Kind kind) {
    return allocated(values).get(kind);
  }

  /** The flat gradient block of a kind ([size]). */
  public Tensor grads(Param.Kind kind) {
    return allocated(grads).get(kind);
  }

  private EnumMap<Param.Kind, Tensor> allocated(EnumMap<Param.Kind, Tensor> m) {
    if (m.isEmpty()) {
      throw new IllegalStateException("parameters are not allocated yet");
    }
    return m;
  }

  public Param get(String name) {
    Param p = byName.get(name);
    if (p == null) {
      throw new IllegalArgumentException("no parameter named " + name);
    }
    return p;
  }

  public boolean contains(String name) {
    return byName.containsKey(name);
  }

  public List<Param> all() {
    return Collections.unmodifiableList(new ArrayList<>(byName.values()));
  }

  public void zeroGrads() {
    for (Tensor g : allocated(grads).values()) {
      g.fill(0);
    }
  }

  /** Name -> value, in creation order (what a checkpoint writes). */
  public Map<String, Tensor> values() {
    Map<String, Tensor> m = new LinkedHashMap<>();
    byName.forEach((k, p) -> m.put(k, p.value()));
    return m;
  }
}

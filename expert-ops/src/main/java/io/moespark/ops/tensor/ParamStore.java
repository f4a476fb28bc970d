package io.moespark.ops.tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The parameters of one rank in creation order, by their checkpoint names (DESIGN §3). */
public final class ParamStore {
  private final Map<String, Param> byName = new LinkedHashMap<>();
  private final DataType type;

  public ParamStore(DataType type) {
    this.type = type;
  }

  public DataType type() {
    return type;
  }

  public Param add(String name, int expert, long... shape) {
    if (byName.containsKey(name)) {
      throw new IllegalStateException("duplicate parameter " + name);
    }
    Param p = new Param(name, Nd4j.zeros(type, shape), Nd4j.zeros(type, shape), expert);
    byName.put(name, p);
    return p;
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
    for (Param p : byName.values()) {
      p.grad().assign(0);
    }
  }

  /** Name -> value, in creation order (what a checkpoint writes). */
  public Map<String, INDArray> values() {
    Map<String, INDArray> m = new LinkedHashMap<>();
    byName.forEach((k, p) -> m.put(k, p.value()));
    return m;
  }
}

package io.moespark.ops.optim;

import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.ParamStore;
import io.moespark.ops.tensor.Tensor;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW with decoupled weight decay on matrices only, in PyTorch's exact order of operations:
 * p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * The moments live in flat blocks laid out like the store's parameter blocks (one per kind), on the
 * store's backend; each parameter's update is one fused kernel over its range.
 */
public final class AdamW {
  private final ParamStore params;
  private final double beta1;
  private final double beta2;
  private final double eps;
  private final double weightDecay;
  private final List<Param> order;
  /** Per parameter, in {@link #order}: its views of the first and second moment blocks. */
  private final List<Tensor[]> moments = new ArrayList<>();
  private long step;

  public AdamW(ParamStore params, double beta1, double beta2, double eps, double weightDecay) {
    this.params = params;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.order = params.all();
    EnumMap<Param.Kind, Tensor> m = new EnumMap<>(Param.Kind.class), v = new EnumMap<>(Param.Kind.class);
    for (Param.Kind k : Param.Kind.values()) {
      m.put(k, params.backend().zeros(params.type(), params.size(k)));
      v.put(k, params.backend().zeros(params.type(), params.size(k)));
    }
    for (Param p : order) {
      moments.add(new Tensor[] {params.view(m.get(p.kind()), p), params.view(v.get(p.kind()), p)});
    }
  }

  /** Number of updates applied so far (t of the bias corrections). */
  public long step() {
    return step;
  }

  public void update(double lr) {
    step++;
    double bc1 = 1 - Math.pow(beta1, step), bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
    double stepSize = lr / bc1;
    for (int i = 0; i < order.size(); i++) {
      Param p = order.get(i);
      double decay = p.decays() ? 1 - lr * weightDecay : 1.0;
      Tensor[] mv = moments.get(i);
      params.backend().adamw(p.value(), p.grad(), mv[0], mv[1], beta1, beta2, eps, decay, stepSize, bc2Sqrt);
    }
  }

  /** Optimizer state for a checkpoint: exp_avg.NAME and exp_avg_sq.NAME (views of the moment blocks). */
  public Map<String, Tensor> state() {
    Map<String, Tensor> s = new LinkedHashMap<>();
    for (int i = 0; i < order.size(); i++) {
      s.put("exp_avg." + order.get(i).name(), moments.get(i)[0]);
    }
    for (int i = 0; i < order.size(); i++) {
      s.put("exp_avg_sq." + order.get(i).name(), moments.get(i)[1]);
    }
    return s;
  }

  /** Restores what {@link #state} wrote, for every parameter of the store. */
  public void restore(Map<String, Tensor> state, long step) {
    for (int i = 0; i < order.size(); i++) {
      String name = order.get(i).name();
      Tensor m = state.get("exp_avg." + name), v = state.get("exp_avg_sq." + name);
      if (m == null || v == null) {
        throw new IllegalArgumentException("optimizer state has no moments for " + name);
      }
      moments.get(i)[0].assign(m);
      moments.get(i)[1].assign(v);
    }
    this.step = step;
  }
}

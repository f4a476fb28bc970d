package io.moespark.ops.optim;

import io.moespark.ops.tensor.Parallel;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Raw;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * AdamW with decoupled weight decay on matrices only, in PyTorch's exact order of operations:
 * p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 */
public final class AdamW {
  private final double beta1;
  private final double beta2;
  private final double eps;
  private final double weightDecay;
  private final Map<String, INDArray> m = new LinkedHashMap<>();
  private final Map<String, INDArray> v = new LinkedHashMap<>();
  private long step;

  public AdamW(double beta1, double beta2, double eps, double weightDecay) {
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.weightDecay = weightDecay;
  }

  /** Number of updates applied so far (t of the bias corrections). */
  public long step() {
    return step;
  }

  public void update(List<Param> params, double lr) {
    step++;
    double bc1 = 1 - Math.pow(beta1, step), bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
    double stepSize = lr / bc1;
    for (Param p : params) {
      INDArray mp = m.computeIfAbsent(p.name(), k -> p.value().ulike().assign(0));
      INDArray vp = v.computeIfAbsent(p.name(), k -> p.value().ulike().assign(0));
      double decay = p.decays() ? 1 - lr * weightDecay : 1.0;
      // One fused pass over parameter, gradient and moments (ND4J ops would make ~10 passes and temporaries).
      Raw w = Raw.of(p.value()), g = Raw.of(p.grad()), m1 = Raw.of(mp), m2 = Raw.of(vp);
      Parallel.rows((int) p.value().length(), (from, to) -> {
        for (int i = from; i < to; i++) {
          double gi = g.get(i);
          double mi = beta1 * m1.get(i) + (1 - beta1) * gi;
          double vi = beta2 * m2.get(i) + (1 - beta2) * gi * gi;
          m1.set(i, mi);
          m2.set(i, vi);
          w.set(i, w.get(i) * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps));
        }
      });
    }
  }

  /** Optimizer state for a checkpoint: exp_avg.NAME and exp_avg_sq.NAME. */
  public Map<String, INDArray> state() {
    Map<String, INDArray> s = new LinkedHashMap<>();
    m.forEach((k, a) -> s.put("exp_avg." + k, a));
    v.forEach((k, a) -> s.put("exp_avg_sq." + k, a));
    return s;
  }

  /** Restores what {@link #state} wrote, for the parameters given. */
  public void restore(List<Param> params, Map<String, INDArray> state, long step) {
    m.clear();
    v.clear();
    for (Param p : params) {
      INDArray mp = state.get("exp_avg." + p.name()), vp = state.get("exp_avg_sq." + p.name());
      if (mp == null || vp == null) {
        throw new IllegalArgumentException("optimizer state has no moments for " + p.name());
      }
      m.put(p.name(), mp.castTo(p.value().dataType()).reshape(p.value().shape()).dup());
      v.put(p.name(), vp.castTo(p.value().dataType()).reshape(p.value().shape()).dup());
    }
    this.step = step;
  }
}

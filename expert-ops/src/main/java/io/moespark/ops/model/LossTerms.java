package io.moespark.ops.model;

/**
 * The loss of one step over the global batch: total = ce + auxCoef * aux + zCoef * z, where aux and z are
 * summed over the MoE layers.
 */
public record LossTerms(double total, double ce, double aux, double z) implements java.io.Serializable {
  public boolean isFinite() {
    return Double.isFinite(total) && Double.isFinite(ce) && Double.isFinite(aux) && Double.isFinite(z);
  }
}

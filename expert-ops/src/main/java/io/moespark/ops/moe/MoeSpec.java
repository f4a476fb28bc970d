package io.moespark.ops.moe;

import io.moespark.ops.nn.Activation;

/**
 * The shape and routing rules of one MoE layer. capacityFactor <= 0 means dropless (except for expert
 * choice, where it means a factor of 1: each expert takes ceil(k T / E) tokens).
 */
public record MoeSpec(
    int experts,
    int topK,
    int dExpert,
    int sharedExperts,
    Activation activation,
    RouterKind router,
    boolean normTopk,
    double capacityFactor,
    DropPolicy dropPolicy,
    double auxLossCoef,
    double zLossCoef) {

  public MoeSpec withCapacityFactor(double cf) {
    return new MoeSpec(experts, topK, dExpert, sharedExperts, activation, router, normTopk, cf, dropPolicy,
        auxLossCoef, zLossCoef);
  }

  /** Per rank and expert: ceil(cf k T / E); Integer.MAX_VALUE when dropless. */
  public int capacity(int tokens) {
    double cf = capacityFactor;
    if (cf <= 0) {
      if (router != RouterKind.EXPERT_CHOICE) {
        return Integer.MAX_VALUE;
      }
      cf = 1.0;
    }
    return (int) Math.ceil(cf * topK * tokens / experts);
  }
}

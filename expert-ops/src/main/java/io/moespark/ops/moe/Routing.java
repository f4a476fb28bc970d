package io.moespark.ops.moe;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * The router's decision for the T tokens of one rank, on the backend: A assignments (token I32 [A],
 * expert I32 [A], gate F64 [A]), in ascending (token, expert-choice order) so that combining in
 * assignment order is independent of the number of ranks. probs [T, E] and lse [T] (F64) are null for
 * hash routing.
 */
public record Routing(int tokens, int experts, int assignments, Tensor token, Tensor expert, Tensor gate,
    Tensor probs, Tensor lse) {

  /** A routing given on the host (tests, inspection): uploads the three arrays. */
  public static Routing fromHost(Backend be, int tokens, int experts, int[] token, int[] expert, double[] gate) {
    Tensor t = be.empty(DType.I32, token.length), e = be.empty(DType.I32, expert.length);
    Tensor g = be.empty(DType.F64, gate.length);
    be.fromInts(token, t);
    be.fromInts(expert, e);
    be.fromDoubles(gate, g);
    return new Routing(tokens, experts, token.length, t, e, g, null, null);
  }

  /** Host copies of token, expert (as ints) and gate, for tests and inspection. */
  public int[] hostTokens() {
    return ints(token);
  }

  public int[] hostExperts() {
    return ints(expert);
  }

  public double[] hostGates() {
    return gate.rows(0, assignments).toDoubles();
  }

  private int[] ints(Tensor t) {
    double[] d = t.rows(0, assignments).toDoubles();
    int[] r = new int[d.length];
    for (int i = 0; i < r.length; i++) {
      r[i] = (int) d[i];
    }
    return r;
  }
}

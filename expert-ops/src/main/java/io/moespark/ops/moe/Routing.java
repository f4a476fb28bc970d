package io.moespark.ops.moe;

/**
 * The router's decision for the T tokens of one rank: A assignments (token, expert, gate), in
 * ascending (token, expert-choice order) so that combining in assignment order is independent of
 * the number of ranks. probs and lse are [T * E] and [T] (null for hash routing).
 */
public record Routing(int tokens, int experts, int[] token, int[] expert, double[] gate, double[] probs, double[] lse) {
  public int assignments() {
    return token.length;
  }

  /** Assignments per expert, before any capacity dropping. */
  public long[] countsPerExpert() {
    long[] c = new long[experts];
    for (int e : expert) {
      c[e]++;
    }
    return c;
  }
}

package io.moespark.ops.moe;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * Which ranks hold each expert of a layer, seen from one rank. The driver's placement produces these;
 * {@link #contiguous} is the default (rank r holds experts [r E / R, (r + 1) E / R), so E need not be a
 * multiple of R).
 *
 * <p>An expert may have several holders (replicas of a hot expert). Its parameters and moments are the
 * same on every holder; the lowest-ranked holder is its <em>primary</em>, which writes it to checkpoints
 * and counts it in the gradient norm. Tokens reach exactly one holder, by a rule every rank derives
 * alike: a source that holds the expert keeps its tokens; any other source s sends them to holder
 * {@code s mod holders}. Splitting by source keeps each (source, expert) segment whole, so capacity and the
 * expert's arithmetic per segment are those of a single holder.
 */
public record ShardLayout(int ranks, int rank, int[][] holders) {
  public ShardLayout {
    if (ranks < 1 || rank < 0 || rank >= ranks) {
      throw new IllegalArgumentException("rank " + rank + " of " + ranks);
    }
    holders = holders.clone();
    for (int e = 0; e < holders.length; e++) {
      int[] h = holders[e].clone();
      Arrays.sort(h);
      if (h.length == 0) {
        throw new IllegalArgumentException("expert " + e + " has no holder");
      }
      for (int i = 0; i < h.length; i++) {
        if (h[i] < 0 || h[i] >= ranks || (i > 0 && h[i] == h[i - 1])) {
          throw new IllegalArgumentException("expert " + e + " holders " + Arrays.toString(holders[e])
              + ": expected distinct ranks in [0, " + ranks + ")");
        }
      }
      holders[e] = h;
    }
  }

  /** One holder per expert: {@code owner[e]}. */
  public ShardLayout(int ranks, int rank, int[] owner) {
    this(ranks, rank, Arrays.stream(owner).mapToObj(o -> new int[] {o}).toArray(int[][]::new));
  }

  public static ShardLayout contiguous(int experts, int ranks, int rank) {
    int[] owner = new int[experts];
    for (int r = 0; r < ranks; r++) {
      for (int e = (int) ((long) r * experts / ranks); e < (long) (r + 1) * experts / ranks; e++) {
        owner[e] = r;
      }
    }
    return new ShardLayout(ranks, rank, owner);
  }

  public static ShardLayout single(int experts) {
    return contiguous(experts, 1, 0);
  }

  public int experts() {
    return holders.length;
  }

  /** The experts rank r holds (primary or replica), ascending. */
  public int[] expertsOf(int r) {
    return IntStream.range(0, holders.length).filter(e -> holds(r, e)).toArray();
  }

  public boolean holds(int r, int expert) {
    return Arrays.binarySearch(holders[expert], r) >= 0;
  }

  /** The ranks holding {@code expert}, ascending. */
  public int[] holdersOf(int expert) {
    return holders[expert].clone();
  }

  /** The primary holder of each expert. */
  public int[] owner() {
    return Arrays.stream(holders).mapToInt(h -> h[0]).toArray();
  }

  /** The primary (lowest-ranked) holder of {@code expert}. */
  public int ownerOf(int expert) {
    return holders[expert][0];
  }

  /** Whether any expert has more than one holder. */
  public boolean hasReplicas() {
    return Arrays.stream(holders).anyMatch(h -> h.length > 1);
  }

  /** The holder that rank {@code source}'s tokens for {@code expert} go to (see the class comment). */
  public int destination(int source, int expert) {
    int[] h = holders[expert];
    if (h.length == 1) {
      return h[0];
    }
    return holds(source, expert) ? source : h[source % h.length];
  }

  @Override
  public int[][] holders() {
    int[][] h = new int[holders.length][];
    for (int e = 0; e < h.length; e++) {
      h[e] = holders[e].clone();
    }
    return h;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ShardLayout s && s.ranks == ranks && s.rank == rank && Arrays.deepEquals(s.holders, holders);
  }

  @Override
  public int hashCode() {
    return 31 * (31 * ranks + rank) + Arrays.deepHashCode(holders);
  }

  @Override
  public String toString() {
    return "ShardLayout[rank " + rank + " of " + ranks + ", holders " + Arrays.deepToString(holders) + "]";
  }
}

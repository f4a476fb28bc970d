package io.moespark.ops.moe;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * Which rank holds each expert of a layer, seen from one rank. The driver's placement produces these;
 * {@link #contiguous} is the default (rank r holds experts [r E / R, (r + 1) E / R), so E need not be a
 * multiple of R).
 */
public record ShardLayout(int ranks, int rank, int[] owner) {
  public ShardLayout {
    if (ranks < 1 || rank < 0 || rank >= ranks) {
      throw new IllegalArgumentException("rank " + rank + " of " + ranks);
    }
    for (int o : owner) {
      if (o < 0 || o >= ranks) {
        throw new IllegalArgumentException("expert owner " + o + " outside [0, " + ranks + ")");
      }
    }
    owner = owner.clone();
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
    return owner.length;
  }

  /** The experts rank r holds, ascending. */
  public int[] expertsOf(int r) {
    return IntStream.range(0, owner.length).filter(e -> owner[e] == r).toArray();
  }

  @Override
  public int[] owner() {
    return owner.clone();
  }

  public int ownerOf(int expert) {
    return owner[expert];
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ShardLayout s && s.ranks == ranks && s.rank == rank && Arrays.equals(s.owner, owner);
  }

  @Override
  public int hashCode() {
    return 31 * (31 * ranks + rank) + Arrays.hashCode(owner);
  }

  @Override
  public String toString() {
    return "ShardLayout[rank " + rank + " of " + ranks + ", owner " + Arrays.toString(owner) + "]";
  }
}

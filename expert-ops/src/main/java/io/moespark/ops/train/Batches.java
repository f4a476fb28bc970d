package io.moespark.ops.train;

import io.moespark.ops.model.Init;
import java.util.SplittableRandom;

/**
 * Global batches of B windows of T + 1 tokens. The windows of step s depend only on (seed, s), never on
 * the number of ranks; rank r of R takes sequences [r B / R, (r + 1) B / R).
 */
public final class Batches {
  private final int[] tokens;
  private final int seqLen;
  private final int batch;
  private final long seed;

  /** One rank's slice: inputs and targets, both [sequences * T] row-major. */
  public record Slice(int[] inputs, int[] targets, int sequences) {}

  public Batches(int[] tokens, int seqLen, int batch, long seed) {
    if (tokens.length < seqLen + 1) {
      throw new IllegalArgumentException("training data has " + tokens.length + " tokens, fewer than one window of "
          + "model.seq_len + 1 = " + (seqLen + 1));
    }
    this.tokens = tokens;
    this.seqLen = seqLen;
    this.batch = batch;
    this.seed = seed;
  }

  /** Window start offsets of step s's global batch. */
  public int[] starts(int step) {
    SplittableRandom rng = new SplittableRandom(Init.mix(seed, (long) step));
    int[] s = new int[batch];
    for (int i = 0; i < batch; i++) {
      s[i] = rng.nextInt(tokens.length - seqLen);
    }
    return s;
  }

  public Slice slice(int step, int rank, int ranks) {
    int[] starts = starts(step);
    int from = (int) ((long) rank * batch / ranks), to = (int) ((long) (rank + 1) * batch / ranks);
    return windows(tokens, starts, from, to, seqLen);
  }

  /** Consecutive non-overlapping windows of T + 1 (the tail is dropped), for evaluation. */
  public static int[] evalStarts(int length, int seqLen) {
    int[] s = new int[length / (seqLen + 1)];
    for (int i = 0; i < s.length; i++) {
      s[i] = i * (seqLen + 1);
    }
    return s;
  }

  public static Slice windows(int[] tokens, int[] starts, int from, int to, int seqLen) {
    int n = to - from;
    int[] in = new int[n * seqLen], tg = new int[n * seqLen];
    for (int i = 0; i < n; i++) {
      System.arraycopy(tokens, starts[from + i], in, i * seqLen, seqLen);
      System.arraycopy(tokens, starts[from + i] + 1, tg, i * seqLen, seqLen);
    }
    return new Slice(in, tg, n);
  }
}

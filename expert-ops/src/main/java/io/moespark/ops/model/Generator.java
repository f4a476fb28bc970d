package io.moespark.ops.model;

import io.moespark.ops.config.ConfigException;
import io.moespark.ops.moe.RouterKind;
import io.moespark.ops.nn.KvCache;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Continues token sequences with a KV cache: the prompt in one pass, then one position per step. Greedy
 * (temperature 0: the highest logit, the lower id on ties, as torch.argmax) or sampled from
 * softmax(logits / temperature) restricted to the top-k logits and then to the smallest set of most likely
 * tokens whose probability reaches top-p, with a generator seeded per call: the same seed, the same text.
 * MoE layers run dropless (every token reaches its experts), as in transformers.
 */
public final class Generator {
  private final TransformerLM model;
  // Scratch of the sampler, one vocabulary long, kept between tokens.
  private double[] probs;
  private double[] sorted;

  /**
   * How the next token is chosen.
   *
   * @param temperature 0: greedy; > 0: sampling
   * @param topK 0: every token; else the k highest logits (those equal to the k-th included)
   * @param topP in (0, 1]: the most likely tokens whose probabilities reach it (1: all)
   */
  public record Sampling(double temperature, int topK, double topP, long seed) {
    public static final Sampling GREEDY = new Sampling(0, 0, 1, 0);

    public Sampling {
      if (!(temperature >= 0) || Double.isInfinite(temperature)) {
        throw new ConfigException("--temperature: expected a finite number >= 0 (0: greedy), got " + temperature);
      }
      if (topK < 0) {
        throw new ConfigException("--top-k: expected >= 0 (0: every token), got " + topK);
      }
      if (!(topP > 0 && topP <= 1)) {
        throw new ConfigException("--top-p: expected in (0, 1], got " + topP);
      }
    }
  }

  public Generator(TransformerLM model) {
    if (model.moeConfig().router() == RouterKind.EXPERT_CHOICE) {
      throw new ConfigException("moe.router = expert_choice cannot generate: experts choose their tokens among a "
          + "whole batch, which has no one-token-at-a-time form");
    }
    this.model = model;
    model.setCapacityFactor(0);
  }

  /** Up to {@code maxNew} tokens after {@code prompt}; stops after {@code eos} (included) when >= 0. */
  public int[] generate(int[] prompt, int maxNew, int eos, Sampling sampling) {
    if (prompt.length == 0) {
      throw new ConfigException("the prompt is empty (no tokens): generation needs at least one");
    }
    if (maxNew < 1) {
      throw new ConfigException("--max-new-tokens: expected >= 1, got " + maxNew);
    }
    SplittableRandom random = new SplittableRandom(sampling.seed());
    int[] out = new int[maxNew];
    int n = 0;
    try (KvCache cache = model.newKvCache(prompt.length + maxNew)) {
      double[] logits = model.nextLogits(prompt, cache);
      while (true) {
        int next = pick(logits, sampling, random);
        out[n++] = next;
        if (next == eos || n == maxNew) {
          return Arrays.copyOf(out, n);
        }
        logits = model.nextLogits(new int[] {next}, cache);
      }
    }
  }

  private int pick(double[] logits, Sampling s, SplittableRandom random) {
    int v = logits.length;
    if (s.temperature() == 0) {
      int best = 0;
      for (int i = 1; i < v; i++) {
        if (logits[i] > logits[best]) {
          best = i;
        }
      }
      return best;
    }
    if (probs == null || probs.length != v) {
      probs = new double[v];
      sorted = new double[v];
    }
    double floor = Double.NEGATIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
    if (s.topK() > 0 && s.topK() < v) {
      System.arraycopy(logits, 0, sorted, 0, v);
      Arrays.sort(sorted);
      floor = sorted[v - s.topK()];
    }
    for (double l : logits) {
      max = Math.max(max, l);
    }
    double sum = 0;
    for (int i = 0; i < v; i++) {
      probs[i] = logits[i] >= floor ? Math.exp((logits[i] - max) / s.temperature()) : 0;
      sum += probs[i];
    }
    if (s.topP() < 1) {
      System.arraycopy(probs, 0, sorted, 0, v);
      Arrays.sort(sorted);
      double cum = 0, cut = 0;
      for (int i = v - 1; i >= 0; i--) {
        cum += sorted[i];
        if (cum >= s.topP() * sum) {
          cut = sorted[i];
          break;
        }
      }
      sum = 0;
      for (int i = 0; i < v; i++) {
        probs[i] = probs[i] >= cut ? probs[i] : 0;
        sum += probs[i];
      }
    }
    double u = random.nextDouble() * sum, cum = 0;
    int last = 0;
    for (int i = 0; i < v; i++) {
      if (probs[i] > 0) {
        cum += probs[i];
        last = i;
        if (u < cum) {
          return i;
        }
      }
    }
    return last;
  }
}

package io.moespark.ops.model;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import io.moespark.ops.tensor.Tensor;

/**
 * Parameter initialisation seeded per tensor name: every tensor's values depend only on (seed, name),
 * so a model initialises identically whatever the number of ranks and whichever rank holds an expert.
 */
public final class Init {
  private Init() {}

  /** Fills {@code target} with N(0, std^2) draws from the stream of (seed, name). */
  public static void normal(Tensor target, long seed, String name, double std) {
    SplittableRandom rng = new SplittableRandom(mix(seed, name));
    double[] v = new double[(int) target.length()];
    for (int i = 0; i < v.length; i++) {
      v[i] = rng.nextGaussian() * std;
    }
    target.backend().fromDoubles(v, target);
  }

  /** A 64-bit seed from a seed and a name (FNV-1a over the name, mixed with the seed). */
  public static long mix(long seed, String name) {
    long h = 0xcbf29ce484222325L;
    for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
      h = (h ^ (b & 0xff)) * 0x100000001b3L;
    }
    return mix(seed, h);
  }

  /** splitmix64 finaliser of seed + salt: streams for different salts are unrelated. */
  public static long mix(long seed, long salt) {
    long z = seed + 0x9e3779b97f4a7c15L * (salt + 1);
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }
}

package io.moespark.ops.nn;

/**
 * How RoPE's frequencies are stretched for contexts longer than a model was trained on, in the forms
 * today's checkpoints use (transformers' {@code rope_scaling}): none; {@code linear} (every frequency
 * divided by the factor: positions interpolated); {@code llama3} (Llama 3.1's: long wavelengths divided by
 * the factor, short ones kept, the band between interpolated smoothly). The attention scale is unchanged
 * in all three.
 */
public record RopeScaling(Type type, double factor, double lowFreqFactor, double highFreqFactor,
    int originalMaxPositions) {
  public enum Type {
    NONE,
    LINEAR,
    LLAMA3
  }

  public static final RopeScaling NONE = new RopeScaling(Type.NONE, 1, 1, 4, 8192);

  /** inv_freq_j for j in [0, half): theta^(-j / half), then scaled (transformers' rope init functions). */
  public double[] inverseFrequencies(double theta, int half) {
    double[] f = new double[half];
    for (int j = 0; j < half; j++) {
      double base = Math.pow(theta, -(double) j / half);
      f[j] = switch (type) {
        case NONE -> base;
        case LINEAR -> base / factor;
        case LLAMA3 -> llama3(base);
      };
    }
    return f;
  }

  private double llama3(double inv) {
    double wavelen = 2 * Math.PI / inv;
    double lowFreqWavelen = originalMaxPositions / lowFreqFactor, highFreqWavelen = originalMaxPositions / highFreqFactor;
    if (wavelen > lowFreqWavelen) {
      return inv / factor; // long wavelengths: interpolated
    }
    if (wavelen < highFreqWavelen) {
      return inv; // short wavelengths: kept
    }
    double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * inv / factor + smooth * inv;
  }
}

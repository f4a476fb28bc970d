package io.moespark.ops.moe;

import io.moespark.ops.nn.Linear;
import java.util.Arrays;
import io.moespark.ops.tensor.Tensor;

/**
 * The router as a forward/backward pair. Logits come from a GEMM on the backend; softmax, selection
 * and gates are computed in double on the host (the [T, E] matrix is small), which also makes selection exact and
 * reproducible. Ties choose the lower expert (top-k) or the earlier token (expert choice).
 */
public final class Router {
  private final MoeSpec spec;
  private Tensor logits;
  private Tensor dLogits;

  public Router(MoeSpec spec) {
    this.spec = spec;
  }

  /** Hash used by {@link RouterKind#HASH}: a fixed 32-bit mix (murmur3 finaliser) of the token id. */
  public static int hashExpert(int tokenId, int experts) {
    int h = tokenId;
    h ^= h >>> 16;
    h *= 0x85ebca6b;
    h ^= h >>> 13;
    h *= 0xc2b2ae35;
    h ^= h >>> 16;
    return Integer.remainderUnsigned(h, experts);
  }

  /**
   * @param x [T, D] normalised hidden states
   * @param tokenIds the input token ids of the T rows (hash routing only)
   * @param wr router weight [E, D], null for hash routing
   * @param bias per-expert selection bias (top-k only), never part of the gates
   */
  public Routing forward(Tensor x, int[] tokenIds, Tensor wr, double[] bias) {
    int t = (int) x.size(0), e = spec.experts();
    if (spec.router() == RouterKind.HASH) {
      int[] token = new int[t], expert = new int[t];
      double[] gate = new double[t];
      for (int i = 0; i < t; i++) {
        token[i] = i;
        expert[i] = hashExpert(tokenIds[i], e);
        gate[i] = 1.0;
      }
      return new Routing(t, e, token, expert, gate, null, null);
    }
    logits = x.backend().ensure(logits, x.dtype(), t, e);
    Linear.forward(x, wr, logits);
    double[] l = logits.toDoubles();
    double[] probs = new double[t * e], lse = new double[t];
    for (int i = 0; i < t; i++) {
      double max = Double.NEGATIVE_INFINITY;
      for (int j = 0; j < e; j++) {
        max = Math.max(max, l[i * e + j]);
      }
      double sum = 0;
      for (int j = 0; j < e; j++) {
        probs[i * e + j] = Math.exp(l[i * e + j] - max);
        sum += probs[i * e + j];
      }
      for (int j = 0; j < e; j++) {
        probs[i * e + j] /= sum;
      }
      lse[i] = max + Math.log(sum);
    }
    return spec.router() == RouterKind.TOPK ? topK(t, probs, lse, bias) : expertChoice(t, probs, lse);
  }

  private Routing topK(int t, double[] probs, double[] lse, double[] bias) {
    int e = spec.experts(), k = spec.topK();
    int[] token = new int[t * k], expert = new int[t * k];
    double[] gate = new double[t * k];
    boolean[] taken = new boolean[e];
    for (int i = 0; i < t; i++) {
      Arrays.fill(taken, false);
      double sum = 0;
      for (int s = 0; s < k; s++) {
        int best = -1;
        double bestScore = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < e; j++) {
          double score = probs[i * e + j] + (bias == null ? 0 : bias[j]);
          if (!taken[j] && (best < 0 || score > bestScore)) {
            best = j;
            bestScore = score;
          }
        }
        taken[best] = true;
        token[i * k + s] = i;
        expert[i * k + s] = best;
        gate[i * k + s] = probs[i * e + best];
        sum += gate[i * k + s];
      }
      if (spec.normTopk()) {
        for (int s = 0; s < k; s++) {
          gate[i * k + s] /= sum;
        }
      }
    }
    return new Routing(t, e, token, expert, gate, probs, lse);
  }

  private Routing expertChoice(int t, double[] probs, double[] lse) {
    int e = spec.experts(), c = Math.min(t, spec.capacity(t));
    boolean[] chosen = new boolean[t * e];
    double[] column = new double[t];
    for (int j = 0; j < e; j++) {
      for (int i = 0; i < t; i++) {
        column[i] = probs[i * e + j];
      }
      int[] order = IndexSort.descending(column, t);
      for (int s = 0; s < c; s++) {
        chosen[order[s] * e + j] = true;
      }
    }
    int a = 0;
    int[] token = new int[c * e], expert = new int[c * e];
    double[] gate = new double[c * e];
    for (int i = 0; i < t; i++) {
      for (int j = 0; j < e; j++) {
        if (chosen[i * e + j]) {
          token[a] = i;
          expert[a] = j;
          gate[a] = probs[i * e + j];
          a++;
        }
      }
    }
    return new Routing(t, e, token, expert, gate, probs, lse);
  }

  /**
   * Backward through gates, the aux loss and the z-loss into the router logits, then dx += dlogits Wr and
   * dWr += dlogits^T x.
   *
   * @param dGate dLoss/dgate per assignment
   * @param auxGradPerProb dLoss/dp[t, e] from the aux loss (the same for every token), or null
   * @param zScale dLoss/d(sum_t lse_t^2), i.e. beta / N_global, or 0
   */
  public void backward(Routing r, double[] dGate, double[] auxGradPerProb, double zScale, Tensor x, Tensor wr,
      Tensor dx, Tensor dwr) {
    if (spec.router() == RouterKind.HASH) {
      return;
    }
    int t = r.tokens(), e = r.experts();
    double[] p = r.probs(), dp = new double[t * e];
    if (spec.router() == RouterKind.TOPK && spec.normTopk()) {
      // g_j = p_j / S: dp_j = (dg_j - sum_i dg_i g_i) / S per token.
      int k = spec.topK();
      for (int i = 0; i < t; i++) {
        double s = 0, dot = 0;
        for (int j = 0; j < k; j++) {
          int a = i * k + j;
          s += p[i * e + r.expert()[a]];
          dot += dGate[a] * r.gate()[a];
        }
        for (int j = 0; j < k; j++) {
          int a = i * k + j;
          dp[i * e + r.expert()[a]] += (dGate[a] - dot) / s;
        }
      }
    } else {
      for (int a = 0; a < r.assignments(); a++) {
        dp[r.token()[a] * e + r.expert()[a]] += dGate[a];
      }
    }
    double[] dl = new double[t * e];
    for (int i = 0; i < t; i++) {
      double dot = 0;
      for (int j = 0; j < e; j++) {
        if (auxGradPerProb != null) {
          dp[i * e + j] += auxGradPerProb[j];
        }
        dot += dp[i * e + j] * p[i * e + j];
      }
      for (int j = 0; j < e; j++) {
        dl[i * e + j] = p[i * e + j] * (dp[i * e + j] - dot) + 2 * zScale * r.lse()[i] * p[i * e + j];
      }
    }
    dLogits = x.backend().ensure(dLogits, x.dtype(), t, e);
    x.backend().fromDoubles(dl, dLogits);
    Linear.backward(x, wr, dLogits, dx, dwr, true);
  }
}

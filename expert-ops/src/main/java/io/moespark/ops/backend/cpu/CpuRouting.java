package io.moespark.ops.backend.cpu;

import io.moespark.ops.moe.Router;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The routing ops of the CPU backend ({@link io.moespark.ops.backend.Backend} documents each): softmax,
 * top-k, expert choice, hash, the dispatch plan and the router's backward, in double arithmetic in one
 * thread. The [T, E] matrices are small next to the GEMMs around them; one thread keeps every choice and
 * every sum in a fixed order.
 */
final class CpuRouting {
  private CpuRouting() {}

  static void softmax(INDArray logits, INDArray probsOut, INDArray lseOut) {
    int t = (int) logits.size(0), e = (int) logits.size(1);
    Raw l = Raw.of(logits), probs = Raw.of(probsOut), lse = Raw.of(lseOut);
    double[] row = new double[e];
    for (int i = 0; i < t; i++) {
      double max = Double.NEGATIVE_INFINITY;
      for (int j = 0; j < e; j++) {
        max = Math.max(max, l.get(i * e + j));
      }
      double sum = 0;
      for (int j = 0; j < e; j++) {
        row[j] = Math.exp(l.get(i * e + j) - max);
        sum += row[j];
      }
      for (int j = 0; j < e; j++) {
        probs.set(i * e + j, row[j] / sum);
      }
      lse.set(i, max + Math.log(sum));
    }
  }

  static void topK(INDArray probsIn, INDArray biasIn, int k, boolean normalize, INDArray tokenOut,
      INDArray expertOut, INDArray gateOut) {
    int t = (int) probsIn.size(0), e = (int) probsIn.size(1);
    Raw probs = Raw.of(probsIn), bias = biasIn == null ? null : Raw.of(biasIn);
    Raw token = Raw.of(tokenOut), expert = Raw.of(expertOut), gate = Raw.of(gateOut);
    boolean[] taken = new boolean[e];
    double[] g = new double[k];
    for (int i = 0; i < t; i++) {
      java.util.Arrays.fill(taken, false);
      double sum = 0;
      for (int s = 0; s < k; s++) {
        int best = -1;
        double bestScore = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < e; j++) {
          double score = probs.get(i * e + j) + (bias == null ? 0 : bias.get(j));
          if (!taken[j] && (best < 0 || score > bestScore)) {
            best = j;
            bestScore = score;
          }
        }
        taken[best] = true;
        token.set(i * k + s, i);
        expert.set(i * k + s, best);
        g[s] = probs.get(i * e + best);
        sum += g[s];
      }
      for (int s = 0; s < k; s++) {
        gate.set(i * k + s, normalize ? g[s] / sum : g[s]);
      }
    }
  }

  static void expertChoice(INDArray probsIn, int capacity, INDArray tokenOut, INDArray expertOut, INDArray gateOut) {
    int t = (int) probsIn.size(0), e = (int) probsIn.size(1);
    Raw probs = Raw.of(probsIn), token = Raw.of(tokenOut), expert = Raw.of(expertOut), gate = Raw.of(gateOut);
    boolean[] chosen = new boolean[t * e];
    double[] column = new double[t];
    for (int j = 0; j < e; j++) {
      for (int i = 0; i < t; i++) {
        column[i] = probs.get(i * e + j);
      }
      int[] order = IndexSort.descending(column, t);
      for (int s = 0; s < capacity; s++) {
        chosen[order[s] * e + j] = true;
      }
    }
    int a = 0;
    for (int i = 0; i < t; i++) {
      for (int j = 0; j < e; j++) {
        if (chosen[i * e + j]) {
          token.set(a, i);
          expert.set(a, j);
          gate.set(a, probs.get(i * e + j));
          a++;
        }
      }
    }
  }

  static void hash(INDArray idsIn, int experts, INDArray tokenOut, INDArray expertOut, INDArray gateOut) {
    int t = (int) idsIn.length();
    Raw ids = Raw.of(idsIn), token = Raw.of(tokenOut), expert = Raw.of(expertOut), gate = Raw.of(gateOut);
    for (int i = 0; i < t; i++) {
      token.set(i, i);
      expert.set(i, Router.hashExpert(ids.index(i), experts));
      gate.set(i, 1.0);
    }
  }

  static void planDispatch(INDArray tokenIn, INDArray expertIn, INDArray gateIn, INDArray probsIn, INDArray lseIn,
      int capacity, boolean byGate, INDArray expertOrderIn, INDArray slotOut, INDArray sendTokenOut,
      INDArray statsOut) {
    int a = (int) expertIn.length(), e = (int) expertOrderIn.length();
    Raw token = Raw.of(tokenIn), expert = Raw.of(expertIn), order = Raw.of(expertOrderIn);
    Raw slot = Raw.of(slotOut), sendToken = Raw.of(sendTokenOut), stats = Raw.of(statsOut);
    int[] priority = null;
    if (byGate) {
      double[] g = new double[a];
      Raw gate = Raw.of(gateIn);
      for (int i = 0; i < a; i++) {
        g[i] = gate.get(i);
      }
      priority = IndexSort.descending(g, a);
    }
    long[] assigned = new long[e], kept = new long[e];
    boolean[] keep = new boolean[a];
    for (int i = 0; i < a; i++) {
      assigned[expert.index(i)]++;
      int as = priority == null ? i : priority[i];
      if (kept[expert.index(as)] < capacity) {
        keep[as] = true;
        kept[expert.index(as)]++;
      }
    }
    int[] cursor = new int[e];
    int row = 0;
    for (int j = 0; j < e; j++) {
      int x = order.index(j);
      cursor[x] = row;
      row += (int) kept[x];
    }
    for (int i = 0; i < a; i++) {
      if (keep[i]) {
        int s = cursor[expert.index(i)]++;
        slot.set(i, s);
        sendToken.set(s, token.index(i));
      } else {
        slot.set(i, -1);
      }
    }
    double[] g = new double[3 * e + 1];
    for (int j = 0; j < e; j++) {
      g[j] = assigned[j];
      g[e + j] = kept[j];
    }
    if (probsIn != null) {
      Raw probs = Raw.of(probsIn), lse = Raw.of(lseIn);
      int t = (int) lseIn.length();
      for (int i = 0; i < t; i++) {
        for (int j = 0; j < e; j++) {
          g[2 * e + j] += probs.get(i * e + j);
        }
        g[3 * e] += lse.get(i) * lse.get(i);
      }
    }
    for (int j = 0; j < g.length; j++) {
      stats.set(j, g[j]);
    }
  }

  static void backward(INDArray tokenIn, INDArray expertIn, INDArray gateIn, INDArray dGateIn, INDArray probsIn,
      INDArray lseIn, INDArray auxIn, double zScale, int normalizedTopK, INDArray dLogitsOut) {
    int t = (int) probsIn.size(0), e = (int) probsIn.size(1), assignments = (int) expertIn.length();
    Raw token = Raw.of(tokenIn), expert = Raw.of(expertIn), gate = Raw.of(gateIn), dGate = Raw.of(dGateIn);
    Raw p = Raw.of(probsIn), lse = Raw.of(lseIn), aux = auxIn == null ? null : Raw.of(auxIn);
    Raw dLogits = Raw.of(dLogitsOut);
    double[] dp = new double[t * e];
    int k = normalizedTopK;
    if (k > 0) {
      // g_j = p_j / S: dp_j = (dg_j - sum_i dg_i g_i) / S per token.
      for (int i = 0; i < t; i++) {
        double s = 0, dot = 0;
        for (int j = 0; j < k; j++) {
          int a = i * k + j;
          s += p.get(i * e + expert.index(a));
          dot += dGate.get(a) * gate.get(a);
        }
        for (int j = 0; j < k; j++) {
          int a = i * k + j;
          dp[i * e + expert.index(a)] += (dGate.get(a) - dot) / s;
        }
      }
    } else {
      for (int a = 0; a < assignments; a++) {
        dp[token.index(a) * e + expert.index(a)] += dGate.get(a);
      }
    }
    for (int i = 0; i < t; i++) {
      double dot = 0;
      for (int j = 0; j < e; j++) {
        if (aux != null) {
          dp[i * e + j] += aux.get(j);
        }
        dot += dp[i * e + j] * p.get(i * e + j);
      }
      for (int j = 0; j < e; j++) {
        double pij = p.get(i * e + j);
        dLogits.set(i * e + j, pij * (dp[i * e + j] - dot) + 2 * zScale * lse.get(i) * pij);
      }
    }
  }
}

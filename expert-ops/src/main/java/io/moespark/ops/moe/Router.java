package io.moespark.ops.moe;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.nn.Linear;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * The router as a forward/backward pair, on the backend: logits from a GEMM, then softmax, selection and
 * gates in double ({@link Backend#routerSoftmax}, {@code route*}), which makes selection exact and
 * reproducible; nothing returns to the host. Ties choose the lower expert (top-k) or the earlier token
 * (expert choice). Holds its buffers from step to step.
 */
public final class Router {
  private final MoeSpec spec;
  private Tensor logits;
  private Tensor probs;
  private Tensor lse;
  private Tensor token;
  private Tensor expert;
  private Tensor gate;
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
   * @param tokenIds the input token ids of the T rows (I32; hash routing only)
   * @param wr router weight [E, D], null for hash routing
   * @param bias per-expert selection bias (F64 [E], top-k only), never part of the gates
   */
  public Routing forward(Tensor x, Tensor tokenIds, Tensor wr, Tensor bias) {
    Backend be = x.backend();
    int t = (int) x.size(0), e = spec.experts();
    if (spec.router() == RouterKind.HASH) {
      assignments(be, t);
      be.routeHash(tokenIds, e, token, expert, gate);
      return new Routing(t, e, t, token, expert, gate, null, null);
    }
    logits = be.ensure(logits, x.dtype(), t, e);
    probs = be.ensure(probs, DType.F64, t, e);
    lse = be.ensure(lse, DType.F64, t);
    Linear.forward(x, wr, logits);
    be.routerSoftmax(logits, probs, lse);
    if (spec.router() == RouterKind.TOPK) {
      int a = t * spec.topK();
      assignments(be, a);
      be.routeTopK(probs, bias, spec.topK(), spec.normTopk(), token, expert, gate);
      return new Routing(t, e, a, token, expert, gate, probs, lse);
    }
    int c = Math.min(t, spec.capacity(t));
    assignments(be, c * e);
    be.routeExpertChoice(probs, c, token, expert, gate);
    return new Routing(t, e, c * e, token, expert, gate, probs, lse);
  }

  private void assignments(Backend be, int a) {
    token = be.ensure(token, DType.I32, a);
    expert = be.ensure(expert, DType.I32, a);
    gate = be.ensure(gate, DType.F64, a);
  }

  /**
   * Backward through gates, the aux loss and the z-loss into the router logits, then dx += dlogits Wr and
   * dWr += dlogits^T x.
   *
   * @param dGate dLoss/dgate per assignment (F64)
   * @param auxGradPerProb dLoss/dp[t, e] from the aux loss (F64 [E], the same for every token), or null
   * @param zScale dLoss/d(sum_t lse_t^2), i.e. beta / N_global, or 0
   */
  public void backward(Routing r, Tensor dGate, Tensor auxGradPerProb, double zScale, Tensor x, Tensor wr,
      Tensor dx, Tensor dwr) {
    if (spec.router() == RouterKind.HASH) {
      return;
    }
    Backend be = x.backend();
    dLogits = be.ensure(dLogits, x.dtype(), r.tokens(), r.experts());
    int normalized = spec.router() == RouterKind.TOPK && spec.normTopk() ? spec.topK() : 0;
    be.routerBackward(r.token(), r.expert(), r.gate(), dGate, r.probs(), r.lse(), auxGradPerProb, zScale, normalized,
        dLogits);
    Linear.backward(x, wr, dLogits, dx, dwr, true);
  }
}

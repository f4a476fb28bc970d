package io.moespark.ops.model;

import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.MoeLayer;
import io.moespark.ops.moe.MoeStats;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.nn.Activation;
import io.moespark.ops.nn.Attention;
import io.moespark.ops.nn.Rope;
import io.moespark.ops.nn.CrossEntropy;
import io.moespark.ops.nn.Embedding;
import io.moespark.ops.nn.KvCache;
import io.moespark.ops.nn.Linear;
import io.moespark.ops.nn.RmsNorm;
import io.moespark.ops.moe.ExpertBank;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.ParamStore;
import io.moespark.ops.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;

/**
 * The decoder-only MoE transformer of DESIGN §3 on one rank: a full replica of the dense parameters and
 * this rank's shard of every MoE layer's experts. {@link #forward} keeps the activations of the step
 * for {@link #backward}, which accumulates into the parameter gradients.
 */
public final class TransformerLM {
  private final RunConfig.Model cfg;
  private final RunConfig.Moe moeCfg;
  private final ParamStore params;
  private final Param embed;
  private final Param norm;
  private final Param lmHead;
  private final Block[] blocks;
  private final List<MoeLayer> moeLayers = new ArrayList<>();

  // The step in flight: its token ids and targets on the backend (I32, the one upload of a step).
  private Tensor ids;
  private Tensor targetIds;
  /** The CE sum (F64 [1]), read once per step with the logged scalars. */
  private Tensor lossSum;
  private Tensor xFinal;
  private Tensor normFinal;
  private Tensor rstdFinal;
  private Tensor dLogits;
  // Buffers reused from step to step (allocating them costs more than filling them).
  private Tensor embedded;
  private Tensor logitsBuf;
  private Tensor dNormBuf;
  private Tensor dxBuf;
  private Tensor dnBuf;

  /** One layer: pre-norm attention and pre-norm FFN (dense or MoE), each with a residual. */
  private static final class Block {
    Param attnNorm;
    Param ffnNorm;
    Param wq;
    Param wk;
    Param wv;
    /** bq, bk, bv, or null. */
    Param[] qkvBias;
    Param wo;
    Attention attention;
    ExpertBank dense;
    MoeLayer moe;
    Tensor xIn;
    Tensor n1;
    Tensor rstd1;
    Tensor xMid;
    Tensor n2;
    Tensor rstd2;
    Tensor out;

    /** {bq, bk, bv}'s values, or null. */
    Tensor[] biases() {
      return qkvBias == null ? null : new Tensor[] {qkvBias[0].value(), qkvBias[1].value(), qkvBias[2].value()};
    }
  }

  /**
   * @param layouts the expert shard layout of each MoE layer, by layer index
   * @param backend where parameters, activations and compute live
   * @param type F32 for training; F64 for gradient checks
   */
  public TransformerLM(RunConfig.Model cfg, RunConfig.Moe moeCfg, IntFunction<ShardLayout> layouts, Backend backend,
      DType type) {
    this.cfg = cfg;
    this.moeCfg = moeCfg;
    this.params = new ParamStore(backend, type);
    long d = cfg.dModel(), v = cfg.vocabSize();
    embed = params.add("embed.weight", -1, v, d);
    blocks = new Block[cfg.nLayers()];
    boolean[] moe = moeLayers(cfg, moeCfg);
    for (int i = 0; i < blocks.length; i++) {
      Block b = new Block();
      String p = "layers." + i + ".";
      b.attnNorm = params.add(p + "attn_norm.weight", -1, d);
      b.wq = params.add(p + "attn.wq.weight", -1, d, d);
      long kv = cfg.kvHeads() * (d / cfg.nHeads()); // grouped-query attention: fewer key/value heads
      b.wk = params.add(p + "attn.wk.weight", -1, kv, d);
      b.wv = params.add(p + "attn.wv.weight", -1, kv, d);
      b.wo = params.add(p + "attn.wo.weight", -1, d, d);
      if (cfg.qkvBias()) {
        b.qkvBias = new Param[] {params.add(p + "attn.wq.bias", -1, d), params.add(p + "attn.wk.bias", -1, kv),
            params.add(p + "attn.wv.bias", -1, kv)};
      }
      b.ffnNorm = params.add(p + "ffn_norm.weight", -1, d);
      b.attention = new Attention(cfg.nHeads(), cfg.kvHeads(), new Rope(cfg.ropeTheta(), cfg.scaling()));
      if (moe[i]) {
        b.moe = new MoeLayer(i, d, moeCfg.spec(), layouts.apply(i), params);
        moeLayers.add(b.moe);
      } else {
        b.dense = new ExpertBank(Activation.SWIGLU, new Param[] {params.add(p + "ffn.w1.weight", -1, cfg.dFf(), d)},
            new Param[] {params.add(p + "ffn.w3.weight", -1, cfg.dFf(), d)},
            new Param[] {params.add(p + "ffn.w2.weight", -1, d, cfg.dFf())});
      }
      blocks[i] = b;
    }
    norm = params.add("norm.weight", -1, d);
    // Tied: the output layer is the embedding itself, whose gradient then gathers both uses (the head's
    // GEMM accumulates into it, the embedding's scatter-add after).
    lmHead = cfg.tieEmbeddings() ? embed : params.add("lm_head.weight", -1, v, d);
    params.allocate();
  }

  /**
   * The model's layer list: which layers have an MoE FFN (layer i when (i + 1) % moe.every == 0, DESIGN
   * §3), the rest a dense SwiGLU. The step program and the expert placement follow it.
   */
  public static boolean[] moeLayers(RunConfig.Model cfg, RunConfig.Moe moeCfg) {
    boolean[] moe = new boolean[cfg.nLayers()];
    for (int i = 0; i < moe.length; i++) {
      moe[i] = (i + 1) % moeCfg.every() == 0;
    }
    return moe;
  }

  /** A model holding every expert (one rank). */
  public static TransformerLM singleRank(RunConfig.Model cfg, RunConfig.Moe moeCfg, Backend backend, DType type) {
    return new TransformerLM(cfg, moeCfg, i -> ShardLayout.single(moeCfg.experts()), backend, type);
  }

  public ParamStore params() {
    return params;
  }

  public RunConfig.Model config() {
    return cfg;
  }

  public RunConfig.Moe moeConfig() {
    return moeCfg;
  }

  public List<MoeLayer> moeLayers() {
    return List.copyOf(moeLayers);
  }

  /** Every matrix N(0, 0.02), wo and w2 also scaled by 1/sqrt(2 n_layers); norm gains 1; biases 0. */
  public void init(long seed) {
    double residualScale = 1.0 / Math.sqrt(2.0 * cfg.nLayers());
    for (Param p : params.all()) {
      if (p.name().endsWith(".bias")) {
        p.value().fill(0.0);
      } else if (p.value().rank() == 1) {
        p.value().fill(1.0);
      } else {
        boolean residual = p.name().endsWith(".wo.weight") || p.name().endsWith(".w2.weight");
        Init.normal(p.value(), seed, p.name(), 0.02 * (residual ? residualScale : 1.0));
      }
    }
  }

  /** Sets the capacity factor of every MoE layer (training and evaluation may differ). */
  public void setCapacityFactor(double cf) {
    for (MoeLayer m : moeLayers) {
      m.setCapacityFactor(cf);
    }
  }

  /**
   * Training forward on this rank's B sequences of T tokens and the loss of the global batch.
   *
   * @param globalSequences sequences of the global batch (all ranks), the denominator of the means
   */
  public LossTerms forward(int[] inputs, int[] targets, int batch, int globalSequences, Exchange ex, Reducer reducer) {
    long globalTokens = (long) globalSequences * cfg.seqLen();
    Tensor logits = logits(inputs, batch, globalTokens, ex, reducer);
    CrossEntropy.forwardBackward(logits, uploadTargets(targets), globalTokens, lossSum);
    double[] terms = lossSum.toDoubles();
    dLogits = logits;
    reducer.sum(terms);
    double ce = terms[0] / globalTokens, aux = 0, z = 0;
    for (MoeLayer m : moeLayers) {
      MoeStats s = m.stats();
      aux += s.aux();
      z += s.z();
    }
    return new LossTerms(ce + moeCfg.auxLossCoef() * aux + moeCfg.zLossCoef() * z, ce, aux, z);
  }

  /** Sum over this rank's positions of the next-token CE (no aux terms, no gradient). */
  public double evalLossSum(int[] inputs, int[] targets, int batch, Exchange ex, Reducer reducer) {
    long tokens = (long) batch * cfg.seqLen();
    Tensor logits = logits(inputs, batch, tokens, ex, reducer);
    CrossEntropy.loss(logits, uploadTargets(targets), lossSum);
    return lossSum.toDoubles()[0];
  }

  private Tensor uploadTargets(int[] targets) {
    CrossEntropy.checkTargets(targets, cfg.vocabSize());
    Backend be = params.backend();
    targetIds = be.ensure(targetIds, DType.I32, targets.length);
    be.fromInts(targets, targetIds);
    return targetIds;
  }

  private Tensor logits(int[] inputs, int batch, long globalTokens, Exchange ex, Reducer reducer) {
    int seq = cfg.seqLen();
    if (inputs.length != batch * seq) {
      throw new IllegalArgumentException("expected " + batch + " x " + seq + " input tokens, got " + inputs.length);
    }
    Backend be = params.backend();
    DType type = params.type();
    long n = inputs.length, d = cfg.dModel();
    lossSum = be.ensure(lossSum, DType.F64, 1);
    Tensor x = embedTokens(inputs);
    for (Block b : blocks) {
      b.xIn = x;
      x = block(b, x, globalTokens, ex, reducer, (n1, out) -> b.attention.forward(n1, batch, seq, b.wq.value(),
          b.wk.value(), b.wv.value(), b.wo.value(), b.biases(), out));
    }
    xFinal = x;
    normFinal = be.ensure(normFinal, type, n, d);
    rstdFinal = be.ensure(rstdFinal, DType.F64, n);
    RmsNorm.forward(x, norm.value(), cfg.normEps(), normFinal, rstdFinal);
    logitsBuf = be.ensure(logitsBuf, type, n, cfg.vocabSize());
    Linear.forward(normFinal, lmHead.value(), logitsBuf);
    return logitsBuf;
  }

  /** Uploads the step's token ids (the one upload of a step) and returns their embeddings [n, D]. */
  private Tensor embedTokens(int[] tokens) {
    Backend be = params.backend();
    Embedding.checkIds(tokens, cfg.vocabSize());
    ids = be.ensure(ids, DType.I32, tokens.length);
    be.fromInts(tokens, ids);
    embedded = be.ensure(embedded, params.type(), tokens.length, cfg.dModel());
    Embedding.forward(ids, embed.value(), embedded);
    return embedded;
  }

  /** A layer's attention on its normalised input [n, D] into its output (training or generation). */
  private interface AttentionCall {
    void run(Tensor normed, Tensor out);
  }

  /**
   * One layer on x [n, D]: pre-norm attention (as {@code attend} runs it) and pre-norm FFN, each with its
   * residual; returns the layer's output.
   */
  private Tensor block(Block b, Tensor x, long globalTokens, Exchange ex, Reducer reducer, AttentionCall attend) {
    Backend be = params.backend();
    DType type = params.type();
    long n = x.size(0), d = cfg.dModel();
    b.n1 = be.ensure(b.n1, type, n, d);
    b.xMid = be.ensure(b.xMid, type, n, d);
    b.n2 = be.ensure(b.n2, type, n, d);
    b.out = be.ensure(b.out, type, n, d);
    b.rstd1 = be.ensure(b.rstd1, DType.F64, n);
    b.rstd2 = be.ensure(b.rstd2, DType.F64, n);
    RmsNorm.forward(x, b.attnNorm.value(), cfg.normEps(), b.n1, b.rstd1);
    attend.run(b.n1, b.xMid);
    b.xMid.addi(x);
    RmsNorm.forward(b.xMid, b.ffnNorm.value(), cfg.normEps(), b.n2, b.rstd2);
    if (b.moe != null) {
      b.moe.forward(b.n2, ids, globalTokens, ex, reducer, b.out);
    } else {
      b.dense.forward(b.n2, new int[] {0}, new int[] {0}, new int[] {(int) n}, b.out);
    }
    return b.out.addi(b.xMid);
  }

  /** A KV cache for one sequence of up to {@code capacity} positions, on this model's backend. */
  public KvCache newKvCache(int capacity) {
    return new KvCache(params.backend(), params.type(), blocks.length, cfg.kvHeads(), capacity,
        cfg.dModel() / cfg.nHeads());
  }

  /**
   * Generation: the next-token logits (V, on the host) after one sequence's {@code tokens}, which extend the
   * positions {@code cache} holds (the prompt into an empty cache, then one token at a time) and join it.
   * MoE layers route each position as training does over this rank's experts (every expert: a
   * single-rank model); set them dropless first.
   */
  public double[] nextLogits(int[] tokens, KvCache cache) {
    Backend be = params.backend();
    DType type = params.type();
    long n = tokens.length, d = cfg.dModel();
    Tensor x = embedTokens(tokens);
    for (int i = 0; i < blocks.length; i++) {
      Block b = blocks[i];
      int layer = i;
      x = block(b, x, n, Exchange.LOCAL, Reducer.LOCAL, (n1, out) -> b.attention.forwardCached(n1, cache, layer,
          b.wq.value(), b.wk.value(), b.wv.value(), b.wo.value(), b.biases(), out));
    }
    cache.advance((int) n);
    Tensor last = be.view(x, (n - 1) * d, 1, d); // only the last position's logits are wanted
    normFinal = be.ensure(normFinal, type, 1, d);
    rstdFinal = be.ensure(rstdFinal, DType.F64, 1);
    RmsNorm.forward(last, norm.value(), cfg.normEps(), normFinal, rstdFinal);
    logitsBuf = be.ensure(logitsBuf, type, 1, cfg.vocabSize());
    Linear.forward(normFinal, lmHead.value(), logitsBuf);
    return logitsBuf.toDoubles();
  }

  /** Accumulates the gradients of the last {@link #forward}'s total loss into the parameters. */
  public void backward(Exchange ex) {
    Backend be = params.backend();
    DType type = params.type();
    long n = ids.length(), d = cfg.dModel();
    dNormBuf = be.ensure(dNormBuf, type, n, d);
    dxBuf = be.ensure(dxBuf, type, n, d);
    dnBuf = be.ensure(dnBuf, type, n, d);
    Tensor dx = dxBuf.fill(0), dn = dnBuf;
    Linear.backward(normFinal, lmHead.value(), dLogits, dNormBuf, lmHead.grad(), false);
    RmsNorm.backward(xFinal, norm.value(), rstdFinal, dNormBuf, dx, norm.grad());
    for (int i = blocks.length - 1; i >= 0; i--) {
      Block b = blocks[i];
      dn.fill(0);
      if (b.moe != null) {
        b.moe.backward(dx, dn, ex);
      } else {
        b.dense.backward(dx, dn);
      }
      RmsNorm.backward(b.xMid, b.ffnNorm.value(), b.rstd2, dn, dx, b.ffnNorm.grad());
      dn.fill(0);
      b.attention.backward(dx, b.wq.value(), b.wk.value(), b.wv.value(), b.wo.value(), dn, b.wq.grad(),
          b.wk.grad(), b.wv.grad(), b.wo.grad(),
          b.qkvBias == null ? null : new Tensor[] {b.qkvBias[0].grad(), b.qkvBias[1].grad(), b.qkvBias[2].grad()});
      RmsNorm.backward(b.xIn, b.attnNorm.value(), b.rstd1, dn, dx, b.attnNorm.grad());
    }
    Embedding.backward(ids, dx, embed.grad());
    dLogits = null;
  }
}

package io.moespark.ops.cli;

import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.SafeTensors;
import io.moespark.ops.model.Init;
import io.moespark.ops.moe.DropPolicy;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.MoeLayer;
import io.moespark.ops.moe.MoeSpec;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.moe.RouterKind;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.nn.Activation;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.Backends;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.ParamStore;
import io.moespark.ops.tensor.Tensor;
import io.moespark.ops.train.Trainer;
import io.moespark.ops.train.StepReport;
import io.moespark.ops.train.TokenData;
import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code moe-bench layer ...}: MoE layer forward + backward (dropless; routing, layout transform and gating
 * inside the timed region) against dense GEMMs of the same FLOPs, in one run. {@code moe-bench train ...}:
 * tokens/s of the single-process trainer. Each prints one JSON line.
 */
public final class BenchMain {
  private static final String USAGE = "moe-bench layer [--experts E] [--topk K] [--d-model D] [--d-expert F] [--tokens N] [--iters I] [--seed S]\n       moe-bench train --config FILE [--steps S] [--set key=value]...\n       moe-bench fingerprint --config FILE [--steps S] [--set key=value]...";

  private BenchMain() {}

  public static void main(String[] argv) {
    Args.run("moe-bench", USAGE, argv, () -> {
      String sub = argv.length == 0 ? "" : argv[0];
      switch (sub) {
        case "layer" -> layer(new Args(argv, 1,
            Set.of("--experts", "--topk", "--d-model", "--d-expert", "--tokens", "--iters", "--seed"), Set.of()));
        case "train" -> train(new Args(argv, 1, Set.of("--config", "--steps", "--set"), Set.of()));
        case "fingerprint" -> fingerprint(new Args(argv, 1, Set.of("--config", "--steps", "--set"), Set.of()));
        default -> throw new ConfigException("expected a subcommand: layer, train or fingerprint");
      }
    });
  }

  private static void layer(Args a) {
    int e = a.integer("--experts", 8), k = a.integer("--topk", 2), d = a.integer("--d-model", 512);
    int f = a.integer("--d-expert", 1024), n = a.integer("--tokens", 8192), iters = a.integer("--iters", 5);
    if (k > e) {
      throw new ConfigException("--topk " + k + " exceeds --experts " + e);
    }
    MoeSpec spec = new MoeSpec(e, k, f, 0, Activation.SWIGLU, RouterKind.TOPK, true, 0, DropPolicy.POSITION,
        0.01, 0.001);
    Backend be = Backends.host();
    ParamStore ps = new ParamStore(be, DType.F32);
    MoeLayer layer = new MoeLayer(0, d, spec, ShardLayout.single(e), ps);
    ps.allocate();
    long seed = a.integer("--seed", 1);
    for (Param p : ps.all()) {
      Init.normal(p.value(), seed, p.name(), 0.02);
    }
    Tensor x = be.empty(DType.F32, n, d), dy = be.empty(DType.F32, n, d), y = be.empty(DType.F32, n, d);
    Tensor dx = be.empty(DType.F32, n, d);
    Init.normal(x, seed, "x", 1.0);
    Init.normal(dy, seed, "dy", 1.0);
    Tensor ids = be.zeros(DType.I32, n);
    long assignments = (long) n * k;
    // Dense reference: the nine GEMMs of one FFN over all A = N k rows, the same shapes and FLOPs as the
    // experts' GEMMs. Iterations alternate MoE and dense so that machine drift hits both alike.
    Tensor xa = be.empty(DType.F32, assignments, d), dya = be.empty(DType.F32, assignments, d);
    Tensor dxa = be.empty(DType.F32, assignments, d), h1 = be.empty(DType.F32, assignments, f);
    Tensor h3 = be.empty(DType.F32, assignments, f), act = be.empty(DType.F32, assignments, f);
    Tensor w1 = be.empty(DType.F32, f, d), w3 = be.empty(DType.F32, f, d), w2 = be.empty(DType.F32, d, f);
    Tensor g1 = be.empty(DType.F32, f, d), g3 = be.empty(DType.F32, f, d), g2 = be.empty(DType.F32, d, f);
    for (Tensor m : new Tensor[] {xa, dya, h1, h3, act, w1, w3, w2}) {
      Init.normal(m, seed, "dense", 0.02);
    }
    double[] moeTimes = new double[iters], denseTimes = new double[iters];
    for (int i = -1; i < iters; i++) {
      long t0 = System.nanoTime();
      layer.forward(x, ids, n, Exchange.LOCAL, Reducer.LOCAL, y);
      dx.fill(0);
      layer.backward(dy, dx, Exchange.LOCAL);
      long t1 = System.nanoTime();
      be.gemm(xa, w1, h1, false, true, 0);
      be.gemm(xa, w3, h3, false, true, 0);
      be.gemm(act, w2, dxa, false, true, 0);
      be.gemm(dya, act, g2, true, false, 0);
      be.gemm(dya, w2, act, false, false, 0);
      be.gemm(h1, xa, g1, true, false, 0);
      be.gemm(h1, w1, dxa, false, false, 0);
      be.gemm(h3, xa, g3, true, false, 0);
      be.gemm(h3, w3, dxa, false, false, 1);
      long t2 = System.nanoTime();
      if (i >= 0) {
        moeTimes[i] = (t1 - t0) / 1e9;
        denseTimes[i] = (t2 - t1) / 1e9;
      }
    }
    if (layer.stats().kept() != assignments) {
      throw new IllegalStateException("benchmark expected dropless routing");
    }
    double flops = 18.0 * assignments * d * f;
    double moe = flops / median(moeTimes) / 1e9, dense = flops / median(denseTimes) / 1e9;
    System.out.printf(Locale.ROOT,
        "{\"experts\": %d, \"topk\": %d, \"d_model\": %d, \"d_expert\": %d, \"tokens\": %d, \"iters\": %d, "
            + "\"moe_seconds\": %.4f, \"dense_seconds\": %.4f, \"moe_gflops\": %.2f, \"dense_gflops\": %.2f, "
            + "\"ratio\": %.3f}%n",
        e, k, d, f, n, iters, median(moeTimes), median(denseTimes), moe, dense, moe / dense);
  }

  private static void train(Args a) {
    RunConfig cfg = ConfigLoader.load(Path.of(a.required("--config")), a.all("--set"));
    int steps = a.integer("--steps", 10);
    int[] tokens = TokenData.load(Path.of(cfg.data().path()), cfg.data().format(), "data.path");
    TokenData.checkVocab(tokens, cfg.model().vocabSize(), "data.path " + cfg.data().path());
    Trainer trainer = Trainer.singleProcess(cfg, TokenData.split(tokens, cfg.data().valFraction()).train(),
        Backends.forRank(cfg.parallel(), "0"), DType.F32);
    trainer.step(); // warm-up: first-touch allocation and JIT
    double seconds = 0;
    long count = 0;
    for (int s = 0; s < steps; s++) {
      StepReport r = trainer.step();
      seconds += r.seconds();
      count += r.tokens();
    }
    System.out.printf(Locale.ROOT, "{\"runner\": \"single-process\", \"steps\": %d, \"tokens_per_s\": %.1f, "
        + "\"seconds_per_step\": %.4f}%n", steps, count / seconds, seconds / steps);
  }

  /**
   * The bits of a short single-process run, for before/after comparisons of a change that must not move
   * them ({@code tools/identity-check.sh}): per step the loss terms and gradient norm as hex bits, then the
   * validation loss and the SHA-256 of the checkpoint shard's bytes. One line per item.
   */
  private static void fingerprint(Args a) throws Exception {
    RunConfig cfg = ConfigLoader.load(Path.of(a.required("--config")), a.all("--set"));
    int steps = a.integer("--steps", 5);
    int[] tokens = TokenData.load(Path.of(cfg.data().path()), cfg.data().format(), "data.path");
    TokenData.Split split = TokenData.split(tokens, cfg.data().valFraction());
    Trainer trainer = Trainer.singleProcess(cfg, split.train(), Backends.forRank(cfg.parallel(), "0"), DType.F32);
    for (int s = 0; s < steps; s++) {
      StepReport r = trainer.step();
      System.out.printf(Locale.ROOT, "step %d loss %s ce %s aux %s z %s norm %s%n", s, bits(r.loss().total()),
          bits(r.loss().ce()), bits(r.loss().aux()), bits(r.loss().z()), bits(r.gradNorm()));
    }
    System.out.println("eval " + bits(trainer.evaluate(split.val())));
    ByteArrayOutputStream shard = new ByteArrayOutputStream();
    SafeTensors.write(trainer.checkpointTensors(), Map.of(), shard);
    byte[] sha = MessageDigest.getInstance("SHA-256").digest(shard.toByteArray());
    System.out.println("checkpoint " + HexFormat.of().formatHex(sha));
  }

  private static String bits(double v) {
    return Long.toHexString(Double.doubleToRawLongBits(v));
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }
}

package io.moespark.ops.cli;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.Backends;
import io.moespark.ops.backend.OpCases;
import io.moespark.ops.backend.cuda.CudaBackend;
import io.moespark.ops.backend.cuda.HostDeviceLayer;
import io.moespark.ops.collective.InProcessGroup;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.StepReport;
import io.moespark.ops.train.TokenData;
import io.moespark.ops.train.Trainer;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;

/**
 * The GPU check (issue 18's bundle, tools/gpu-check.sh): {@code record} runs where the bundle is built, on
 * the CPU backend, and writes what the GPU must reproduce; {@code run} runs on the GPU node, without ND4J:
 * (a) every op case ({@link OpCases}) against the recorded CPU outputs, (b) the parity config's first steps
 * in fp32 against the recorded CPU losses (relative difference <= 1e-4 per step), (c) two ranks sharing the
 * GPU against one rank (1e-5, the project's rule for rank counts), (d) tokens/s of the bench config in tf32
 * and bf16, one JSON line each for the PyTorch comparison script. {@code --device host} runs the same on
 * the CPU through the host device layer (CI's dry run of the bundle).
 */
public final class GpuCheckMain {
  private static final String USAGE = "moe-gpu-check record --out DIR --config TINY_YAML --data CORPUS [--steps N]"
      + " [--set key=value]...\n"
      + "       moe-gpu-check run --recorded DIR --config TINY_YAML --data CORPUS [--bench BENCH_YAML] [--device cuda|host]"
      + " [--steps N] [--two-rank-steps N] [--bench-steps N] [--bench-out FILE] [--set key=value]...";
  static final String OPS = "ops.bin", LOSSES = "losses.txt";

  private GpuCheckMain() {}

  public static void main(String[] argv) {
    Args.run("moe-gpu-check", USAGE, argv, () -> {
      String sub = argv.length == 0 ? "" : argv[0];
      switch (sub) {
        case "record" -> record(new Args(argv, 1, Set.of("--out", "--config", "--data", "--steps", "--set"), Set.of()));
        case "run" -> {
          boolean ok = run(new Args(argv, 1, Set.of("--recorded", "--config", "--bench", "--data", "--device",
              "--steps", "--two-rank-steps", "--bench-steps", "--bench-out", "--set"), Set.of()), System.out);
          if (!ok) {
            System.exit(1);
          }
        }
        default -> throw new ConfigException("expected a subcommand: record or run");
      }
    });
  }

  /** The config file named by {@code option}, on the given corpus, with the --set overrides (the parity config's). */
  private static RunConfig config(Args a, String option, boolean overrides) {
    List<String> sets = new ArrayList<>(List.of("data.path=" + a.required("--data")));
    if (overrides) {
      sets.addAll(a.all("--set"));
    }
    return ConfigLoader.load(Path.of(a.required(option)), sets);
  }

  private static int[] tokens(RunConfig c) {
    return TokenData.split(TokenData.load(Path.of(c.data().path()), "auto", "corpus"), c.data().valFraction()).train();
  }

  /** The CPU backend's op outputs and losses, written atomically into --out. */
  static void record(Args a) throws IOException {
    Path out = Path.of(a.required("--out"));
    Files.createDirectories(out);
    Map<String, List<OpCases.Output>> ops = OpCases.runAll(Backends.host());
    Path tmp = out.resolve(OPS + ".tmp");
    try (DataOutputStream o = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp)))) {
      OpCases.write(ops, o);
    }
    Files.move(tmp, out.resolve(OPS), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    RunConfig c = config(a, "--config", true);
    double[] losses = losses(Trainer.singleProcess(c, tokens(c), Backends.forRank(c.parallel(), null), DType.F32),
        a.integer("--steps", 30));
    StringBuilder sb = new StringBuilder();
    for (double l : losses) {
      sb.append(String.format(Locale.ROOT, "%.17g%n", l));
    }
    Files.writeString(out.resolve(LOSSES + ".tmp"), sb);
    Files.move(out.resolve(LOSSES + ".tmp"), out.resolve(LOSSES), StandardCopyOption.ATOMIC_MOVE,
        StandardCopyOption.REPLACE_EXISTING);
  }

  private static double[] losses(Trainer t, int steps) {
    double[] l = new double[steps];
    for (int s = 0; s < steps; s++) {
      l[s] = t.step().loss().total();
    }
    return l;
  }

  /** Runs (a) to (d); true when (a) to (c) pass. A device that cannot be opened is one line, exit 2. */
  static boolean run(Args a, PrintStream out) throws Exception {
    boolean host = switch (a.optional("--device", "cuda")) {
      case "cuda" -> false;
      case "host" -> true;
      default -> throw new ConfigException("--device: expected cuda or host, got " + a.optional("--device", ""));
    };
    Function<RunConfig.Precision, Backend> device = p -> host ? new CudaBackend(new HostDeviceLayer(), p)
        : Backends.forRank(new RunConfig.Parallel(1, RunConfig.Dispatch.DIRECT, 1, 1, RunConfig.Transport.SOCKET, 0,
            RunConfig.Device.CUDA, p, RunConfig.Placement.FIXED, java.util.List.of(), 1, 1, 0, 0, 0), "0");
    Backend first = device.apply(RunConfig.Precision.FP32); // no GPU: one line, exit 2, before anything runs
    out.println("device: " + first.name());
    Path recorded = Path.of(a.required("--recorded"));
    boolean ok = true;

    // (a) the op cases against the CPU backend's recorded outputs.
    Map<String, List<OpCases.Output>> want;
    try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(recorded.resolve(OPS))))) {
      want = OpCases.read(in);
    }
    List<String> bad = OpCases.compare(want, OpCases.runAll(first), line -> out.println("  op " + line));
    bad.forEach(b -> out.println("  MISMATCH " + b));
    ok &= report(out, "(a) op cases against the CPU backend", bad.isEmpty());

    // (b) the parity config in fp32 against the CPU trainer's losses.
    RunConfig tiny = config(a, "--config", true);
    int[] tokens = tokens(tiny);
    List<Double> cpu = Files.readAllLines(recorded.resolve(LOSSES)).stream().map(Double::parseDouble).toList();
    int steps = Math.min(a.integer("--steps", cpu.size()), cpu.size());
    double[] one = losses(Trainer.singleProcess(tiny, tokens, first, DType.F32), steps);
    double worst = 0;
    for (int s = 0; s < steps; s++) {
      worst = Math.max(worst, Math.abs(one[s] - cpu.get(s)) / Math.abs(cpu.get(s)));
    }
    out.printf(Locale.ROOT, "  %d steps: loss %.6f -> %.6f (CPU %.6f -> %.6f), worst relative difference %.2e%n",
        steps, one[0], one[steps - 1], cpu.get(0), cpu.get(steps - 1), worst);
    ok &= report(out, "(b) fp32 steps against the CPU trainer (<= 1e-4 per step)", worst <= 1e-4);

    // (c) two ranks sharing the device against the one rank of (b).
    int twoSteps = Math.min(a.integer("--two-rank-steps", 10), steps);
    double[] two = twoRanks(tiny, tokens, () -> device.apply(RunConfig.Precision.FP32), twoSteps);
    double worstTwo = 0;
    for (int s = 0; s < twoSteps; s++) {
      worstTwo = Math.max(worstTwo, Math.abs(two[s] - one[s]) / Math.abs(one[s]));
    }
    out.printf(Locale.ROOT, "  %d steps, worst relative difference %.2e%n", twoSteps, worstTwo);
    ok &= report(out, "(c) two ranks on the device against one rank (<= 1e-5 per step)", worstTwo <= 1e-5);

    // (d) tokens/s of the bench config in tf32 and bf16 (the PyTorch comparison reads these lines).
    if (a.optional("--bench", null) != null) {
      RunConfig bench = config(a, "--bench", false);
      int[] benchTokens = tokens(bench);
      StringBuilder lines = new StringBuilder();
      for (RunConfig.Precision p : List.of(RunConfig.Precision.TF32, RunConfig.Precision.BF16)) {
        String line = bench(bench, benchTokens, device.apply(p), p, a.integer("--bench-steps", 10));
        out.println("  " + line);
        lines.append(line).append('\n');
      }
      if (a.optional("--bench-out", null) != null) {
        Files.writeString(Path.of(a.optional("--bench-out", null)), lines);
      }
    }
    out.println(ok ? "gpu-check: (a) to (c) passed" : "gpu-check: FAILED");
    return ok;
  }

  private static boolean report(PrintStream out, String what, boolean ok) {
    out.println((ok ? "ok     " : "FAILED ") + what);
    return ok;
  }

  /** Rank 0's losses of {@code steps} steps of two ranks in one process, each with its own backend. */
  private static double[] twoRanks(RunConfig c, int[] tokens, java.util.function.Supplier<Backend> backends, int steps)
      throws Exception {
    int ranks = 2, experts = c.moe().experts();
    InProcessGroup group = new InProcessGroup(ranks);
    ExecutorService pool = Executors.newFixedThreadPool(ranks);
    try {
      List<Future<double[]>> runs = new ArrayList<>();
      for (int r = 0; r < ranks; r++) {
        int rank = r;
        runs.add(pool.submit(() -> {
          // Made on the rank's thread: a GPU backend's context is bound where it is used.
          Trainer t = new Trainer(c, tokens, backends.get(), DType.F32, rank, ranks,
              l -> ShardLayout.contiguous(experts, ranks, rank));
          double[] l = new double[steps];
          for (int s = 0; s < steps; s++) {
            l[s] = t.step(group.exchange(rank), group.reducer(rank)).loss().total();
          }
          return l;
        }));
      }
      double[] rank0 = runs.get(0).get();
      runs.get(1).get();
      return rank0;
    } finally {
      pool.shutdownNow();
    }
  }

  /** One JSON line: tokens/s over {@code steps} timed steps after three warm-up steps, and the active parameters. */
  private static String bench(RunConfig c, int[] tokens, Backend be, RunConfig.Precision p, int steps) {
    Trainer t = Trainer.singleProcess(c, tokens, be, DType.F32);
    for (int s = 0; s < 3; s++) {
      t.step();
    }
    long start = System.nanoTime();
    StepReport last = null;
    for (int s = 0; s < steps; s++) {
      last = t.step();
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    long total = 0, expert = 0;
    for (Param q : t.model().params().all()) {
      total += q.length();
      expert += q.isExpert() ? q.length() : 0;
    }
    long active = total - expert + expert * c.moe().topK() / c.moe().experts();
    return String.format(Locale.ROOT, "{\"precision\":\"%s\",\"tokens_per_s\":%.1f,\"steps\":%d,\"tokens_per_step\":%d,"
        + "\"active_params\":%d,\"loss\":%.6f,\"device\":\"%s\"}", p.key(), steps * last.tokens() / seconds, steps,
        last.tokens(), active, last.loss().total(), be.name());
  }
}

package io.moespark.ops.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.backend.cuda.CudaBackend;
import io.moespark.ops.backend.cuda.HostDeviceLayer;
import io.moespark.ops.collective.InProcessGroup;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Experts moved between ranks in memory after step 2 of 4 (each layer its own new placement, E not a
 * multiple of R): the run computes the same model as the run whose experts stayed, bit for bit in float64
 * (dropless and with capacity dropping, which drops the same tokens), and its parameters and both AdamW
 * moments end equal.
 */
class ExpertMoveTest {
  static final Path CORPUS = Path.of("..", "data", "corpus", "moby-dick.txt.gz").toAbsolutePath().normalize();

  /** What a run ends with: rank 0's losses and kept-token counts per step, every tensor by name. */
  record Run(List<Double> losses, List<String> kept, Map<String, double[]> tensors) {}

  @ParameterizedTest(name = "R={0} E={1} {2} cf={3}")
  @CsvSource({"2, 5, topk, 0", "3, 5, topk, 0", "3, 7, hash, 0", "2, 5, topk, 1.0"})
  void movedExpertsComputeTheSameModel(int ranks, int experts, String router, double cf) throws Exception {
    RunConfig cfg = cfg(experts, router, cf);
    IntFunction<int[]> before = l -> ShardLayout.contiguous(experts, ranks, 0).owner();
    IntFunction<int[]> after = l -> { // round robin, rotated per layer: expert 0 leaves rank 0 in both layers
      int[] o = new int[experts];
      for (int e = 0; e < experts; e++) {
        o[e] = (e + l + 1) % ranks;
      }
      return o;
    };
    Run fixed = run(cfg, ranks, single(before), Map.of(), r -> CpuBackend.INSTANCE, DType.F64);
    Run moved = run(cfg, ranks, single(before), Map.of(2, single(after)), r -> CpuBackend.INSTANCE, DType.F64);
    assertNotEquals(java.util.Arrays.toString(before.apply(0)), java.util.Arrays.toString(after.apply(0)));
    assertEquals(fixed.losses(), moved.losses());
    assertEquals(fixed.kept(), moved.kept());
    assertEquals(fixed.tensors().keySet(), moved.tensors().keySet());
    for (String name : fixed.tensors().keySet()) {
      assertArrayEquals(fixed.tensors().get(name), moved.tensors().get(name), 0.0, name);
    }
  }

  /**
   * Replicas added after step 1 (expert 0 on every rank, one more expert on two ranks, per layer) and
   * dropped again after step 3 (the experts laid out round robin). The run differs from the fixed one only
   * in the order in which a replicated expert's per-source gradient parts are added (at most R - 1
   * roundings of 2^-53 relative per element, then two AdamW steps that scale a relative change of the
   * gradient into one of the same order in the update): 1e-10 relative plus 1e-10 absolute bounds that with
   * a margin of about 10^5. The forward is the fixed run's per (source, expert) segment, so the same tokens
   * are kept and dropped.
   */
  @ParameterizedTest(name = "R={0} E={1} {2} cf={3}")
  @CsvSource({"2, 5, topk, 0", "3, 5, topk, 0", "3, 7, hash, 0", "3, 5, topk, 1.0"})
  void replicatedExpertsComputeTheSameModel(int ranks, int experts, String router, double cf) throws Exception {
    RunConfig cfg = cfg(experts, router, cf);
    IntFunction<int[][]> before = single(l -> ShardLayout.contiguous(experts, ranks, 0).owner());
    Run fixed = run(cfg, ranks, before, Map.of(), r -> CpuBackend.INSTANCE, DType.F64);
    Run moved = run(cfg, ranks, before, replicasThenRoundRobin(experts, ranks), r -> CpuBackend.INSTANCE, DType.F64);
    assertEquals(fixed.kept(), moved.kept());
    assertEquals(fixed.tensors().keySet(), moved.tensors().keySet());
    for (int s = 0; s < fixed.losses().size(); s++) {
      double a = fixed.losses().get(s), b = moved.losses().get(s);
      assertTrue(Math.abs(a - b) <= 1e-10 * (1 + Math.abs(a)), "step " + s + ": " + a + " vs " + b);
    }
    for (String name : fixed.tensors().keySet()) {
      double[] a = fixed.tensors().get(name), b = moved.tensors().get(name);
      for (int i = 0; i < a.length; i++) {
        assertTrue(Math.abs(a[i] - b[i]) <= 1e-10 * (1 + Math.abs(a[i])), name + "[" + i + "]: " + a[i] + " vs " + b[i]);
      }
    }
  }

  /**
   * The same replicas on the CUDA backend's code over the host device layer (float32, one device layer per
   * rank): the run equals the CPU backend's within 1e-5 of max(1, |w|), the tolerance between the backends
   * (CudaTrainerStepTest): the replicas' gradient exchange and the moves' copies run on device tensors.
   */
  @Test
  void onTheCudaBackendsHostLayerReplicasComputeTheCpusModel() throws Exception {
    int ranks = 2, experts = 5;
    RunConfig cfg = cfg(experts, "topk", 0);
    IntFunction<int[][]> before = single(l -> ShardLayout.contiguous(experts, ranks, 0).owner());
    Map<Integer, IntFunction<int[][]>> moves = replicasThenRoundRobin(experts, ranks);
    Run cpu = run(cfg, ranks, before, moves, r -> CpuBackend.INSTANCE, DType.F32);
    Run cuda;
    try (HostDeviceLayer d0 = new HostDeviceLayer(); HostDeviceLayer d1 = new HostDeviceLayer()) {
      HostDeviceLayer[] devices = {d0, d1};
      cuda = run(cfg, ranks, before, moves, r -> new CudaBackend(devices[r]), DType.F32);
    }
    assertEquals(cpu.kept(), cuda.kept());
    assertEquals(cpu.tensors().keySet(), cuda.tensors().keySet());
    for (String name : cpu.tensors().keySet()) {
      double[] a = cpu.tensors().get(name), b = cuda.tensors().get(name);
      double diff = 0, norm = 0;
      for (int i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        norm = Math.max(norm, Math.abs(a[i]));
      }
      assertTrue(diff <= 1e-5 * Math.max(1, norm), name + ": max difference " + diff);
    }
  }

  /**
   * Replicas after step 1 (expert 0 on every rank, expert 1 + layer on the last two ranks), dropped after
   * step 3 for a round robin rotated per layer.
   */
  static Map<Integer, IntFunction<int[][]>> replicasThenRoundRobin(int experts, int ranks) {
    IntFunction<int[][]> before = single(l -> ShardLayout.contiguous(experts, ranks, 0).owner());
    IntFunction<int[][]> replicated = l -> {
      int[][] h = before.apply(l);
      h[0] = java.util.stream.IntStream.range(0, ranks).toArray();
      h[1 + l] = new int[] {ranks - 2, ranks - 1};
      return h;
    };
    IntFunction<int[][]> roundRobin = single(l -> {
      int[] o = new int[experts];
      for (int e = 0; e < experts; e++) {
        o[e] = (e + l + 1) % ranks;
      }
      return o;
    });
    return Map.of(1, replicated, 3, roundRobin);
  }

  /** A small two-layer model, every layer MoE, top-2 (top-1 for hash routing). */
  static RunConfig cfg(int experts, String router, double cf) {
    return ConfigLoader.load(null, List.of("model.vocab_size=256", "model.d_model=16", "model.n_layers=2",
        "model.n_heads=2", "model.d_ff=16", "model.seq_len=8", "moe.every=1", "moe.experts=" + experts,
        "moe.router=" + router, "moe.top_k=" + (router.equals("hash") ? 1 : 2), "moe.d_expert=8",
        "moe.capacity_factor=" + cf, "train.batch_size=6", "train.warmup_steps=1"));
  }

  /** Each layer's owners as one holder per expert. */
  static IntFunction<int[][]> single(IntFunction<int[]> owners) {
    return l -> java.util.Arrays.stream(owners.apply(l)).mapToObj(o -> new int[] {o}).toArray(int[][]::new);
  }

  /**
   * Four steps on R threads from the layouts {@code start}; before step s of {@code moves}, the experts move
   * to its holders. Rank 0's losses and kept counts; each tensor from the rank that writes it.
   */
  static Run run(RunConfig cfg, int ranks, IntFunction<int[][]> start, Map<Integer, IntFunction<int[][]>> moves,
      IntFunction<Backend> backends, DType type) throws Exception {
    int[] tokens = TokenData.load(CORPUS, "auto", "corpus");
    InProcessGroup group = new InProcessGroup(ranks);
    ExecutorService pool = Executors.newFixedThreadPool(ranks);
    List<Future<Trainer>> done = new ArrayList<>();
    List<Double> losses = new ArrayList<>();
    List<String> kept = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      int rank = r;
      done.add(pool.submit(() -> {
        IntFunction<ShardLayout> was = l -> new ShardLayout(ranks, rank, start.apply(l));
        Trainer t = new Trainer(cfg, tokens, backends.apply(rank), type, rank, ranks, was);
        for (int s = 0; s < 4; s++) {
          if (moves.containsKey(s)) {
            IntFunction<int[][]> to = moves.get(s);
            IntFunction<ShardLayout> next = l -> new ShardLayout(ranks, rank, to.apply(l));
            t = ExpertMove.move(t, was, next, group.exchange(rank)).trainer();
            was = next;
          }
          StepReport rep = t.step(group.exchange(rank), group.reducer(rank));
          if (rank == 0) {
            losses.add(rep.loss().total());
            rep.layers().forEach(m -> kept.add(java.util.Arrays.toString(m.keptPerExpert())));
          }
        }
        return t;
      }));
    }
    Map<String, double[]> tensors = new TreeMap<>();
    for (int r = 0; r < ranks; r++) {
      Trainer t = done.get(r).get(120, TimeUnit.SECONDS);
      Map<String, io.moespark.ops.tensor.Tensor> all = t.allTensors();
      for (Param p : t.model().params().all()) {
        if (p.writtenBy(r)) {
          for (String kind : new String[] {"", "exp_avg.", "exp_avg_sq."}) {
            tensors.put(kind + p.name(), all.get(kind + p.name()).toDoubles());
          }
        }
      }
    }
    pool.shutdown();
    return new Run(losses, kept, tensors);
  }
}

package io.moespark.ops.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.ConformanceBackends;
import io.moespark.ops.backend.Footprint;
import io.moespark.ops.backend.HostTransfers;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * What crosses between the backend and the host in one training step, counted by the backend
 * ({@link HostTransfers}). Allowed: the batch up (input ids and targets, once each); per MoE layer, the
 * counts that size the exchange down (with the aux/z statistics in the same copy, [3E + 1] doubles) and,
 * for top-k routing, the aux-loss coefficients derived from the global counts up (E doubles), plus the
 * selection bias (E doubles) when aux-free balancing is on; the logged scalars once (the CE sum, the
 * two gradient sums of squares). Anything else, a per-parameter norm, routing on the host, an index array
 * per call, fails the exact counts. And a steady step allocates nothing: every buffer of the rank's arena
 * is sized by the first step and reused. On every backend of {@link ConformanceBackends}: for the CPU
 * backend the counts are what a device would copy; for the CUDA backend they are its copies.
 */
class StepResidencyTest {
  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "top-k, moe.router=topk, 0",
      "top-k with aux-free bias, moe.bias_update_rate=0.001, 1",
      "expert choice, moe.router=expert_choice, 0",
      "hash, moe.router=hash, 0"})
  void oneStepMovesOnlyTheBatchTheCountsAndTheLoggedScalars(String name, String set, int biasOn) {
    RunConfig c = TrainerTest.tiny(set, "moe.top_k=" + (set.contains("hash") ? 1 : 2), "model.n_layers=3",
        "moe.every=2", "train.batch_size=4", "model.seq_len=32");
    for (Backend be : ConformanceBackends.all().toList()) {
      countOneStep(name, c, be, set, biasOn);
    }
  }

  private static void countOneStep(String name, RunConfig c, Backend be, String set, int biasOn) {
    Trainer t = Trainer.singleProcess(c, TrainerTest.corpus(c).train(), be, DType.F32);
    t.step(); // the first step allocates its buffers; the steady state is what is counted
    HostTransfers.Snapshot before = be.transfers().snapshot();
    t.step();
    HostTransfers.Snapshot step = be.transfers().snapshot().minus(before);

    int moeLayers = 1, e = c.moe().experts();
    long tokens = (long) c.train().batchSize() * c.model().seqLen();
    boolean topK = !set.contains("expert_choice") && !set.contains("hash");
    long upCalls = 2 + moeLayers * ((topK ? 1 : 0) + biasOn);
    long upBytes = 2 * 4 * tokens + moeLayers * 8L * e * ((topK ? 1 : 0) + biasOn);
    long downCalls = moeLayers + 2;
    long downBytes = moeLayers * 8L * (3 * e + 1) + 8 + 16;
    assertEquals(new HostTransfers.Snapshot(downCalls, downBytes, upCalls, upBytes), step,
        name + " on " + be.name() + ": (copies down, bytes down, copies up, bytes up) of one step");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"top-k dropless, moe.capacity_factor=0", "top-k with dropping, moe.capacity_factor=1.0",
      "expert choice, moe.router=expert_choice"})
  void aSteadyStepAllocatesNothingAndTheArenaHoldsTheModel(String name, String set) {
    RunConfig c = TrainerTest.tiny(set, "train.batch_size=4", "model.seq_len=32");
    for (Backend be : ConformanceBackends.all().toList()) {
      holdSteady(name + " on " + be.name(), c, be);
    }
  }

  private static void holdSteady(String name, RunConfig c, Backend be) {
    Trainer t = Trainer.singleProcess(c, TrainerTest.corpus(c).train(), be, DType.F32);
    long params = 0;
    for (Param p : t.model().params().all()) {
      params += p.length();
    }
    // Values, gradients and both AdamW moments in F32, before any activation exists.
    assertTrue(be.footprint().liveBytes() >= 16 * params, name + ": arena " + be.footprint() + " for " + params
        + " parameters");
    t.step();
    t.step(); // a capacity-dropping step may still grow a buffer past the first step's sizes
    Footprint warm = be.footprint();
    for (int s = 0; s < 3; s++) {
      t.step();
    }
    assertEquals(warm.allocations(), be.footprint().allocations(), name + ": allocations in three steady steps");
    assertEquals(warm.liveBytes(), be.footprint().liveBytes(), name + ": bytes held");
  }
}

package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.train.StepProgram;
import io.moespark.ops.train.StepProgram.Call;
import io.moespark.ops.train.StepProgram.Kind;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The shuffle path's bridge on its own (one rank, no Spark): rounds are handed over and delivered in
 * order; a stage that Spark runs again cannot hand out or deliver a round twice; a call the step program
 * does not expect stops the step naming both kinds.
 */
class ShuffleBridgeTest {
  static final StepProgram TWO_SUMS = new StepProgram(List.of(new Call(Kind.SUM_VALUES, "a", -1, false),
      new Call(Kind.SUM_VALUES, "b", -1, false)));

  @Test
  void roundsGoInOrderAndARerunStageIsRefused() throws Exception {
    try (ShuffleBridge bridge = new ShuffleBridge(0, 1, 10_000)) {
      double[] v = {1.5, -2};
      bridge.start(TWO_SUMS, () -> {
        bridge.collective().sum(v);
        bridge.collective().sum(v);
        return v;
      });
      ShuffleBridge.Outgoing first = bridge.awaitOutgoing(0);
      bridge.deliver(0, Arrays.asList(first.blocks()));
      IllegalStateException again = assertThrows(IllegalStateException.class, () -> bridge.awaitOutgoing(0));
      assertTrue(again.getMessage().contains("--resume"), again.getMessage());
      assertThrows(IllegalStateException.class, () -> bridge.deliver(0, List.of()));
      ShuffleBridge.Outgoing second = bridge.awaitOutgoing(1);
      bridge.deliver(1, Arrays.asList(second.blocks()));
      assertArrayEquals(new double[] {1.5, -2}, (double[]) bridge.awaitResult());
    }
  }

  @Test
  void aCallTheProgramDoesNotExpectStopsTheStep() {
    try (ShuffleBridge bridge = new ShuffleBridge(0, 1, 10_000)) {
      bridge.start(TWO_SUMS, () -> bridge.collective().allToAllCounts(new int[][] {{1}}));
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> bridge.awaitOutgoing(0));
      assertTrue(e.getMessage().contains("is COUNTS, the step program says SUM_VALUES"), e.getMessage());
    }
  }
}

package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.LossTerms;
import io.moespark.ops.moe.MoeStats;
import io.moespark.ops.train.StepReport;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The dynamic placement policy on given loads: when it moves, where to, and the same after a checkpoint. */
class PlacementPolicyTest {
  static RunConfig cfg(String... more) {
    java.util.List<String> sets = new java.util.ArrayList<>(List.of("parallel.placement=dynamic",
        "parallel.placement_window=2", "parallel.placement_threshold=1.25", "parallel.placement_min_interval=0",
        "parallel.placement_move_cost=0",
        "model.n_layers=1", "moe.every=1", "moe.experts=5"));
    sets.addAll(List.of(more));
    return SmallRuns.config(5, 2, sets.toArray(String[]::new));
  }

  static StepResult step(int step, long... assigned) {
    return new StepResult(new StepReport(step, new LossTerms(1, 1, 0, 0), 1e-3, 1, 0.1, 100,
        List.of(new MoeStats(assigned, assigned, 0, 0))), 0, 0);
  }

  /** One holder per expert. */
  static int[][] single(int... owners) {
    return java.util.Arrays.stream(owners).mapToObj(o -> new int[] {o}).toArray(int[][]::new);
  }

  @Test
  void longestFirstBalancesAndKeepsExpertsWhereLoadsTie() {
    int[][] current = single(0, 0, 0, 1, 1);
    long[] loads = {100, 90, 5, 5, 0};
    assertEquals(1.95, PlacementPolicy.Dynamic.imbalance(loads, current, 2), 1e-12);
    int[][] laid = PlacementPolicy.Dynamic.layOut(loads, current, 2, 0);
    assertArrayEquals(single(0, 1, 1, 1, 1), laid, "expert 4 carries nothing: it stays");
    assertEquals(1.0, PlacementPolicy.Dynamic.imbalance(loads, laid, 2), 1e-12);
    long[] even = {10, 10, 10, 10, 10};
    assertArrayEquals(single(0, 1, 0, 1, 0), PlacementPolicy.Dynamic.layOut(even, single(0, 1, 0, 1, 0), 2, 1),
        "a placement already as good stays, and nothing is replicated");
  }

  @Test
  void aHotExpertIsReplicatedWhenNoLayoutOfSingleExpertsCanBalance() {
    long[] loads = {100, 10, 10, 10, 10}; // expert 0 alone is 100 of 140: 1.43x the mean on its rank at best
    int[][] current = single(0, 0, 1, 1, 1);
    assertArrayEquals(single(0, 1, 1, 1, 1), PlacementPolicy.Dynamic.layOut(loads, current, 2, 0));
    int[][] laid = PlacementPolicy.Dynamic.layOut(loads, current, 2, 1);
    assertArrayEquals(new int[][] {{0, 1}, {0}, {1}, {1}, {0}}, laid);
    assertEquals(1.0, PlacementPolicy.Dynamic.imbalance(loads, laid, 2), 1e-12, "each source's half stays home");
    // Three ranks, two copies: sources 0 and 1 keep theirs, source 2 sends to holder 2 mod 2 = the first.
    assertEquals(3 * (100 * 2.0 / 3) / 140, PlacementPolicy.Dynamic.imbalance(loads,
        new int[][] {{0, 1}, {2}, {2}, {2}, {2}}, 3), 1e-12);
    // The policy compares copies with moves alone: a hot expert at 53 % on two ranks (hash routing, E = 3).
    RunConfig c = cfg("moe.experts=3", "parallel.replica_slots=1");
    PlacementPolicy p = PlacementPolicy.of(c);
    p.observe(step(0, 297, 534, 169));
    p.observe(step(1, 297, 534, 169));
    PlacementPolicy.Decision d = p.decide(2, ExpertPlacement.contiguous(c, 2)); // [0, 1, 1]: 0.70 on rank 1
    assertArrayEquals(single(0, 1, 0), d.next().holders(0), "a copy of expert 1 would leave 0.56 on a rank: moves alone");
    int[][] three = PlacementPolicy.Dynamic.layOut(loads, single(0, 0, 1, 1, 2), 3, 1);
    assertEquals(3, three[0].length, "100 over 2 copies is still above the mean 46.7: a third copy");
    assertTrue(PlacementPolicy.Dynamic.imbalance(loads, three, 3) < 1.2, java.util.Arrays.deepToString(three));
  }

  @Test
  void movesAtWindowEndsWhenTheBusiestRankStaysAboveTheThreshold() {
    RunConfig c = cfg();
    PlacementPolicy p = PlacementPolicy.of(c);
    ExpertPlacement start = ExpertPlacement.contiguous(c, 2); // [0, 0, 1, 1, 1]
    assertEquals(2, p.nextDecision(0));
    assertEquals(4, p.nextDecision(2));
    p.observe(step(0, 10, 10, 10, 10, 10));
    assertNull(p.decide(1, start), "not a window's end");
    p.observe(step(1, 10, 10, 10, 10, 10));
    assertNull(p.decide(2, start), "rank 1's 1.2x the mean is under the threshold");
    p.observe(step(2, 50, 40, 5, 5, 0));
    p.observe(step(3, 50, 40, 5, 5, 0));
    PlacementPolicy.Decision d = p.decide(4, start);
    assertNotNull(d);
    assertArrayEquals(single(0, 1, 1, 1, 1), d.next().holders(0));
    assertTrue(d.why().contains("layer 0 busiest rank 1.80x the mean load, predicted 1.00x"), d.why());
  }

  /**
   * Expert 1 leaving rank 0 saves the busiest rank 40 expert-token passes a step; over the two steps before
   * the policy may move again that pays for one copy costing up to 80 passes.
   */
  @Test
  void aMoveMustPayForTheCopiesItMakes() {
    for (int cost : new int[] {80, 81}) {
      RunConfig c = cfg("parallel.placement_move_cost=" + cost);
      PlacementPolicy p = PlacementPolicy.of(c);
      p.observe(step(0, 50, 40, 5, 5, 0));
      p.observe(step(1, 50, 40, 5, 5, 0));
      PlacementPolicy.Decision d = p.decide(2, ExpertPlacement.contiguous(c, 2));
      if (cost == 80) {
        assertArrayEquals(single(0, 1, 1, 1, 1), d.next().holders(0));
      } else {
        assertNull(d, "81 passes for one copy: the move does not pay");
      }
    }
    assertEquals(3, PlacementPolicy.Dynamic.copies(single(0, 0, 1), new int[][] {{0, 1}, {1}, {0}}));
  }

  @Test
  void aCheckpointedPolicyDecidesAsTheUninterruptedOne() {
    RunConfig c = cfg("parallel.placement_min_interval=4");
    ExpertPlacement start = ExpertPlacement.contiguous(c, 2);
    PlacementPolicy whole = PlacementPolicy.of(c), resumed = PlacementPolicy.of(c);
    whole.observe(step(0, 50, 40, 5, 5, 0));
    resumed.observe(step(0, 50, 40, 5, 5, 0));
    resumed.restore(new ObjectMapper().valueToTree(resumed.state(new ObjectMapper()))); // a checkpoint mid-window
    for (PlacementPolicy p : List.of(whole, resumed)) {
      p.observe(step(1, 50, 40, 5, 5, 0));
    }
    PlacementPolicy.Decision a = whole.decide(2, start), b = resumed.decide(2, start);
    assertEquals(a.next(), b.next());
    ExpertPlacement moved = a.next();
    for (PlacementPolicy p : List.of(whole, resumed)) {
      p.observe(step(2, 90, 5, 5, 0, 0));
      p.observe(step(3, 90, 5, 5, 0, 0));
      assertNull(p.decide(4, moved), "within parallel.placement_min_interval of the last move");
    }
    PlacementPolicy fresh = PlacementPolicy.of(c);
    fresh.restore(null);
    fresh.observe(step(2, 90, 5, 5, 0, 0));
    fresh.observe(step(3, 90, 5, 5, 0, 0));
    assertNull(fresh.decide(4, moved), "rank 0 holds the hot expert alone: nothing better to move to");
  }
}

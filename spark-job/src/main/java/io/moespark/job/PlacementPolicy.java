package io.moespark.job;

import io.moespark.ops.config.RunConfig;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;

/**
 * Where the experts go next: the driver asks at the step boundaries the policy names, and moves the
 * experts when it answers with a new placement ({@link RankGroup#move}). A policy decides from the run's
 * configuration and steps only, so that a resumed or restarted run makes the same decisions at the same
 * steps as an uninterrupted one.
 */
interface PlacementPolicy {
  /** A move: the placement after it and why, in words for the console. */
  record Decision(ExpertPlacement next, String why) {}

  /** The first step boundary after {@code step} steps at which the policy may move experts (MAX_VALUE: none). */
  int nextDecision(int step);

  /** The placement to move to after {@code step} steps, or null to keep {@code current}. */
  Decision decide(int step, ExpertPlacement current);

  /** Sees each step's statistics, in step order (the loads a policy may act on). */
  default void observe(StepResult s) {}

  /** What the policy carries between steps, for checkpoints (null: nothing). */
  default ObjectNode state(ObjectMapper json) {
    return null;
  }

  /** Continues from a checkpoint's {@link #state} (null: from the start). */
  default void restore(JsonNode state) {}

  /** The policy {@code parallel.placement} names. */
  static PlacementPolicy of(RunConfig cfg) {
    return switch (cfg.parallel().placement()) {
      case FIXED -> new PlacementPolicy() {
        @Override
        public int nextDecision(int step) {
          return Integer.MAX_VALUE;
        }

        @Override
        public Decision decide(int step, ExpertPlacement current) {
          return null;
        }
      };
      case SCHEDULE -> new Scheduled(cfg.parallel().moves());
      case DYNAMIC -> new Dynamic(cfg);
    };
  }

  /** {@code parallel.placement: schedule}: the moves {@code parallel.placement_schedule} lists, at their steps. */
  final class Scheduled implements PlacementPolicy {
    private final List<RunConfig.PlacementMove> moves;

    Scheduled(List<RunConfig.PlacementMove> moves) {
      this.moves = moves;
    }

    @Override
    public int nextDecision(int step) {
      return moves.stream().mapToInt(RunConfig.PlacementMove::step).filter(s -> s > step).min()
          .orElse(Integer.MAX_VALUE);
    }

    @Override
    public Decision decide(int step, ExpertPlacement current) {
      ExpertPlacement next = current;
      for (RunConfig.PlacementMove m : moves) {
        if (m.step() == step) {
          next = next.with(m.layer(), m.owners());
        }
      }
      return next.equals(current) ? null : new Decision(next, "scheduled (parallel.placement_schedule)");
    }
  }

  /**
   * {@code parallel.placement: dynamic}. Every {@code parallel.placement_window} steps it looks at each MoE
   * layer's expert tokens (assignments before dropping) over those steps: when the busiest rank carried
   * more than {@code parallel.placement_threshold} times the mean rank's load, the layer's experts are laid
   * out again, longest-processing-time first (heaviest expert first; it stays on its rank when it carries no
   * tokens, when its rank stays under the best possible busiest load (the heaviest expert's, or an even
   * share) or is as lightly loaded as any, since moving costs bytes; else it goes to the least-loaded rank,
   * ties to the fewer experts, then the lower rank; at most one expert more than an even share per rank),
   * and the move is made when it predicts at least 10 %
   * less load on the busiest rank, at most once per {@code parallel.placement_min_interval} steps. Decisions
   * depend only on the token counts, which the checkpoints carry ({@link #state}).
   */
  final class Dynamic implements PlacementPolicy {
    private final int window;
    private final double threshold;
    private final int minInterval;
    private final int[] moeLayer; // model layer of each MoE layer, in order
    private final int experts;
    private long[][] loads; // [MoE layer][expert], since the last decision point
    private int lastMove = Integer.MIN_VALUE / 2;

    Dynamic(RunConfig cfg) {
      this.window = cfg.parallel().placementWindow();
      this.threshold = cfg.parallel().placementThreshold();
      this.minInterval = cfg.parallel().placementMinInterval();
      boolean[] moe = io.moespark.ops.model.TransformerLM.moeLayers(cfg.model(), cfg.moe());
      this.moeLayer = java.util.stream.IntStream.range(0, moe.length).filter(l -> moe[l]).toArray();
      this.experts = cfg.moe().experts();
      this.loads = new long[moeLayer.length][experts];
    }

    @Override
    public int nextDecision(int step) {
      return (step / window + 1) * window;
    }

    @Override
    public void observe(StepResult s) {
      for (int i = 0; i < moeLayer.length; i++) {
        long[] a = s.report().layers().get(i).assignedPerExpert();
        for (int e = 0; e < experts; e++) {
          loads[i][e] += a[e];
        }
      }
    }

    @Override
    public Decision decide(int step, ExpertPlacement current) {
      if (step % window != 0) {
        return null;
      }
      long[][] seen = loads;
      loads = new long[moeLayer.length][experts];
      if (step - lastMove < minInterval) {
        return null;
      }
      ExpertPlacement next = current;
      List<String> why = new java.util.ArrayList<>();
      for (int i = 0; i < moeLayer.length; i++) {
        int[] owners = current.owners(moeLayer[i]);
        double before = imbalance(seen[i], owners, current.ranks());
        if (!(before > threshold)) {
          continue;
        }
        int[] laid = longestFirst(seen[i], owners, current.ranks());
        double after = imbalance(seen[i], laid, current.ranks());
        if (after <= 0.9 * before) {
          next = next.with(moeLayer[i], laid);
          why.add(String.format(java.util.Locale.ROOT, "layer %d busiest rank %.2fx the mean load, predicted %.2fx",
              moeLayer[i], before, after));
        }
      }
      if (next.equals(current)) {
        return null;
      }
      lastMove = step;
      return new Decision(next, "by load over steps " + (step - window + 1) + "-" + step + " (" + String.join(", ", why)
          + ")");
    }

    /** The busiest rank's load over the mean rank's, for the experts' {@code loads} held as {@code owners} say. */
    static double imbalance(long[] loads, int[] owners, int ranks) {
      long[] r = new long[ranks];
      long total = 0;
      for (int e = 0; e < loads.length; e++) {
        r[owners[e]] += loads[e];
        total += loads[e];
      }
      long max = 0;
      for (long x : r) {
        max = Math.max(max, x);
      }
      return total == 0 ? 1 : max * (double) ranks / total;
    }

    /** Longest-processing-time first, as the class says. */
    static int[] longestFirst(long[] loads, int[] current, int ranks) {
      int e = loads.length, slots = (e + ranks - 1) / ranks + 1;
      int[] order = new int[e];
      for (int i = 0; i < e; i++) {
        order[i] = i;
      }
      for (int i = 1; i < e; i++) { // insertion sort: heavier first, lower id on ties
        int x = order[i], j = i - 1;
        while (j >= 0 && (loads[order[j]] < loads[x] || (loads[order[j]] == loads[x] && order[j] > x))) {
          order[j + 1] = order[j];
          j--;
        }
        order[j + 1] = x;
      }
      long total = 0, heaviest = 0;
      for (long l : loads) {
        total += l;
        heaviest = Math.max(heaviest, l);
      }
      double target = Math.max(heaviest, (double) total / ranks); // no layout does better on the busiest rank
      long[] load = new long[ranks];
      int[] count = new int[ranks], owner = new int[e];
      for (int x : order) {
        int cur = current[x];
        long least = Long.MAX_VALUE;
        for (int r = 0; r < ranks; r++) {
          least = count[r] < slots ? Math.min(least, load[r]) : least;
        }
        // Moving costs bytes: an expert stays where it adds nothing, or fits under the target, or is as well off.
        if (count[cur] < slots && (loads[x] == 0 || load[cur] + loads[x] <= target || load[cur] == least)) {
          owner[x] = cur;
          load[cur] += loads[x];
          count[cur]++;
          continue;
        }
        int best = -1;
        for (int r = 0; r < ranks; r++) {
          if (count[r] >= slots) {
            continue;
          }
          if (best < 0 || load[r] < load[best] || (load[r] == load[best] && (count[r] < count[best]
              || (count[r] == count[best] && r == current[x] && best != current[x])))) {
            best = r;
          }
        }
        owner[x] = best;
        load[best] += loads[x];
        count[best]++;
      }
      return owner;
    }

    @Override
    public ObjectNode state(ObjectMapper json) {
      ObjectNode s = json.createObjectNode().put("last_move", lastMove);
      com.fasterxml.jackson.databind.node.ArrayNode l = s.putArray("loads");
      for (long[] layer : loads) {
        com.fasterxml.jackson.databind.node.ArrayNode a = l.addArray();
        for (long x : layer) {
          a.add(x);
        }
      }
      return s;
    }

    @Override
    public void restore(JsonNode state) {
      loads = new long[moeLayer.length][experts];
      lastMove = Integer.MIN_VALUE / 2;
      if (state == null || state.isNull() || state.isMissingNode()) {
        return;
      }
      lastMove = state.path("last_move").asInt(lastMove);
      for (int i = 0; i < moeLayer.length; i++) {
        for (int e = 0; e < experts; e++) {
          loads[i][e] = state.path("loads").path(i).path(e).asLong();
        }
      }
    }
  }
}

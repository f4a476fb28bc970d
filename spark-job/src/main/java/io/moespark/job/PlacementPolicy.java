package io.moespark.job;

import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.ShardLayout;
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
          next = next.with(m.layer(), m.holders());
        }
      }
      return next.equals(current) ? null : new Decision(next, "scheduled (parallel.placement_schedule)");
    }
  }

  /**
   * {@code parallel.placement: dynamic}. Every {@code parallel.placement_window} steps it looks at each MoE
   * layer's expert tokens (assignments before dropping) over those steps: when the busiest rank carried
   * more than {@code parallel.placement_threshold} times the mean rank's load, the layer's experts are laid
   * out again ({@link #layOut}: hot experts replicated within {@code parallel.replica_slots}, then
   * longest-processing-time first, experts staying where moving buys nothing); the move is made when the
   * busiest rank's predicted expert-token passes saved per step, over max(window, minimum interval) steps,
   * pay for the copies it moves at {@code parallel.placement_move_cost} each, and it predicts at least 10 %
   * less load on the busiest rank, at most once per {@code parallel.placement_min_interval} steps. Decisions
   * depend only on the token counts, which the checkpoints carry ({@link #state}). A replicated expert's
   * tokens are predicted split among its holders as {@link ShardLayout#destination} splits them, each
   * source rank carrying an equal share of every expert's tokens.
   */
  final class Dynamic implements PlacementPolicy {
    private final int window;
    private final double threshold;
    private final int minInterval;
    private final int replicaSlots;
    private final double moveCost;
    private final int[] moeLayer; // model layer of each MoE layer, in order
    private final int experts;
    private long[][] loads; // [MoE layer][expert], since the last decision point
    private int lastMove = Integer.MIN_VALUE / 2;

    Dynamic(RunConfig cfg) {
      this.window = cfg.parallel().placementWindow();
      this.threshold = cfg.parallel().placementThreshold();
      this.minInterval = cfg.parallel().placementMinInterval();
      this.replicaSlots = cfg.parallel().replicaSlots();
      this.moveCost = cfg.parallel().placementMoveCost();
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
      int ranks = current.ranks();
      for (int i = 0; i < moeLayer.length; i++) {
        int[][] holders = current.holders(moeLayer[i]);
        double before = imbalance(seen[i], holders, ranks);
        if (!(before > threshold)) {
          continue;
        }
        // Copies can leave the busiest rank worse off than moves alone (a copy splits its load unevenly when
        // the holders do not divide the sources): the better of the two, moves alone on a tie.
        int[][] laid = layOut(seen[i], holders, ranks, 0);
        double after = imbalance(seen[i], laid, ranks);
        if (replicaSlots > 0) {
          int[][] copied = layOut(seen[i], holders, ranks, replicaSlots);
          double withCopies = imbalance(seen[i], copied, ranks);
          if (withCopies < after) {
            laid = copied;
            after = withCopies;
          }
        }
        // The saving is the busiest rank's expert-token passes per step; it must pay for the copies moved
        // within the steps before the policy may move again.
        double saving = (max(rankLoads(seen[i], holders, ranks)) - max(rankLoads(seen[i], laid, ranks))) / window;
        int copies = copies(holders, laid);
        if (after <= 0.9 * before && saving * Math.max(window, minInterval) >= copies * moveCost) {
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

    /** The busiest rank's load over the mean rank's, for the experts' {@code loads} held as {@code holders} say. */
    static double imbalance(long[] loads, int[][] holders, int ranks) {
      double[] r = rankLoads(loads, holders, ranks);
      double total = 0, max = 0;
      for (double x : r) {
        total += x;
        max = Math.max(max, x);
      }
      return total == 0 ? 1 : max * ranks / total;
    }

    /** Expert copies that {@code next} places on ranks that do not hold them in {@code current}. */
    static int copies(int[][] current, int[][] next) {
      int n = 0;
      for (int e = 0; e < next.length; e++) {
        for (int r : next[e]) {
          n += java.util.Arrays.binarySearch(current[e], r) >= 0 ? 0 : 1;
        }
      }
      return n;
    }

    private static double max(double[] v) {
      return java.util.Arrays.stream(v).max().orElse(0);
    }

    /** Each rank's predicted expert tokens (see the class comment for a replicated expert's split). */
    static double[] rankLoads(long[] loads, int[][] holders, int ranks) {
      ShardLayout layout = new ShardLayout(ranks, 0, holders);
      double[] r = new double[ranks];
      for (int e = 0; e < loads.length; e++) {
        addShares(r, layout, e, loads[e], 1);
      }
      return r;
    }

    /** Adds {@code sign} times expert e's predicted tokens per holder to {@code r}. */
    private static void addShares(double[] r, ShardLayout layout, int e, long load, int sign) {
      for (int s = 0; s < r.length; s++) {
        r[layout.destination(s, e)] += sign * (double) load / r.length;
      }
    }

    /**
     * A layer's new holders, as the class says. First the copies: while a rank has a replica slot spare and
     * the heaviest expert per copy carries more than the mean rank's load (no layout can then even the
     * ranks out), that expert gets one more copy (at most one per rank). Then longest-processing-time first
     * over the copies, each carrying its expert's load over its copies: heaviest first (ties: lower expert);
     * a copy stays on a rank that holds the expert now when it carries no tokens, when that rank stays under
     * the best possible busiest load (the heaviest copy's, or an even share), or when it is as lightly
     * loaded as any, since moving costs bytes; else it goes to the least-loaded rank (ties: fewer experts,
     * then lower rank). No rank holds two copies of an expert, nor more than an even share of experts plus
     * one plus {@code replicaSlots}.
     */
    static int[][] layOut(long[] loads, int[][] current, int ranks, int replicaSlots) {
      int e = loads.length;
      long total = 0;
      for (long l : loads) {
        total += l;
      }
      int[] copies = new int[e];
      java.util.Arrays.fill(copies, 1);
      for (int spare = ranks * replicaSlots; spare > 0; spare--) {
        int hot = 0;
        for (int x = 1; x < e; x++) {
          hot = loads[x] * copies[hot] > loads[hot] * copies[x] ? x : hot;
        }
        if (copies[hot] == ranks || (double) loads[hot] / copies[hot] <= (double) total / ranks) {
          break;
        }
        copies[hot]++;
      }
      List<int[]> pieces = new java.util.ArrayList<>(); // {expert, copy}
      for (int x = 0; x < e; x++) {
        for (int c = 0; c < copies[x]; c++) {
          pieces.add(new int[] {x, c});
        }
      }
      // Heavier per copy first; ties to the lower expert.
      pieces.sort((p, q) -> p[0] == q[0] ? 0 : loads[q[0]] * copies[p[0]] != loads[p[0]] * copies[q[0]]
          ? Long.compare(loads[q[0]] * copies[p[0]], loads[p[0]] * copies[q[0]]) : Integer.compare(p[0], q[0]));
      double heaviest = pieces.isEmpty() ? 0 : (double) loads[pieces.get(0)[0]] / copies[pieces.get(0)[0]];
      double target = Math.max(heaviest, (double) total / ranks); // no layout does better on the busiest rank
      int slots = (e + ranks - 1) / ranks + 1 + replicaSlots;
      double[] load = new double[ranks];
      int[] count = new int[ranks];
      boolean[][] holds = new boolean[e][ranks];
      for (int[] piece : pieces) {
        int x = piece[0];
        double w = (double) loads[x] / copies[x];
        double least = Double.MAX_VALUE;
        for (int r = 0; r < ranks; r++) {
          least = count[r] < slots && !holds[x][r] ? Math.min(least, load[r]) : least;
        }
        int to = -1;
        for (int cur : current[x]) { // moving costs bytes: stay where it adds nothing, fits, or is as well off
          if (count[cur] < slots && !holds[x][cur] && (w == 0 || load[cur] + w <= target || load[cur] == least)
              && (to < 0 || load[cur] < load[to])) {
            to = cur;
          }
        }
        for (int r = 0; to < 0 && r < ranks; r++) {
          if (count[r] < slots && !holds[x][r] && load[r] == least) {
            to = fewerExperts(r, count, slots, load, holds[x]);
          }
        }
        holds[x][to] = true;
        load[to] += w;
        count[to]++;
      }
      int[][] holders = new int[e][];
      for (int x = 0; x < e; x++) {
        int[] h = holders[x] = new int[copies[x]];
        for (int r = 0, i = 0; r < ranks; r++) {
          if (holds[x][r]) {
            h[i++] = r;
          }
        }
      }
      return holders;
    }

    /** Of the least-loaded ranks that can take the expert (r the lowest of them), the one with fewest experts. */
    private static int fewerExperts(int r, int[] count, int slots, double[] load, boolean[] holds) {
      int best = r;
      for (int q = r + 1; q < count.length; q++) {
        if (count[q] < slots && !holds[q] && load[q] == load[r] && count[q] < count[best]) {
          best = q;
        }
      }
      return best;
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

package io.moespark.job;

import io.moespark.ops.config.RunConfig;
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
}

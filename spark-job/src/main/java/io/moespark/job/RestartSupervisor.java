package io.moespark.job;

import io.moespark.job.io.CheckpointStore;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.train.Trainer;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * What a failed attempt of a run leads to. Bad input and divergence end the run, as do restarts used up
 * (parallel.max_restarts) and a requested stop; anything else (a lost executor, a failed or stalled rank:
 * every rank's state is suspect) restarts the ranks from the newest intact checkpoint, said in one console
 * line and in the MoE tab with the executors lost, after asking Spark to replace the executors of silent
 * ranks.
 */
final class RestartSupervisor {
  private final JavaSparkContext sc;
  private final RunConfig cfg;
  private final CheckpointStore store;
  private final RunEvents events;
  private final ExecutorLosses losses;
  private final PrintStream console;

  RestartSupervisor(JavaSparkContext sc, RunConfig cfg, CheckpointStore store, RunEvents events, ExecutorLosses losses,
      PrintStream console) {
    this.sc = sc;
    this.cfg = cfg;
    this.store = store;
    this.events = events;
    this.losses = losses;
    this.console = console;
  }

  /**
   * Rethrows {@code e} when the run must end; else returns the checkpoint to continue from (null: the start).
   *
   * @param ranks the failed attempt's ranks, or null when they failed to open
   * @param restarts restarts so far
   */
  CheckpointStore.Stored recover(RuntimeException e, RankGroup ranks, int restarts, boolean stopRequested)
      throws java.io.IOException {
    if (e instanceof Trainer.DivergenceException || e instanceof ConfigException
        || restarts >= cfg.parallel().maxRestarts() || stopRequested) {
      throw e;
    }
    CheckpointStore.Stored from = store.latestIntact(console::println).orElse(null);
    // After the reads above: Spark's listener bus has delivered the executor's removal by now.
    String lost = ranks == null ? "" : losses.ranksLost(ranks.executors(), ranks.hosts());
    String where = ranks == null ? "while opening the ranks" : "at step " + (ranks.nextStep() + 1)
        + " with the ranks on executors " + ranks.executors() + (lost.isEmpty() ? "" : ", " + lost);
    console.printf(Locale.ROOT, "run failed %s: %s%nrestart %d of %d (parallel.max_restarts): reopening the "
        + "ranks on the executors Spark has, from %s%n", where, e.getMessage(), restarts + 1,
        cfg.parallel().maxRestarts(), from == null ? "the start" : "the checkpoint at step " + from.step());
    events.restart(ranks == null ? 0 : ranks.nextStep() + 1, from == null ? 0 : from.step(),
        "run failed " + where + ": " + e.getMessage());
    if (e instanceof StallBound.Stalled stall) {
      replaceSilent(stall.silentExecutors());
    }
    return from;
  }

  /**
   * Asks Spark to kill and replace the executors of silent ranks, so that the ranks reopen once the
   * replacements register instead of after Spark's own timeout (spark.network.timeout, 120 s by default).
   */
  private void replaceSilent(List<String> executors) {
    for (String id : executors) {
      if (id.equals("driver")) {
        continue; // in-process ranks: nothing to replace
      }
      boolean asked = sc.sc().killAndReplaceExecutor(id);
      console.println(asked ? "asked Spark to replace the silent executor " + id + "; the ranks reopen when it registers"
          : "Spark could not replace the silent executor " + id + "; the ranks reopen once Spark declares it lost "
              + "(spark.network.timeout)");
    }
  }
}

package io.moespark.job;

import io.moespark.job.net.Collective;
import io.moespark.ops.train.Trainer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One rank's state, resident in its executor's JVM between the stages of a run: the trainer (dense
 * replica, expert shard, optimizer state, activations of the step in flight), its end of the direct
 * path (the direct collective, or the shuffle bridge and its worker thread) and its validation tokens. Registered under (run id, rank) by the stage that creates it;
 * later stages look it up, and a task that finds nothing (a lost executor, or a task placed on another
 * executor) fails with both executors named: the state is never silently recreated.
 */
final class RankState implements AutoCloseable {
  private static final Map<String, RankState> RESIDENT = new ConcurrentHashMap<>();

  final Trainer trainer;
  final Collective collective; // direct path; null on the shuffle path
  final ShuffleBridge bridge; // shuffle path; null on the direct path
  final int[] val;

  private RankState(Trainer trainer, Collective collective, ShuffleBridge bridge, int[] val) {
    this.trainer = trainer;
    this.collective = collective;
    this.bridge = bridge;
    this.val = val;
  }

  static void register(String runId, int rank, Trainer trainer, Collective collective, ShuffleBridge bridge,
      int[] val) {
    RankState s = new RankState(trainer, collective, bridge, val);
    if (RESIDENT.putIfAbsent(key(runId, rank), s) != null) {
      s.close();
      throw new IllegalStateException("run " + runId + " rank " + rank + " already has state on this executor");
    }
  }

  /**
   * The state of (run, rank) on this executor.
   *
   * @param expectedHome the executor the driver placed the rank on, for the message when it is not here
   */
  static RankState get(String runId, int rank, String here, String expectedHome) {
    RankState s = RESIDENT.get(key(runId, rank));
    if (s == null) {
      throw new IllegalStateException("run " + runId + " rank " + rank + ": no resident state on executor " + here
          + "; the rank lives on executor " + expectedHome + " (lost executor, or the task was placed elsewhere). "
          + "State is never recreated silently: restart the run with --resume from its last checkpoint");
    }
    return s;
  }

  /** Removes and closes the state of (run, rank) if this executor holds it. */
  static void release(String runId, int rank) {
    RankState s = RESIDENT.remove(key(runId, rank));
    if (s != null) {
      s.close();
    }
  }

  @Override
  public void close() {
    if (collective != null) {
      collective.close();
    }
    if (bridge != null) {
      bridge.close();
    }
  }

  private static String key(String runId, int rank) {
    return runId + "/" + rank;
  }
}

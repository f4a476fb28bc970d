package io.moespark.job;

import io.moespark.ops.collective.Collective;
import io.moespark.ops.train.Trainer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One rank's state, resident in its executor's JVM between the stages of a run: the trainer (dense
 * replica, expert shard, optimizer state, activations of the step in flight), its end of the run's
 * exchanges ({@link #collective}: the same rank-ordered semantics on both paths, over sockets or NCCL on
 * the direct path, over the {@link ShuffleBridge} on the shuffle path) and its validation tokens.
 * Registered under (run id, rank) by the stage that creates it; later stages look it up, and a task that
 * finds nothing (a lost executor, or a task placed on another executor) fails with both executors named:
 * the state is never silently recreated.
 */
final class RankState implements AutoCloseable {
  private static final Map<String, RankState> RESIDENT = new ConcurrentHashMap<>();

  /** Replaced when the rank's experts move ({@link #moved}). */
  Trainer trainer;
  /** The rank's exchanges, watched by {@link #progress}. */
  final Collective collective;
  final int[] val;
  final RankProgress progress;
  private final ShuffleBridge bridge;

  private RankState(Trainer trainer, Collective collective, ShuffleBridge bridge, int[] val, RankProgress progress) {
    this.trainer = trainer;
    this.collective = progress.watch(collective);
    this.bridge = bridge;
    this.val = val;
    this.progress = progress;
  }

  /** A rank of the direct path: its collective talks to the peers itself. */
  static RankState direct(Trainer trainer, Collective collective, int[] val, RankProgress progress) {
    return new RankState(trainer, collective, null, val, progress);
  }

  /** A rank of the shuffle path: its collective's rounds are the stages of the step's job, through the bridge. */
  static RankState shuffle(Trainer trainer, ShuffleBridge bridge, int[] val, RankProgress progress) {
    return new RankState(trainer, bridge.collective(), bridge, val, progress);
  }

  /** After an expert move: the trainer holding the rank's new experts (the old one is dropped). */
  void moved(Trainer next) {
    trainer = next;
  }

  /** The heartbeats of every rank resident in this executor. */
  static List<RankProgress.Beat> beats() {
    List<RankProgress.Beat> beats = new ArrayList<>();
    for (RankState s : RESIDENT.values()) {
      beats.add(s.progress.beat());
    }
    return beats;
  }

  /** The shuffle path's bridge of this rank. */
  ShuffleBridge bridge() {
    if (bridge == null) {
      throw new IllegalStateException("a shuffle-path stage reached a rank opened for the direct path");
    }
    return bridge;
  }

  /** A run id in a lineage: the groups that replace each other after failures share the lineage. */
  static String runId(String lineage, String unique) {
    return Integer.toHexString((lineage.isEmpty() ? unique : lineage).hashCode()) + "-" + unique;
  }

  /** Releases the states this executor holds for other groups of {@code runId}'s lineage (a failed group's). */
  static void releaseLineage(String runId) {
    String lineage = runId.substring(0, runId.indexOf('-') + 1);
    for (String key : RESIDENT.keySet()) {
      if (key.startsWith(lineage) && !key.startsWith(runId + "/")) {
        RankState s = RESIDENT.remove(key);
        if (s != null) {
          s.close();
        }
      }
    }
  }

  static void register(String runId, int rank, RankState s) {
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
    collective.close();
  }

  private static String key(String runId, int rank) {
    return runId + "/" + rank;
  }
}

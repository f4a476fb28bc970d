package io.moespark.job;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerExecutorRemoved;

/**
 * The executors Spark removed while a run was going, with Spark's reason ("Command exited with code 137",
 * "Executor heartbeat timed out ..."), so that a failure line names the rank whose executor went and why.
 */
final class ExecutorLosses extends SparkListener {
  private final Map<String, String> removed = new ConcurrentHashMap<>();

  @Override
  public void onExecutorRemoved(SparkListenerExecutorRemoved e) {
    removed.put(e.executorId(), e.reason());
  }

  /** "rank 1 lost executor 0 (host h: reason)" for every rank whose executor was removed; empty if none. */
  String ranksLost(List<String> executors, List<String> hosts) {
    StringBuilder b = new StringBuilder();
    for (int r = 0; r < executors.size(); r++) {
      String reason = removed.get(executors.get(r));
      if (reason != null) {
        String host = hosts.get(r);
        b.append(b.length() == 0 ? "" : "; ").append("rank ").append(r).append(" lost executor ")
            .append(executors.get(r)).append(" (host ").append(host).append(": ").append(reason).append(')');
      }
    }
    return b.toString();
  }
}

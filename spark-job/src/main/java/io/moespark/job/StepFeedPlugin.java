package io.moespark.job;

import java.io.IOException;
import java.io.Serializable;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.apache.spark.api.plugin.SparkPlugin;

/**
 * Carries each step's statistics from the executor that runs rank 0 to the driver while a direct-path
 * stage is still running ({@code PluginContext.send}: one small RPC per step, not a job per step).
 * Enabled with {@code spark.plugins=io.moespark.job.StepFeedPlugin}; without it the driver gets the
 * statistics when the stage ends.
 */
public final class StepFeedPlugin implements SparkPlugin {
  /** The value for {@code spark.plugins}. */
  public static final String CLASS = StepFeedPlugin.class.getName();

  private static volatile PluginContext executorContext;
  private static final Map<String, BlockingQueue<StepResult>> FEEDS = new ConcurrentHashMap<>();

  /** A step's statistics for run {@code runId}. */
  record StepMessage(String runId, StepResult step) implements Serializable {}

  @Override
  public DriverPlugin driverPlugin() {
    return new DriverPlugin() {
      @Override
      public Object receive(Object message) {
        if (message instanceof StepMessage m) {
          BlockingQueue<StepResult> q = FEEDS.get(m.runId());
          if (q != null) {
            q.add(m.step());
          }
        }
        return null;
      }
    };
  }

  @Override
  public ExecutorPlugin executorPlugin() {
    return new ExecutorPlugin() {
      @Override
      public void init(PluginContext ctx, Map<String, String> extraConf) {
        executorContext = ctx;
      }
    };
  }

  /** Executor side: sends a step's statistics; false when the plugin is not installed in this JVM. */
  static boolean publish(String runId, StepResult step) throws IOException {
    PluginContext ctx = executorContext;
    if (ctx == null) {
      return false;
    }
    ctx.send(new StepMessage(runId, step));
    return true;
  }

  /** Driver side: the queue the steps of {@code runId} arrive in, until {@link #close}. */
  static BlockingQueue<StepResult> open(String runId) {
    return FEEDS.computeIfAbsent(runId, k -> new LinkedBlockingQueue<>());
  }

  static void close(String runId) {
    FEEDS.remove(runId);
  }
}

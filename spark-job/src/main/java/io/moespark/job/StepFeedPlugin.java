package io.moespark.job;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import java.io.IOException;
import java.io.Serializable;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import org.apache.spark.SparkContext;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.apache.spark.api.plugin.SparkPlugin;

/**
 * Carries each step's statistics from the executor that runs rank 0 to the driver while a direct-path
 * stage is still running ({@code PluginContext.send}: one small RPC per step, not a job per step), and
 * publishes the driver's latest step through Spark's metrics system (source
 * {@code plugin.io.moespark.job.StepFeedPlugin}: gauges {@code step}, {@code loss}, {@code ce},
 * {@code tokens_per_s}, {@code max_over_mean_load}, {@code dropped_fraction}; any configured sink, the
 * Prometheus servlet included, exports them). Enabled with
 * {@code spark.plugins=io.moespark.job.StepFeedPlugin}; without it the driver gets the statistics when
 * the stage ends and there are no metrics.
 */
public final class StepFeedPlugin implements SparkPlugin {
  /** The value for {@code spark.plugins}. */
  public static final String CLASS = StepFeedPlugin.class.getName();

  private static volatile PluginContext executorContext;
  private static volatile StepResult latest;
  private static final Map<String, BlockingQueue<StepResult>> FEEDS = new ConcurrentHashMap<>();

  /** A step's statistics for run {@code runId}. */
  record StepMessage(String runId, StepResult step) implements Serializable {}

  @Override
  public DriverPlugin driverPlugin() {
    return new DriverPlugin() {
      @Override
      public Map<String, String> init(SparkContext sc, PluginContext ctx) {
        MetricRegistry r = ctx.metricRegistry();
        gauge(r, "step", s -> s.step() + 1);
        gauge(r, "loss", StepResult::loss);
        gauge(r, "ce", s -> s.report().loss().ce());
        gauge(r, "tokens_per_s", s -> s.report().tokensPerSecond());
        gauge(r, "max_over_mean_load", s -> s.report().maxOverMeanLoad());
        gauge(r, "dropped_fraction", s -> s.report().droppedFraction());
        return Map.of();
      }

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

  /** Driver side: the step the metrics report (the driver loop calls it for every step, on either path). */
  static void record(StepResult step) {
    latest = step;
  }

  private static void gauge(MetricRegistry r, String name, java.util.function.Function<StepResult, Number> value) {
    r.register(name, (Gauge<Number>) () -> {
      StepResult s = latest;
      return s == null ? 0 : value.apply(s);
    });
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

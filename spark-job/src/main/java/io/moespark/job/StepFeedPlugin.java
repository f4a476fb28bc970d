package io.moespark.job;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import io.moespark.job.ui.MoeStore;
import io.moespark.job.ui.MoeTab;
import org.apache.spark.SparkContext;
import org.apache.spark.util.kvstore.KVStore;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.apache.spark.api.plugin.SparkPlugin;

/**
 * The driver's MoE tab in the Spark UI ({@link MoeTab}, fed by the run's events), and carries, from executors
 * to the driver, each rank's heartbeat (its step and phase, once a second: how the
 * driver names the rank and phase a stall is in) and each step's statistics from the executor that runs rank 0 to the driver while a direct-path
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

  /** How often an executor sends its ranks' heartbeats. */
  static final long HEARTBEAT_MS = 1000;

  private static volatile PluginContext executorContext;
  private static volatile StepResult latest;
  private static final Map<String, BlockingQueue<StepResult>> FEEDS = new ConcurrentHashMap<>();
  /** The driver's last heartbeat of each (run id, rank), with when it arrived. */
  private static final Map<String, Seen> BEATS = new ConcurrentHashMap<>();

  private record Seen(RankProgress.Beat beat, long arrivedNanos) {}

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
        // The MoE tab: its rows are written from the run's events on the status queue, into the status store.
        KVStore store = sc.statusStore().store();
        sc.listenerBus().addToStatusQueue(new MoeStore.Listener(store));
        if (sc.ui().isDefined()) {
          MoeTab.attach(sc.ui().get(), store);
        }
        return Map.of();
      }

      @Override
      public Object receive(Object message) {
        if (message instanceof RankProgress.Beat b) {
          BEATS.put(b.runId() + "/" + b.rank(), new Seen(b, System.nanoTime()));
        } else if (message instanceof StepMessage m) {
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
      private ScheduledExecutorService heart;

      @Override
      public void init(PluginContext ctx, Map<String, String> extraConf) {
        executorContext = ctx;
        heart = Executors.newSingleThreadScheduledExecutor(r -> {
          Thread t = new Thread(r, "moe-rank-heartbeat");
          t.setDaemon(true);
          return t;
        });
        heart.scheduleAtFixedRate(() -> {
          try {
            for (RankProgress.Beat b : RankState.beats()) {
              ctx.send(b);
            }
          } catch (IOException | RuntimeException e) {
            // A heartbeat that cannot be sent is one the driver misses: that is what it measures.
          }
        }, HEARTBEAT_MS, HEARTBEAT_MS, TimeUnit.MILLISECONDS);
      }

      @Override
      public void shutdown() {
        heart.shutdownNow();
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

  /** Executor side: sends a rank's heartbeat now (as each step begins), besides the once-a-second ones. */
  static void beat(RankProgress.Beat beat) {
    PluginContext ctx = executorContext;
    if (ctx != null) {
      try {
        ctx.send(beat);
      } catch (IOException e) {
        // As for the periodic heartbeats: a missed one is what the driver measures.
      }
    }
  }

  /** Driver side: the queue the steps of {@code runId} arrive in, until {@link #close}. */
  static BlockingQueue<StepResult> open(String runId) {
    return FEEDS.computeIfAbsent(runId, k -> new LinkedBlockingQueue<>());
  }

  static void close(String runId) {
    FEEDS.remove(runId);
  }

  /**
   * Driver side: what each rank of {@code runId} was last seen doing, for a stall's message. A rank whose
   * heartbeats stopped (3 missed) is named first, as the one that stalled; the others say what they wait in.
   */
  /** What the driver knows of a run's ranks now: a line for the console, and the executors of silent ranks. */
  record RanksNow(String text, List<String> silentExecutors) {}

  static RanksNow ranksNow(String runId, List<String> executors) {
    long now = System.nanoTime();
    List<String> silent = new ArrayList<>(), alive = new ArrayList<>(), silentIds = new ArrayList<>();
    for (int r = 0; r < executors.size(); r++) {
      Seen seen = BEATS.get(runId + "/" + r);
      if (seen == null) {
        silent.add(String.format(Locale.ROOT, "rank %d on executor %s sent no heartbeat", r, executors.get(r)));
        silentIds.add(executors.get(r));
        continue;
      }
      RankProgress.Beat b = seen.beat();
      double ago = (now - seen.arrivedNanos()) / 1e9;
      String where = String.format(Locale.ROOT, "%s, %s%s", b.step() < 0 ? "before its first step"
          : "in step " + b.step(), b.phase(), b.exchanging() ? " (waiting for its peers)" : "");
      if (ago > 3 * HEARTBEAT_MS / 1e3) {
        silent.add(String.format(Locale.ROOT, "rank %d on executor %s (%s) silent for %.0f s, last seen %s",
            r, b.executor(), b.host(), ago, where));
        silentIds.add(b.executor());
      } else {
        alive.add(String.format(Locale.ROOT, "rank %d on executor %s (%s) for %.0f s %s", r, b.executor(),
            b.host(), b.seconds(), where));
      }
    }
    String text = (silent.isEmpty() ? "every rank alive: " : String.join("; ", silent)
        + (alive.isEmpty() ? "" : "; others: ")) + String.join("; ", alive);
    return new RanksNow(text, List.copyOf(silentIds));
  }

  /** Driver side: drops the heartbeats of {@code runId}'s ranks (the group is closed or abandoned). */
  static void forget(String runId) {
    BEATS.keySet().removeIf(k -> k.startsWith(runId + "/"));
  }
}

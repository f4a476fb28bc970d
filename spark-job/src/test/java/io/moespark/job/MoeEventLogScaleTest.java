package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.job.ui.MoeEvents;
import io.moespark.job.ui.MoeStore;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.ReplayListenerBus;
import org.apache.spark.scheduler.ReplayListenerBus$;
import org.apache.spark.util.kvstore.InMemoryStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A long run's MoE events stay small: 20,000 steps of conf/tiny.yaml's shape (2 MoE layers of 4 experts)
 * and of a large model's (32 layers of 64 experts), posted as the driver posts them (one window event per
 * {@link MoeEvents#window} steps, a validation pass every 100 steps) into a real SparkContext with its event
 * log and the tab's listener on the status queue; then the log replayed as the History Server does. Checks
 * that no listener event is dropped and that the store and the replay hold every window; prints the sizes
 * (README, "Inspecting runs").
 */
class MoeEventLogScaleTest {
  static final int STEPS = 20_000;

  @Test
  void twentyThousandStepsMakeASmallEventLog(@TempDir Path tmp) throws Exception {
    for (int[] shape : new int[][] {{2, 4}, {32, 64}}) {
      Path dir = tmp.resolve("events-" + shape[0] + "x" + shape[1]);
      Files.createDirectories(dir);
      JavaSparkContext sc = new JavaSparkContext(new SparkConf().setMaster("local[1]").setAppName("scale")
          .set("spark.ui.enabled", "false").set("spark.plugins", StepFeedPlugin.CLASS)
          .set("spark.eventLog.enabled", "true").set("spark.eventLog.dir", dir.toUri().toString())
          .set("spark.eventLog.rolling.enabled", "false").set("spark.eventLog.compress", "false"));
      int window = MoeEvents.window(STEPS);
      int windows = STEPS / window;
      long posted = System.nanoTime();
      long dropped;
      try {
        sc.sc().listenerBus().post(new MoeEvents.RunStarted("scale", "{}", STEPS, window, 0));
        MoeEvents.WindowBuilder b = new MoeEvents.WindowBuilder(STEPS);
        long[][] tokens = new long[shape[0]][shape[1]];
        for (int s = 0; s < STEPS; s++) {
          for (long[] layer : tokens) {
            java.util.Arrays.fill(layer, 1000 + s % 7);
          }
          MoeEvents.Window closed = b.add(s, 3 + 1.0 / (s + 1), 3, 0.01, 1e-4, 3e-4, 0.5, 0.1, 10_000, 0.02, 3_000_000,
              1.2, tokens, tokens);
          if (closed != null) {
            sc.sc().listenerBus().post(closed);
          }
          if ((s + 1) % 100 == 0) {
            sc.sc().listenerBus().post(new MoeEvents.Validation(s + 1, 3.1));
          }
        }
        sc.sc().listenerBus().waitUntilEmpty();
        assertEquals(windows, sc.sc().statusStore().store().count(MoeStore.WindowRow.class), "every window in the store");
        dropped = sc.sc().listenerBus().metrics().metricRegistry().getCounters().entrySet().stream()
            .filter(e -> e.getKey().endsWith("numDroppedEvents")).mapToLong(e -> e.getValue().getCount()).sum();
      } finally {
        sc.stop();
      }
      double postSeconds = (System.nanoTime() - posted) / 1e9;
      assertEquals(0, dropped, "no listener event dropped");
      List<Path> logs;
      try (var s = Files.list(dir)) {
        logs = s.toList();
      }
      assertEquals(1, logs.size());
      byte[] log = Files.readAllBytes(logs.get(0));
      ByteArrayOutputStream z = new ByteArrayOutputStream();
      try (var out = new com.github.luben.zstd.ZstdOutputStream(z)) {
        out.write(log);
      }
      InMemoryStore replayed = new InMemoryStore();
      ReplayListenerBus bus = new ReplayListenerBus();
      bus.addListener(new MoeStore.Listener(replayed));
      long t0 = System.nanoTime();
      try (InputStream in = Files.newInputStream(logs.get(0))) {
        bus.replay(in, logs.get(0).toString(), false, ReplayListenerBus$.MODULE$.SELECT_ALL_FILTER());
      }
      double replaySeconds = (System.nanoTime() - t0) / 1e9;
      assertEquals(windows, replayed.count(MoeStore.WindowRow.class), "every window replayed");
      assertEquals(STEPS / 100, replayed.count(MoeStore.ValidationRow.class));
      assertTrue(log.length < 20 << 20, "the event log stays under 20 MB: " + log.length);
      System.out.printf(Locale.ROOT, "%d steps, %d MoE layers x %d experts: %d window events of %d steps; event log %.2f MB "
          + "(%.2f MB zstd, Spark's default), posted and stored in %.1f s, 0 dropped; replayed in %.2f s%n", STEPS,
          shape[0], shape[1], windows, window, log.length / 1e6, z.size() / 1e6, postSeconds, replaySeconds);
    }
  }
}

package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.RunConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;

/**
 * The GPU Spark assigns to a rank's task reaches the driver (the MoE tab's placement shows it): two executor
 * JVMs with one schedulable "gpu" resource each (a discovery script naming address 3), one GPU per task as
 * conf/spark-gpu-cluster.properties asks. Scheduling only: no GPU is used.
 */
class GpuPlacementTest {
  @Test
  void eachRankKnowsTheGpuItsTaskWasGiven() {
    String script = Path.of("src", "test", "resources", "one-gpu-discovery.sh").toAbsolutePath().toString();
    JavaSparkContext sc = LocalCluster.start(2, 1, 1024, Map.of("spark.worker.resource.gpu.amount", "1",
        "spark.worker.resource.gpu.discoveryScript", script, "spark.executor.resource.gpu.amount", "1",
        "spark.task.resource.gpu.amount", "1", "spark.executor.resource.gpu.discoveryScript", script));
    try {
      RunConfig cfg = SmallRuns.config(4, 2, "train.steps=1");
      try (RankGroup ranks = RankGroup.open(sc, cfg, ExpertPlacement.contiguous(cfg, 2), null)) {
        assertEquals(List.of("3", "3"), ranks.gpus(), "each executor's one GPU, as discovered");
        for (String arena : ranks.arenas()) {
          assertTrue(arena.matches("cpu \\d+\\.\\d MiB \\(peak \\d+\\.\\d MiB, \\d+ allocations\\)"),
              "each rank reports its backend's arena: " + arena);
        }
      }
    } finally {
      sc.stop();
    }
  }
}

package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.RunConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HashMap;
import java.util.Map;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPU Spark assigns to a rank's task is the one the rank reports (and the MoE tab's placement shows):
 * two executor JVMs with one schedulable "gpu" resource each, a different address each (a discovery script
 * that hands out the next free address), one GPU per task as conf/spark-gpu-cluster.properties asks. Each
 * rank's address must be the one Spark's status store lists for the executor the rank ran on. Scheduling
 * only: no GPU is used (the CPU backend's arena is what each rank reports).
 */
class GpuPlacementTest {
  @Test
  void eachRankReportsTheGpuItsExecutorWasGiven(@TempDir Path tmp) throws Exception {
    Path script = tmp.resolve("next-gpu-discovery.sh");
    // mkdir is atomic: each discovery (one per worker) claims the next address, 5 then 6.
    Files.writeString(script, "#!/usr/bin/env bash\nfor a in 5 6 7 8; do\n  if mkdir \"" + tmp + "/claimed-$a\" 2>/dev/null; then\n"
        + "    echo \"{\\\"name\\\": \\\"gpu\\\", \\\"addresses\\\": [\\\"$a\\\"]}\"; exit 0\n  fi\ndone\nexit 1\n");
    Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwx------"));
    JavaSparkContext sc = LocalCluster.start(2, 1, 1024, Map.of("spark.worker.resource.gpu.amount", "1",
        "spark.worker.resource.gpu.discoveryScript", script.toString(), "spark.executor.resource.gpu.amount", "1",
        "spark.task.resource.gpu.amount", "1", "spark.executor.resource.gpu.discoveryScript", script.toString()));
    try {
      RunConfig cfg = SmallRuns.config(4, 2, "train.steps=1");
      try (RankGroup ranks = RankGroup.open(sc, cfg, ExpertPlacement.contiguous(cfg, 2), null)) {
        Map<String, String> given = new HashMap<>();
        for (var e : scala.jdk.javaapi.CollectionConverters.asJava(sc.sc().statusStore().executorList(true))) {
          var gpu = e.resources().get("gpu");
          if (gpu.isDefined()) {
            given.put(e.id(), String.join(",", gpu.get().addresses()));
          }
        }
        assertEquals(2, new java.util.HashSet<>(given.values()).size(), "two executors, a GPU address each: " + given);
        for (int r = 0; r < 2; r++) {
          assertEquals(given.get(ranks.executors().get(r)), ranks.gpus().get(r),
              "rank " + r + " on executor " + ranks.executors().get(r) + " reports that executor's GPU: " + given);
        }
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

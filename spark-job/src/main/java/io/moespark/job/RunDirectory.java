package io.moespark.job;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.job.io.CheckpointStore;
import io.moespark.job.io.RunFiles;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * A run directory as a run starts in it: what an interrupted run left half-done is removed (uncommitted
 * checkpoints, unfinished exports); with {@code --resume} the run continues from the newest intact
 * checkpoint (or fails saying why there is none); without, a directory that already holds a run is
 * refused. Then the run's config (and, for a new run, its master) are written.
 */
public final class RunDirectory {
  /** The run's configuration, as every checkpoint also holds it. */
  public static final String CONFIG = "config.json";
  /** The Spark master the run started on ({@code {"master": ...}}), which {@code --resume} uses by default. */
  public static final String LAUNCH = "launch.json";
  /** One line per step (and per event: placement_move). */
  public static final String METRICS = "metrics.jsonl";
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Where the run starts: a checkpoint (null: the beginning) and the placement to open the ranks with. */
  record Start(CheckpointStore.Stored from, ExpertPlacement placement) {}

  private RunDirectory() {}

  static Start prepare(RunConfig cfg, Path runDir, FileSystem fs, CheckpointStore store, String configJson,
      String master, boolean resume, PrintStream console) throws IOException {
    CheckpointStore.Stored from = null;
    int removed = store.removeUncommitted();
    if (removed > 0) {
      console.printf(Locale.ROOT, "removed %d uncommitted checkpoint folder(s) of an interrupted run%n", removed);
    }
    int exports = RunFiles.removeTemporaries(fs, runDir);
    if (exports > 0) {
      console.printf(Locale.ROOT, "removed %d unfinished temporary file(s) or folder(s) of an interrupted export%n",
          exports);
    }
    if (resume) {
      List<String> damaged = new ArrayList<>();
      from = store.latestIntact(w -> {
        damaged.add(w);
        console.println(w);
      }).orElse(null);
      if (from == null) {
        if (!damaged.isEmpty()) { // corrupt data is an I/O failure (exit 1), not a usage error
          throw new IllegalStateException("--resume: no intact checkpoint to continue from: "
              + String.join("; ", damaged));
        }
        throw new ConfigException("--resume: no checkpoint under " + new Path(runDir, CheckpointStore.DIR)
            + "; run again without --resume to start over");
      }
      if (from.step() > cfg.train().steps()) {
        throw new ConfigException("--resume: the last checkpoint is at step " + from.step() + ", past train.steps = "
            + cfg.train().steps() + " (raise train.steps with --set)");
      }
      console.printf(Locale.ROOT, from.step() == cfg.train().steps()
          ? "nothing left to run: exporting the model from %s (step %d, written with %d ranks)%n"
          : "resuming from %s (step %d, written with %d ranks)%n", from.dir(), from.step(),
          JSON.readTree(from.stateJson()).path("ranks").asInt());
    } else if (store.hasCommitted()) {
      throw new ConfigException("--run-dir " + runDir + " already holds a run; pass --resume to continue it or "
          + "choose another directory");
    } else if (fs.exists(new Path(runDir, METRICS))) {
      // A start that failed or was killed before its first checkpoint left nothing to continue: start over.
      console.println("starting over in " + runDir + " (it holds no checkpoint of an earlier attempt)");
    }
    fs.mkdirs(runDir);
    write(fs, new Path(runDir, CONFIG), configJson);
    if (from == null) {
      write(fs, new Path(runDir, LAUNCH), JSON.createObjectNode().put("master", master).toString());
    }
    return new Start(from, placementFor(cfg, from));
  }

  /**
   * The placement a run continues with: the checkpoint's when it was written with this R (and holds each
   * expert once, unless on the direct path, the one that runs replicas), else the default.
   */
  static ExpertPlacement placementFor(RunConfig cfg, CheckpointStore.Stored from) throws IOException {
    if (from != null) {
      JsonNode state = JSON.readTree(from.stateJson());
      if (state.path("ranks").asInt() == cfg.parallel().ranks()) {
        ExpertPlacement p = ExpertPlacement.fromJson(state.get("placement"), cfg.parallel().ranks());
        if (!p.hasReplicas() || cfg.parallel().dispatch() == RunConfig.Dispatch.DIRECT) {
          return p;
        }
      }
    }
    return ExpertPlacement.contiguous(cfg, cfg.parallel().ranks());
  }

  /** Replaces {@code file} with {@code text} atomically. */
  static void write(FileSystem fs, Path file, String text) throws IOException {
    RunFiles.replace(fs, file, out -> out.write(text.getBytes(StandardCharsets.UTF_8)));
  }
}

package io.moespark.job;

import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.train.TokenData;
import io.moespark.ops.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;

/** A small model on the bundled corpus (byte tokens), and the single-process trainer as the reference. */
final class SmallRuns {
  static final Path CORPUS = Path.of("..", "data", "corpus", "moby-dick.txt.gz").toAbsolutePath().normalize();

  private SmallRuns() {}

  static RunConfig config(int experts, int ranks, String... more) {
    return ConfigLoader.load(null, sets(experts, ranks, more));
  }

  /** The {@code --set} values of {@link #config}. */
  static List<String> sets(int experts, int ranks, String... more) {
    List<String> sets = new ArrayList<>(List.of("model.d_model=32", "model.n_layers=2", "model.n_heads=2",
        "model.d_ff=64", "model.seq_len=32", "moe.experts=" + experts, "moe.top_k=2", "moe.d_expert=48",
        "moe.shared_experts=1", "moe.capacity_factor=0", "train.batch_size=8", "train.steps=5",
        "train.warmup_steps=2", "train.eval_batches=1", "data.path=" + CORPUS, "parallel.ranks=" + ranks));
    sets.addAll(List.of(more));
    return sets;
  }

  /** Runs {@code cfg} to its end in {@code dir} (console discarded) and returns the exported model's bytes. */
  static byte[] uninterruptedModel(org.apache.spark.api.java.JavaSparkContext sc, RunConfig cfg, Path dir)
      throws java.io.IOException {
    TrainJob.run(sc, cfg, dir.toString(), false, 0, new java.io.PrintStream(java.io.OutputStream.nullOutputStream()));
    return java.nio.file.Files.readAllBytes(dir.resolve("model/model.safetensors"));
  }

  /** The single-process trainer's losses for the config's steps, and the trainer after them. */
  static Trainer reference(RunConfig cfg, double[] losses) {
    Trainer t = Trainer.singleProcess(cfg,
        TokenData.split(TokenData.load(CORPUS, "auto", "data.path"), cfg.data().valFraction()).train(), CpuBackend.INSTANCE, DType.F32);
    for (int s = 0; s < losses.length; s++) {
      losses[s] = t.step().loss().total();
    }
    return t;
  }
}

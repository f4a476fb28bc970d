package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.HuggingFace;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.io.SafeTensors;
import io.moespark.ops.tensor.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code moe-train --init-from} on two executor JVMs: a run's model exported as a Hugging Face Mixtral
 * directory and imported into a new run (each rank reading only its experts) starts from exactly the
 * exported weights; a directory that does not fit the run's config, and --init-from with --resume, are
 * refused before any executor work.
 */
class HfInitTest extends OnTwoExecutors {
  static RunConfig cfg(String... more) {
    java.util.List<String> sets = new java.util.ArrayList<>(java.util.List.of("moe.shared_experts=0", "train.steps=3",
        "train.eval_every=0", "checkpoint.every=0"));
    sets.addAll(java.util.List.of(more));
    return SmallRuns.config(4, 2, sets.toArray(String[]::new));
  }

  private static Map<String, Tensor> weights(Path model) throws IOException {
    try (InputStream in = Files.newInputStream(model.resolve(ModelFiles.WEIGHTS))) {
      return SafeTensors.read(in, model.toString(), CpuBackend.INSTANCE);
    }
  }

  @Test
  void exportedMixtralStartsANewRunWithExactlyItsWeights(@TempDir Path tmp) throws IOException {
    PrintStream quiet = new PrintStream(new ByteArrayOutputStream());
    TrainJob.run(sc, cfg(), tmp.resolve("a").toString(), false, 0, quiet);
    Path hf = Files.createDirectories(tmp.resolve("hf"));
    HuggingFace.exportMixtral(tmp.resolve("a/model"), hf);

    // One step at a learning rate far below every weight's last bit: the export shows what the ranks loaded.
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    TrainJob.run(sc, cfg("train.steps=1", "train.lr=1e-30", "train.warmup_steps=1", "train.seed=99"),
        tmp.resolve("b").toString(), false, 0, hf.toString(), new PrintStream(out));
    assertTrue(out.toString().contains("initialised from the Mixtral model"), out.toString());
    Map<String, Tensor> a = weights(tmp.resolve("a/model")), b = weights(tmp.resolve("b/model"));
    assertEquals(a.keySet(), b.keySet());
    for (String name : a.keySet()) {
      assertArrayEquals(CpuBackend.array(a.get(name)).dup().data().asFloat(),
          CpuBackend.array(b.get(name)).dup().data().asFloat(), 1e-25f, name);
    }
  }

  /**
   * Weights cut short after their header (the driver reads only the config and the header): the ranks
   * find it, and the run ends at once as bad input naming the file, without the restarts meant for lost
   * executors.
   */
  @Test
  void aTruncatedWeightsFileIsBadInputNamingItNotALostExecutor(@TempDir Path tmp) throws IOException {
    TrainJob.run(sc, cfg(), tmp.resolve("a").toString(), false, 0, new PrintStream(new ByteArrayOutputStream()));
    Path hf = Files.createDirectories(tmp.resolve("hf"));
    HuggingFace.exportMixtral(tmp.resolve("a/model"), hf);
    Path weights = hf.resolve(ModelFiles.WEIGHTS);
    byte[] all = Files.readAllBytes(weights);
    Files.write(weights, java.util.Arrays.copyOf(all, all.length * 9 / 10));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ConfigException e = assertThrows(ConfigException.class, () -> TrainJob.run(sc, cfg(), tmp.resolve("b").toString(),
        false, 0, hf.toString(), new PrintStream(out)));
    assertTrue(e.getMessage().contains(hf + "/" + ModelFiles.WEIGHTS + ": truncated"), e.getMessage());
    assertTrue(!out.toString().contains("restart"), "no restart: " + out);
  }

  @Test
  void aDirectoryThatDoesNotFitTheRunIsRefusedBeforeAnyExecutorWork(@TempDir Path tmp) throws IOException {
    PrintStream quiet = new PrintStream(new ByteArrayOutputStream());
    Path hf = Files.createDirectories(tmp.resolve("hf"));
    RunConfig other = cfg("model.d_model=48");
    new com.fasterxml.jackson.databind.ObjectMapper().writeValue(hf.resolve(ModelFiles.CONFIG).toFile(),
        HuggingFace.mixtralConfig(other.model(), other.moe(), 0));
    ConfigException e = assertThrows(ConfigException.class,
        () -> TrainJob.run(sc, cfg(), tmp.resolve("r").toString(), false, 0, hf.toString(), quiet));
    assertTrue(e.getMessage().contains("hidden_size = 48") && e.getMessage().contains("model.d_model = 32"),
        e.getMessage());
    assertTrue(!Files.exists(tmp.resolve("r")), "nothing written");
    ConfigException r = assertThrows(ConfigException.class,
        () -> TrainJob.run(sc, cfg(), tmp.resolve("r").toString(), true, 0, hf.toString(), quiet));
    assertTrue(r.getMessage().contains("--resume"), r.getMessage());
  }
}

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

  /**
   * The fine-tuning path end to end on a Mixtral that transformers made (tools/make_hf_fixtures.py): data
   * prepared with its tokenizer, which --init-from then accepts; samples at each validation; the model
   * directory keeps the tokenizer with its config, and the last samples are what moe-generate's generator
   * gives on it.
   */
  @Test
  void aCheckpointsOwnTokenizerPreparesTheDataAndTheRunSamplesWithIt(@TempDir Path tmp) throws Exception {
    Path checkpoint = Path.of("..", "expert-ops", "src", "test", "resources", "fixtures", "hf_mixtral_gen");
    Path text = tmp.resolve("book.txt"), prepared = tmp.resolve("prepared");
    try (InputStream in = new java.util.zip.GZIPInputStream(Files.newInputStream(SmallRuns.CORPUS))) {
      Files.writeString(text, new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).substring(0, 60_000));
    }
    io.moespark.prep.PrepOptions d = io.moespark.prep.PrepOptions.defaults(java.util.List.of(text.toString()),
        prepared.toString());
    new io.moespark.prep.PrepJob(org.apache.spark.sql.SparkSession.builder().getOrCreate(),
        new io.moespark.prep.PrepOptions(d.inputs(), d.output(), d.vocabSize(), 32, 0.1, d.format(), d.textField(),
            d.minChars(), d.maxChars(), d.minLetterFraction(), d.maxRepeatedLineRatio(), d.nearDupJaccard(), 2, false,
            d.master(), checkpoint.toString()), s -> {}).run();
    RunConfig c = io.moespark.ops.config.ConfigLoader.load(null, java.util.List.of("model.vocab_size=600",
        "model.d_model=64", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.d_ff=96",
        "model.seq_len=32", "model.rope_theta=1e6", "model.norm_eps=1e-5", "moe.every=1", "moe.experts=4",
        "moe.top_k=2", "moe.d_expert=96", "moe.shared_experts=0", "moe.capacity_factor=0", "train.batch_size=4",
        "train.steps=2", "train.warmup_steps=1", "train.eval_every=1", "train.eval_batches=1",
        "train.sample_prompts=[\"Call me Ishmael.\", \"The whale\"]", "train.sample_tokens=6",
        "checkpoint.every=0", "data.path=" + prepared, "parallel.ranks=2"));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    TrainJob.run(sc, c, tmp.resolve("run").toString(), false, 0, checkpoint.toString(), new PrintStream(out));
    String console = out.toString();
    assertTrue(console.contains("step 1/2 · sample: Call me Ishmael. → "), console);
    assertTrue(console.contains("step 2/2 · sample: The whale → "), console);
    Path model = tmp.resolve("run/model");
    assertEquals(Files.readString(checkpoint.resolve("tokenizer_config.json")),
        Files.readString(model.resolve("tokenizer_config.json")));
    java.util.List<String> lines = Files.readAllLines(tmp.resolve("run/metrics.jsonl"));
    com.fasterxml.jackson.databind.JsonNode last = new com.fasterxml.jackson.databind.ObjectMapper()
        .readTree(lines.get(lines.size() - 1));
    io.moespark.ops.model.Generator g = new io.moespark.ops.model.Generator(ModelFiles.load(model, CpuBackend.INSTANCE));
    try (io.moespark.ops.text.HfTokenizer tok = io.moespark.ops.text.HfTokenizer.open(model)) {
      for (int i = 0; i < 2; i++) {
        String prompt = c.train().samplePrompts().get(i);
        int[] ids = g.generate(tok.encode(prompt), 6, tok.specials().eosId(),
            io.moespark.ops.model.Generator.Sampling.GREEDY);
        assertEquals(prompt, last.path("samples").path(i).path("prompt").asText());
        assertEquals(tok.decode(ids, false), last.path("samples").path(i).path("text").asText(), console);
      }
    }
  }

  @Test
  void samplePromptsWithoutATokenizerAreRefusedBeforeAnythingIsWritten(@TempDir Path tmp) {
    ConfigException e = assertThrows(ConfigException.class, () -> TrainJob.run(sc,
        cfg("train.eval_every=1", "train.sample_prompts=[\"Call me\"]"), tmp.resolve("r").toString(), false, 0,
        new PrintStream(new ByteArrayOutputStream())));
    assertTrue(e.getMessage().startsWith("train.sample_prompts: the run has no tokenizer"), e.getMessage());
    assertTrue(!Files.exists(tmp.resolve("r")), "nothing written");
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

package io.moespark.ops.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.TestTensors;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.Init;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Hugging Face directories: Mixtral export and import round trips, upcycling a dense Llama model, refusals. */
class HuggingFaceTest {
  private static final CpuBackend CPU = CpuBackend.INSTANCE;
  private static final List<String> MIXTRAL = List.of("model.vocab_size=40", "model.d_model=16", "model.n_layers=2",
      "model.n_heads=2", "model.d_ff=24", "model.seq_len=8", "moe.every=1", "moe.experts=4", "moe.top_k=2",
      "moe.d_expert=12", "moe.shared_experts=0");

  static RunConfig config(List<String> base, String... extra) {
    List<String> s = new ArrayList<>(base);
    s.addAll(List.of(extra));
    return ConfigLoader.load(null, s);
  }

  private static int[][] tokens(int batch, int seq, int vocab) {
    int[] in = new int[batch * seq], tg = new int[batch * seq];
    for (int i = 0; i < in.length; i++) {
      in[i] = (int) ((i * 2654435761L >>> 5) % vocab);
      tg[i] = (int) ((i * 40503L + 7) % vocab);
    }
    return new int[][] {in, tg};
  }

  private static double loss(TransformerLM m) {
    int[][] t = tokens(3, m.config().seqLen(), m.config().vocabSize());
    m.setCapacityFactor(0);
    return m.evalLossSum(t[0], t[1], 3, Exchange.LOCAL, Reducer.LOCAL);
  }

  private static Path exportProject(TransformerLM m, Path dir) throws IOException {
    Files.createDirectories(dir);
    ModelFiles.writeInto(dir, m);
    Files.writeString(dir.resolve(HuggingFace.TOKENIZER), "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, "
        + "\"content\": \"<|endoftext|>\", \"special\": true}], \"model\": {\"type\": \"BPE\"}}");
    return dir;
  }

  private static HuggingFace.Opener opener(Path dir) {
    return name -> Files.newInputStream(dir.resolve(name));
  }

  private static List<String> tensorNames(Path file) throws IOException {
    try (DataInputStream in = new DataInputStream(Files.newInputStream(file))) {
      return SafeTensors.readHeader(in, file.toString()).stream().map(SafeTensors.Entry::name).toList();
    }
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"model.n_kv_heads=0", "model.n_heads=4,model.n_kv_heads=2", "model.n_kv_heads=1",
      "model.tie_embeddings=true", "model.rope_scaling=llama3,model.rope_scaling_factor=8,model.rope_original_max_positions=64",
      "model.rope_scaling=linear,model.rope_scaling_factor=2"})
  void mixtralExportThenImportIsBitIdenticalWithTheSameLoss(String heads, @TempDir Path tmp) throws IOException {
    RunConfig c = config(MIXTRAL, heads.split(","));
    TransformerLM m = TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32);
    m.init(7);
    Path hf = Files.createDirectories(tmp.resolve("hf"));
    HuggingFace.exportMixtral(exportProject(m, tmp.resolve("model")), hf);

    JsonNode cfg = ModelFiles.JSON.readTree(hf.resolve(ModelFiles.CONFIG).toFile());
    assertEquals("mixtral", cfg.get("model_type").asText());
    assertEquals(16, cfg.get("hidden_size").asInt());
    assertEquals(12, cfg.get("intermediate_size").asInt());
    assertEquals(4, cfg.get("num_local_experts").asInt());
    assertEquals(2, cfg.get("num_experts_per_tok").asInt());
    assertEquals(c.model().kvHeads(), cfg.get("num_key_value_heads").asInt());
    assertEquals(c.model().nHeads(), cfg.get("num_attention_heads").asInt());
    assertEquals(0, cfg.get("eos_token_id").asInt());
    assertEquals("<|endoftext|>", ModelFiles.JSON.readTree(hf.resolve("tokenizer_config.json").toFile())
        .get("eos_token").asText());
    assertTrue(Files.exists(hf.resolve("generation_config.json")) && Files.exists(hf.resolve(HuggingFace.TOKENIZER)));
    List<String> names = tensorNames(hf.resolve(ModelFiles.WEIGHTS));
    assertTrue(names.contains("model.layers.1.block_sparse_moe.experts.3.w2.weight"), names.toString());
    assertTrue(names.contains("model.layers.0.self_attn.q_proj.weight") && names.contains("model.embed_tokens.weight")
        && names.contains("model.layers.1.block_sparse_moe.gate.weight"), names.toString());
    // Tied: transformers ties lm_head to the embedding itself, so the file has none.
    assertEquals(!c.model().tieEmbeddings(), names.contains("lm_head.weight"), names.toString());
    assertEquals(c.model().tieEmbeddings(), cfg.get("tie_word_embeddings").asBoolean());

    HuggingFace.checkCompatible(cfg, c, "hf/config.json");
    TransformerLM back = TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32);
    back.init(99);
    HuggingFace.load(back, HuggingFace.Source.MIXTRAL, null, opener(hf), hf.toString(), 0.1, 1);
    for (Param p : m.params().all()) {
      assertArrayEquals(TestTensors.nd(p.value()).dup().data().asFloat(),
          TestTensors.nd(back.params().get(p.name()).value()).dup().data().asFloat(), 0f, p.name());
    }
    assertEquals(loss(m), loss(back), 0.0);
    // Imported, then exported again: the same weights file, byte for byte.
    Path again = Files.createDirectories(tmp.resolve("hf2"));
    HuggingFace.exportMixtral(exportProject(back, tmp.resolve("model2")), again);
    assertArrayEquals(Files.readAllBytes(hf.resolve(ModelFiles.WEIGHTS)), Files.readAllBytes(again.resolve(ModelFiles.WEIGHTS)));
  }

  @Test
  void aRankReadsOnlyItsExpertsFromAShardedDirectory(@TempDir Path tmp) throws IOException {
    RunConfig c = config(MIXTRAL);
    TransformerLM m = TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32);
    m.init(3);
    // Two shard files and an index, as large Hugging Face checkpoints come.
    Map<String, Tensor> a = new LinkedHashMap<>(), b = new LinkedHashMap<>();
    ObjectNode index = ModelFiles.JSON.createObjectNode(), map = index.putObject("weight_map");
    for (Param p : m.params().all()) {
      String hf = HuggingFace.mixtralName(p.name());
      boolean first = !p.name().startsWith("layers.1");
      (first ? a : b).put(hf, p.value());
      map.put(hf, first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
    }
    Path hf = Files.createDirectories(tmp.resolve("hf"));
    for (var f : Map.of("model-00001-of-00002.safetensors", a, "model-00002-of-00002.safetensors", b).entrySet()) {
      try (OutputStream out = Files.newOutputStream(hf.resolve(f.getKey()))) {
        SafeTensors.write(f.getValue(), Map.of(), out);
      }
    }
    List<String> opened = new ArrayList<>();
    TransformerLM rank1 = new TransformerLM(c.model(), c.moe(), l -> ShardLayout.contiguous(4, 2, 1), CPU, DType.F32);
    HuggingFace.load(rank1, HuggingFace.Source.MIXTRAL, index, name -> {
      opened.add(name);
      return Files.newInputStream(hf.resolve(name));
    }, hf.toString(), 0, 1);
    assertEquals(2, opened.size());
    assertTrue(rank1.params().contains("layers.0.moe.experts.2.w1.weight"));
    assertTrue(!rank1.params().contains("layers.0.moe.experts.1.w1.weight"), "rank 1 of 2 holds experts 2 and 3");
    for (Param p : rank1.params().all()) {
      assertArrayEquals(TestTensors.nd(m.params().get(p.name()).value()).dup().data().asFloat(),
          TestTensors.nd(p.value()).dup().data().asFloat(), 0f, p.name());
    }
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"model.n_kv_heads=0", "model.n_heads=4,model.n_kv_heads=2,model.tie_embeddings=true",
      "model.n_heads=4,model.n_kv_heads=2,model.qkv_bias=true,model.tie_embeddings=true"})
  void upcycledModelComputesWhatTheDenseModelComputes(String heads, @TempDir Path tmp) throws IOException {
    // A dense Llama-layout model (no MoE layer: every > n_layers), in float64 so equality is tight.
    List<String> base = new ArrayList<>(MIXTRAL);
    base.addAll(List.of(heads.split(",")));
    RunConfig dense = config(base, "moe.every=3", "model.d_ff=12");
    TransformerLM d = TransformerLM.singleRank(dense.model(), dense.moe(), CPU, DType.F64);
    d.init(11);
    boolean qwen2 = dense.model().qkvBias(); // Qwen2: Llama's layout with biases on q, k and v
    for (Param p : d.params().all()) {
      if (p.name().endsWith(".bias")) { // non-zero biases, so that loading them shows in the loss
        Init.normal(p.value(), 4, p.name(), 0.5);
      }
    }
    Path llama = Files.createDirectories(tmp.resolve("llama"));
    Map<String, Tensor> named = new LinkedHashMap<>();
    for (Param p : d.params().all()) {
      named.put(p.name().contains(".ffn.") ? p.name().replaceFirst("^layers\\.(\\d+)\\.ffn\\.w1", "model.layers.$1.mlp.gate_proj")
          .replaceFirst("^layers\\.(\\d+)\\.ffn\\.w3", "model.layers.$1.mlp.up_proj")
          .replaceFirst("^layers\\.(\\d+)\\.ffn\\.w2", "model.layers.$1.mlp.down_proj")
          : HuggingFace.mixtralName(p.name()), p.value());
    }
    try (OutputStream out = Files.newOutputStream(llama.resolve(ModelFiles.WEIGHTS))) {
      SafeTensors.write(named, Map.of("format", "pt"), out);
    }
    ObjectNode cfg = HuggingFace.mixtralConfig(dense.model(), dense.moe(), 0);
    cfg.put("model_type", qwen2 ? "qwen2" : "llama");
    cfg.remove(List.of("num_local_experts", "num_experts_per_tok"));

    // Upcycled: every layer MoE, 4 experts of the dense FFN's size, top-2 with renormalised gates.
    RunConfig moe = config(base);
    HuggingFace.checkCompatible(cfg, moe, "llama/config.json");
    TransformerLM up = TransformerLM.singleRank(moe.model(), moe.moe(), CPU, DType.F64);
    up.init(5);
    double[] router = TestTensors.nd(up.params().get("layers.0.moe.router.weight").value()).dup().data().asDouble();
    HuggingFace.Source source = HuggingFace.source(cfg, "config.json");
    assertEquals(qwen2 ? HuggingFace.Source.QWEN2 : HuggingFace.Source.LLAMA, source);
    HuggingFace.load(up, source, null, opener(llama), llama.toString(), 0, 1);
    for (int e = 0; e < 4; e++) {
      assertEquals(TestTensors.nd(d.params().get("layers.1.ffn.w2.weight").value()),
          TestTensors.nd(up.params().get("layers.1.moe.experts." + e + ".w2.weight").value()), "expert " + e);
    }
    assertArrayEquals(router, TestTensors.nd(up.params().get("layers.0.moe.router.weight").value()).dup().data()
        .asDouble(), 0.0, "the router keeps the run's initialisation");
    double dl = loss(d), ul = loss(up);
    assertEquals(dl, ul, 1e-12 * Math.abs(dl), "first forward pass of the upcycled model");
    assertNotEquals(0.0, dl);

    // The directory as a model of its own (moe-generate --model): one expert per layer, top-1, in float32.
    ModelFiles.JSON.writeValue(llama.resolve(ModelFiles.CONFIG).toFile(), cfg);
    assertTrue(HuggingFace.isModelDirectory(llama));
    TransformerLM own = HuggingFace.loadModel(llama, CPU);
    assertEquals(1, own.moeConfig().experts());
    assertEquals(dl, loss(own), 1e-5 * Math.abs(dl), "the dense model as one expert per layer");

    // With noise (train.upcycle_noise), the copies differ from each other by about that much, reproducibly.
    TransformerLM noisy = TransformerLM.singleRank(moe.model(), moe.moe(), CPU, DType.F64);
    HuggingFace.load(noisy, source, null, opener(llama), llama.toString(), 0.01, 3);
    var ffn = TestTensors.nd(d.params().get("layers.0.ffn.w1.weight").value());
    var e0 = TestTensors.nd(noisy.params().get("layers.0.moe.experts.0.w1.weight").value());
    var e1 = TestTensors.nd(noisy.params().get("layers.0.moe.experts.1.w1.weight").value());
    double rel = e0.sub(ffn).norm2Number().doubleValue() / ffn.norm2Number().doubleValue();
    assertTrue(rel > 0.005 && rel < 0.02, "relative noise " + rel);
    assertNotEquals(e0, e1);
    TransformerLM again = TransformerLM.singleRank(moe.model(), moe.moe(), CPU, DType.F64);
    HuggingFace.load(again, source, null, opener(llama), llama.toString(), 0.01, 3);
    assertEquals(e0, TestTensors.nd(again.params().get("layers.0.moe.experts.0.w1.weight").value()));
  }

  @Test
  void configsMixtralLacksAreRefusedNamingTheFeature() {
    String[][] cases = {{"moe.every=2", "moe.every = 2"}, {"moe.shared_experts=1", "shared experts"},
        {"moe.activation=gelu", "moe.activation = gelu"}, {"moe.router=expert_choice", "moe.router = expert_choice"},
        {"moe.router=hash", "moe.router = hash"}, {"moe.norm_topk=false", "moe.norm_topk = false"},
        {"model.qkv_bias=true", "model.qkv_bias = true"}};
    for (String[] k : cases) {
      RunConfig c = config(MIXTRAL, k[0], k[0].equals("moe.router=hash") ? "moe.top_k=1" : "moe.top_k=2");
      String why = HuggingFace.mixtralRefusal(c.model(), c.moe());
      assertTrue(why != null && why.contains(k[1]), k[0] + ": " + why);
    }
    RunConfig ok = config(MIXTRAL);
    assertNull(HuggingFace.mixtralRefusal(ok.model(), ok.moe()));
  }

  @Test
  void aMismatchedHuggingFaceConfigNamesBothKeys(@TempDir Path tmp) {
    RunConfig c = config(MIXTRAL);
    ObjectNode cfg = HuggingFace.mixtralConfig(c.model(), c.moe(), 0);
    cfg.put("hidden_size", 32);
    cfg.put("num_key_value_heads", 1);
    ConfigException e = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(cfg, c, "x/config.json"));
    assertTrue(e.getMessage().contains("x/config.json") && e.getMessage().contains("hidden_size = 32")
        && e.getMessage().contains("model.d_model = 16") && e.getMessage().contains("num_key_value_heads = 1, the run's "
        + "model.n_kv_heads (key/value heads) = 2"), e.getMessage());
    cfg.put("model_type", "gpt2");
    ConfigException t = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(cfg, c, "x/config.json"));
    assertTrue(t.getMessage().contains("model_type 'gpt2'"), t.getMessage());
    RunConfig gelu = config(MIXTRAL, "moe.activation=gelu");
    ConfigException r = assertThrows(ConfigException.class, () -> HuggingFace.exportMixtral(tmp, tmp.resolve("o")));
    assertTrue(r.getMessage().contains("config.json"), r.getMessage());
    assertTrue(HuggingFace.mixtralRefusal(gelu.model(), gelu.moe()).contains("SwiGLU"));
  }

  /**
   * A key a config.json leaves out means what transformers makes of it (MixtralConfig's rope_theta is
   * 1e6, LlamaConfig's rms_norm_eps 1e-6), and a sliding window shorter than the run's sequences is
   * refused: either would otherwise import a model that computes something else.
   */
  @Test
  void absentKeysMeanTransformersDefaultsAndAShortSlidingWindowIsRefused() {
    RunConfig c = config(MIXTRAL);
    ObjectNode cfg = HuggingFace.mixtralConfig(c.model(), c.moe(), 0);
    cfg.remove("rope_theta");
    ConfigException e = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(cfg, c, "m/config.json"));
    assertTrue(e.getMessage().contains("rope_theta = 1000000.0, the run's model.rope_theta = 10000.0 (absent from the "
        + "file: transformers' default)"), e.getMessage());
    HuggingFace.checkCompatible(cfg, config(MIXTRAL, "model.rope_theta=1e6"), "m/config.json");
    cfg.remove("rms_norm_eps"); // MixtralConfig's 1e-5 is the run's too
    HuggingFace.checkCompatible(cfg, config(MIXTRAL, "model.rope_theta=1e6"), "m/config.json");

    ObjectNode llama = cfg.deepCopy();
    llama.put("model_type", "llama");
    llama.put("rope_theta", 10000.0);
    ConfigException eps = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(llama, c, "l/config.json"));
    assertTrue(eps.getMessage().contains("rms_norm_eps = 1.0E-6") && eps.getMessage().contains("absent from the file"),
        eps.getMessage());

    cfg.put("rope_theta", 10000.0);
    cfg.put("sliding_window", 4); // the run's sequences are 8 long
    ConfigException w = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(cfg, c, "m/config.json"));
    assertTrue(w.getMessage().contains("sliding_window = 4 is shorter than the run's model.seq_len = 8"), w.getMessage());
    cfg.put("sliding_window", 8); // a window as long as the sequences changes nothing
    HuggingFace.checkCompatible(cfg, c, "m/config.json");
  }

  @Test
  void ropeScalingMustBeTheRunsAndOfAKindThisModelHas() {
    RunConfig llama3 = config(MIXTRAL, "model.rope_scaling=llama3", "model.rope_scaling_factor=8");
    ObjectNode cfg = HuggingFace.mixtralConfig(llama3.model(), llama3.moe(), 0);
    HuggingFace.checkCompatible(cfg, llama3, "m/config.json");
    ConfigException plain = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(cfg, config(MIXTRAL),
        "m/config.json"));
    assertTrue(plain.getMessage().contains("rope_scaling type llama3, the run's model.rope_scaling = none"),
        plain.getMessage());
    ((ObjectNode) cfg.get("rope_scaling")).put("factor", 32.0);
    ConfigException factor = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(cfg, llama3,
        "m/config.json"));
    assertTrue(factor.getMessage().contains("factor = 32.0, the run's model.rope_scaling_factor = 8.0"),
        factor.getMessage());
    ((ObjectNode) cfg.get("rope_scaling")).put("rope_type", "yarn");
    ConfigException yarn = assertThrows(ConfigException.class, () -> HuggingFace.checkCompatible(cfg, llama3,
        "m/config.json"));
    assertTrue(yarn.getMessage().contains("rope_scaling type yarn") && yarn.getMessage().contains("none, linear and llama3"),
        yarn.getMessage());
  }

  @Test
  void anExportedDirectoryHasTheUsualPermissions(@TempDir Path tmp) throws IOException {
    TransformerLM m = TransformerLM.singleRank(config(MIXTRAL).model(), config(MIXTRAL).moe(), CPU, DType.F32);
    m.init(3);
    Path model = exportProject(m, tmp.resolve("model")), out = tmp.resolve("hf");
    io.moespark.ops.cli.ExportMain.main(new String[] {"--model", model.toString(), "--out", out.toString()});
    Path usual = Files.createDirectory(tmp.resolve("usual")); // what this process's umask gives a directory
    assertEquals(Files.getPosixFilePermissions(usual), Files.getPosixFilePermissions(out));
    try (var files = Files.list(out)) {
      assertTrue(files.noneMatch(f -> f.getFileName().toString().startsWith(".")), "no temporary left");
    }
  }
}

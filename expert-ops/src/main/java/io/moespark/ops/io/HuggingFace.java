package io.moespark.ops.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.text.HfTokenizer;
import io.moespark.ops.moe.RouterKind;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.model.Init;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.nn.Activation;
import io.moespark.ops.nn.RopeScaling;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The project's models as Hugging Face model directories. Export: a model whose configuration Mixtral
 * represents becomes a {@code MixtralForCausalLM} directory (config, Mixtral's tensor names, tokenizer
 * files); anything else is refused naming the feature Mixtral lacks. Import: a Mixtral directory maps
 * back tensor for tensor; a dense Llama directory is upcycled, every expert a copy of the layer's FFN.
 * Only names and configs live here; the bytes are streamed by {@link SafeTensors}.
 */
public final class HuggingFace {
  /** What a Hugging Face directory holds, by its config's {@code model_type}. */
  public enum Source {
    MIXTRAL,
    /** A dense Llama-layout model: imported by upcycling. */
    LLAMA,
    /** A dense Qwen2 model (Llama's layout with biases on q, k and v): imported by upcycling. */
    QWEN2;

    /** Whether the source is a dense model that upcycling turns into the run's MoE. */
    public boolean dense() {
      return this != MIXTRAL;
    }
  }

  private static final Pattern LAYER = Pattern.compile("layers\\.(\\d+)\\.(.+)");
  private static final Pattern HF_LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.(.+)");

  private HuggingFace() {}

  /** Why a model cannot be exported as Mixtral, naming the setting and what Mixtral has; null when it can. */
  public static String mixtralRefusal(RunConfig.Model m, RunConfig.Moe e) {
    List<String> why = new ArrayList<>();
    if (e.every() != 1) {
      why.add("moe.every = " + e.every() + ": Mixtral has an MoE FFN in every layer, no dense layers between");
    }
    if (e.sharedExperts() != 0) {
      why.add("moe.shared_experts = " + e.sharedExperts() + ": Mixtral has no shared experts");
    }
    if (e.activation() != Activation.SWIGLU) {
      why.add("moe.activation = " + lower(e.activation()) + ": Mixtral's experts are SwiGLU");
    }
    if (e.router() != RouterKind.TOPK) {
      why.add("moe.router = " + lower(e.router()) + ": Mixtral routes each token to its softmax top-k experts");
    }
    if (!e.normTopk()) {
      why.add("moe.norm_topk = false: Mixtral renormalises the top-k gates to sum 1");
    }
    if (m.qkvBias()) {
      why.add("model.qkv_bias = true: Mixtral's attention has no biases");
    }
    return why.isEmpty() ? null : String.join("; ", why);
  }

  private static String lower(Enum<?> v) {
    return v.name().toLowerCase(Locale.ROOT);
  }

  /**
   * config.json of the Mixtral export ({@code transformers}' {@code MixtralConfig} keys). The routing at
   * inference is Mixtral's: dropless, no selection bias (the aux-free bias never enters the weights).
   */
  public static ObjectNode mixtralConfig(RunConfig.Model m, RunConfig.Moe e, int eosId) {
    ObjectNode n = ModelFiles.JSON.createObjectNode();
    n.putArray("architectures").add("MixtralForCausalLM");
    n.put("model_type", "mixtral");
    n.put("vocab_size", m.vocabSize());
    n.put("hidden_size", m.dModel());
    n.put("intermediate_size", e.dExpert());
    n.put("num_hidden_layers", m.nLayers());
    n.put("num_attention_heads", m.nHeads());
    n.put("num_key_value_heads", m.kvHeads());
    n.put("head_dim", m.dModel() / m.nHeads());
    n.put("hidden_act", "silu");
    n.put("max_position_embeddings", m.seqLen());
    n.put("rms_norm_eps", m.normEps());
    n.put("rope_theta", m.ropeTheta());
    n.set("rope_scaling", ropeScalingJson(m));
    n.putNull("sliding_window");
    n.put("attention_dropout", 0.0);
    n.put("num_local_experts", e.experts());
    n.put("num_experts_per_tok", e.topK());
    n.put("output_router_logits", false);
    n.put("router_aux_loss_coef", e.auxLossCoef());
    n.put("router_jitter_noise", 0.0);
    n.put("tie_word_embeddings", m.tieEmbeddings());
    n.put("use_cache", true);
    n.put("initializer_range", 0.02);
    n.put("bos_token_id", eosId);
    n.put("eos_token_id", eosId);
    n.put("torch_dtype", "float32");
    return n;
  }

  /** generation_config.json: the end-of-document token ends generation. */
  public static ObjectNode generationConfig(int eosId) {
    ObjectNode n = ModelFiles.JSON.createObjectNode();
    n.put("bos_token_id", eosId);
    n.put("eos_token_id", eosId);
    return n;
  }

  /** tokenizer_config.json for the project's byte-level BPE ({@code tokenizer.json}, end token {@code eos}). */
  public static ObjectNode tokenizerConfig(String eos, int maxLength) {
    ObjectNode n = ModelFiles.JSON.createObjectNode();
    n.put("tokenizer_class", "PreTrainedTokenizerFast");
    n.put("eos_token", eos);
    n.put("bos_token", eos);
    n.put("unk_token", eos);
    n.put("model_max_length", maxLength);
    n.put("clean_up_tokenization_spaces", false);
    return n;
  }

  /** The Mixtral name of one of the project's tensors (DESIGN §3 names). */
  public static String mixtralName(String ours) {
    switch (ours) {
      case "embed.weight":
        return "model.embed_tokens.weight";
      case "norm.weight":
        return "model.norm.weight";
      case "lm_head.weight":
        return "lm_head.weight";
      default:
        break;
    }
    Matcher m = LAYER.matcher(ours);
    if (m.matches()) {
      String p = "model.layers." + m.group(1) + ".", rest = m.group(2);
      switch (rest) {
        case "attn_norm.weight":
          return p + "input_layernorm.weight";
        case "ffn_norm.weight":
          return p + "post_attention_layernorm.weight";
        case "moe.router.weight":
          return p + "block_sparse_moe.gate.weight";
        default:
          break;
      }
      if (rest.startsWith("attn.w") && rest.length() == "attn.wq.weight".length()) {
        return p + "self_attn." + rest.charAt(6) + "_proj.weight";
      }
      if (rest.matches("attn\\.w[qkv]\\.bias")) { // Qwen2's (Mixtral has none: refused before export)
        return p + "self_attn." + rest.charAt(6) + "_proj.bias";
      }
      if (rest.startsWith("moe.experts.")) {
        return p + "block_sparse_moe.experts." + rest.substring("moe.experts.".length());
      }
    }
    throw new IllegalArgumentException("tensor '" + ours + "' has no Mixtral counterpart");
  }

  /**
   * The Hugging Face tensor that holds {@code ours} in a directory of {@code source}: the same tensor
   * for Mixtral; for a dense Llama model, the layer's FFN matrix that every expert (and a dense layer's
   * FFN) starts from. Null for tensors the source does not have (a router when upcycling: it keeps the
   * run's initialisation).
   */
  public static String sourceName(Source source, String ours) {
    if (source == Source.MIXTRAL) {
      return mixtralName(ours);
    }
    Matcher m = LAYER.matcher(ours);
    if (m.matches()) {
      String p = "model.layers." + m.group(1) + ".mlp.", rest = m.group(2);
      Matcher expert = Pattern.compile("(?:moe\\.experts\\.\\d+|ffn)\\.(w[123])\\.weight").matcher(rest);
      if (expert.matches()) {
        return p + switch (expert.group(1)) {
          case "w1" -> "gate_proj.weight";
          case "w3" -> "up_proj.weight";
          default -> "down_proj.weight";
        };
      }
      if (rest.equals("moe.router.weight")) {
        return null;
      }
    }
    return mixtralName(ours); // embedding, attention, norms and head share Mixtral's (Llama's) names
  }

  /** The source kind of a Hugging Face config, or a clear error naming the file. */
  public static Source source(JsonNode hf, String file) {
    String type = hf.path("model_type").asText("");
    return switch (type) {
      case "mixtral" -> Source.MIXTRAL;
      case "llama" -> Source.LLAMA;
      case "qwen2" -> Source.QWEN2;
      default -> throw new ConfigException(file + ": model_type '" + type
          + "'; expected mixtral (continued as is), llama or qwen2 (upcycled into the run's MoE)");
    };
  }

  /**
   * Checks a Hugging Face config against the run's model: every key that shapes the tensors or the
   * math must agree; the message names the key in both files. Upcycling needs the run's experts (and
   * dense FFNs) to be the size of the source's FFN.
   */
  public static void checkCompatible(JsonNode given, RunConfig cfg, String file) {
    Source source = source(given, file);
    Set<String> absent = new HashSet<>();
    JsonNode hf = withTransformersDefaults(given, source, absent);
    RunConfig.Model m = cfg.model();
    RunConfig.Moe e = cfg.moe();
    if (source == Source.MIXTRAL) {
      String refusal = mixtralRefusal(m, e);
      if (refusal != null) {
        throw new ConfigException(file + " is a Mixtral model, but the run's config is not one Mixtral represents: "
            + refusal);
      }
    } else if (e.sharedExperts() != 0) {
      throw new ConfigException(file + " is a dense Llama model to upcycle: set moe.shared_experts = 0 (a shared "
          + "expert would add a second copy of the FFN and change the model's function)");
    }
    List<String> bad = new ArrayList<>();
    same(bad, hf, "vocab_size", m.vocabSize(), "model.vocab_size");
    JsonNode window = source == Source.QWEN2 && !hf.path("use_sliding_window").asBoolean(false) ? null
        : hf.get("sliding_window"); // Qwen2 keeps a window size it uses only with use_sliding_window
    if (window != null && window.canConvertToLong() && window.asLong() < m.seqLen()) {
      bad.add("sliding_window = " + window + " is shorter than the run's model.seq_len = " + m.seqLen() + ": the model"
          + " attends only to the last " + window + " positions, which this model does not do (set model.seq_len <= "
          + window + ")");
    }
    same(bad, hf, "hidden_size", m.dModel(), "model.d_model");
    same(bad, hf, "num_hidden_layers", m.nLayers(), "model.n_layers");
    same(bad, hf, "num_attention_heads", m.nHeads(), "model.n_heads");
    same(bad, hf, "num_key_value_heads", m.kvHeads(), "model.n_kv_heads (key/value heads)");
    if (hf.has("head_dim") && !hf.get("head_dim").isNull()) {
      same(bad, hf, "head_dim", m.dModel() / m.nHeads(), "model.d_model / model.n_heads");
    }
    same(bad, hf, "intermediate_size", e.dExpert(), "moe.d_expert");
    if (source.dense() && e.every() != 1) {
      same(bad, hf, "intermediate_size", m.dFf(), "model.d_ff (the dense layers between MoE layers)");
    }
    if (source == Source.MIXTRAL) {
      same(bad, hf, "num_local_experts", e.experts(), "moe.experts");
      same(bad, hf, "num_experts_per_tok", e.topK(), "moe.top_k");
    }
    close(bad, hf, "rope_theta", m.ropeTheta(), "model.rope_theta");
    close(bad, hf, "rms_norm_eps", m.normEps(), "model.norm_eps");
    text(bad, hf, "hidden_act", "silu");
    if (hf.path("tie_word_embeddings").asBoolean(false) != m.tieEmbeddings()) {
      bad.add("tie_word_embeddings = " + hf.path("tie_word_embeddings").asBoolean(false)
          + ", the run's model.tie_embeddings = " + m.tieEmbeddings());
    }
    for (String flag : new String[] {"attention_bias", "mlp_bias"}) {
      if (hf.path(flag).asBoolean(false)) {
        bad.add(flag + " is true; this model has no biases but Qwen2's on q, k and v");
      }
    }
    if ((source == Source.QWEN2) != m.qkvBias()) {
      bad.add("a " + source.name().toLowerCase(Locale.ROOT) + " model " + (source == Source.QWEN2 ? "has" : "has no")
          + " biases on q, k and v, the run's model.qkv_bias = " + m.qkvBias());
    }
    ropeScaling(bad, hf, m);
    if (!bad.isEmpty()) {
      List<String> named = bad.stream().map(b -> absent.contains(b.substring(0, Math.max(0, b.indexOf(' '))))
          ? b + " (absent from the file: transformers' default)" : b).toList();
      throw new ConfigException(file + " does not match the run's config: " + String.join("; ", named));
    }
  }

  /**
   * The run configuration of this model that computes what a Hugging Face config describes (to use the
   * directory without a run: moe-generate): a Mixtral as it is; a dense Llama or Qwen2 as one expert per
   * layer, top-1, whose gate is then exactly 1 (the dense model). Checked with {@link #checkCompatible}.
   */
  public static RunConfig runConfig(JsonNode given, String file) {
    Source source = source(given, file);
    JsonNode hf = withTransformersDefaults(given, source, new HashSet<>());
    List<String> sets = new ArrayList<>(List.of("model.vocab_size=" + hf.path("vocab_size").asLong(),
        "model.d_model=" + hf.path("hidden_size").asLong(), "model.n_layers=" + hf.path("num_hidden_layers").asLong(),
        "model.n_heads=" + hf.path("num_attention_heads").asLong(),
        "model.n_kv_heads=" + hf.path("num_key_value_heads").asLong(),
        "model.d_ff=" + hf.path("intermediate_size").asLong(),
        "model.seq_len=" + hf.path("max_position_embeddings").asLong(2048),
        "model.rope_theta=" + hf.path("rope_theta").asDouble(), "model.norm_eps=" + hf.path("rms_norm_eps").asDouble(),
        "model.tie_embeddings=" + hf.path("tie_word_embeddings").asBoolean(), "model.qkv_bias=" + (source == Source.QWEN2),
        "moe.every=1", "moe.d_expert=" + hf.path("intermediate_size").asLong(), "moe.shared_experts=0",
        "moe.experts=" + (source == Source.MIXTRAL ? hf.path("num_local_experts").asLong() : 1),
        "moe.top_k=" + (source == Source.MIXTRAL ? hf.path("num_experts_per_tok").asLong() : 1)));
    JsonNode r = hf.path("rope_scaling").isObject() ? hf.get("rope_scaling") : hf.path("rope_parameters");
    String type = r.path("rope_type").asText(r.path("type").asText("default"));
    if (type.equals("linear") || type.equals("llama3")) {
      sets.add("model.rope_scaling=" + type);
      sets.add("model.rope_scaling_factor=" + r.path("factor").asDouble());
    }
    if (type.equals("llama3")) {
      sets.add("model.rope_low_freq_factor=" + r.path("low_freq_factor").asDouble());
      sets.add("model.rope_high_freq_factor=" + r.path("high_freq_factor").asDouble());
      sets.add("model.rope_original_max_positions=" + r.path("original_max_position_embeddings").asLong());
    }
    RunConfig cfg;
    try {
      cfg = ConfigLoader.load(null, sets);
    } catch (ConfigException e) {
      throw new ConfigException(file + ": " + e.getMessage(), e);
    }
    checkCompatible(given, cfg, file); // refuses what this model does not compute (another rope type, biases, ...)
    return cfg;
  }

  /** Whether {@code dir} is a Hugging Face model directory (its config.json names a family's model_type). */
  public static boolean isModelDirectory(Path dir) throws IOException {
    Path config = dir.resolve(ModelFiles.CONFIG);
    if (!java.nio.file.Files.isRegularFile(config)) {
      return false;
    }
    JsonNode type = ModelFiles.JSON.readTree(config.toFile()).get("model_type");
    return type != null && !type.asText().equals(ModelFiles.MODEL_TYPE);
  }

  /**
   * A Hugging Face directory's model on one rank ({@link #runConfig}: a dense source as one expert per
   * layer), F32 on {@code backend}; a malformed weights file is a ConfigException naming it.
   */
  public static TransformerLM loadModel(Path dir, Backend backend) throws IOException {
    Path config = dir.resolve(ModelFiles.CONFIG), index = dir.resolve(INDEX);
    JsonNode c = ModelFiles.JSON.readTree(config.toFile());
    RunConfig cfg = runConfig(c, config.toString());
    TransformerLM model = TransformerLM.singleRank(cfg.model(), cfg.moe(), backend, DType.F32);
    model.init(cfg.train().seed()); // a dense source's router: one expert, whose gate is 1 whatever it holds
    try {
      load(model, source(c, config.toString()),
          java.nio.file.Files.exists(index) ? ModelFiles.JSON.readTree(index.toFile()) : null,
          n -> java.nio.file.Files.newInputStream(dir.resolve(n)), dir.toString(), 0, 0);
    } catch (SafeTensors.Malformed e) {
      throw new ConfigException(dir + ": " + e.getMessage(), e);
    }
    return model;
  }

  /**
   * The config as {@code transformers} reads it: a key the file leaves out (or sets to null where null
   * means "the default") takes {@code MixtralConfig}'s, {@code LlamaConfig}'s or {@code Qwen2Config}'s default, not the
   * project's (a Mixtral file without rope_theta is RoPE base 1e6); {@code absent} receives those keys.
   */
  static JsonNode withTransformersDefaults(JsonNode given, Source source, Set<String> absent) {
    ObjectNode hf = given.deepCopy();
    Map<String, Object> defaults = new LinkedHashMap<>();
    defaults.put("vocab_size", 32000);
    defaults.put("hidden_size", 4096);
    defaults.put("num_hidden_layers", 32);
    defaults.put("num_attention_heads", 32);
    defaults.put("hidden_act", "silu");
    defaults.put("tie_word_embeddings", false);
    if (source == Source.MIXTRAL) {
      defaults.put("intermediate_size", 14336);
      defaults.put("num_key_value_heads", 8);
      defaults.put("rms_norm_eps", 1e-5);
      defaults.put("rope_theta", 1e6);
      defaults.put("num_local_experts", 8);
      defaults.put("num_experts_per_tok", 2);
    } else if (source == Source.QWEN2) {
      defaults.put("vocab_size", 151936);
      defaults.put("intermediate_size", 22016);
      defaults.put("rms_norm_eps", 1e-6);
      defaults.put("rope_theta", 10000.0);
    } else {
      defaults.put("intermediate_size", 11008);
      defaults.put("rms_norm_eps", 1e-6);
      defaults.put("rope_theta", 10000.0);
    }
    JsonNode ropeParameters = given.path("rope_parameters").path("rope_theta"); // transformers 5's spelling
    if (!given.has("rope_theta") && ropeParameters.isNumber()) {
      hf.set("rope_theta", ropeParameters);
    }
    for (Map.Entry<String, Object> d : defaults.entrySet()) {
      if (!hf.has(d.getKey()) || hf.get(d.getKey()).isNull()) {
        absent.add(d.getKey());
        hf.set(d.getKey(), ModelFiles.JSON.valueToTree(d.getValue()));
      }
    }
    // LlamaConfig: num_key_value_heads None means one per attention head.
    if (!hf.has("num_key_value_heads") || hf.get("num_key_value_heads").isNull()) {
      hf.set("num_key_value_heads", hf.get("num_attention_heads"));
    }
    return hf;
  }

  /** Opens a file of a model directory by its name (local files here, Hadoop paths in the Spark job). */
  @FunctionalInterface
  public interface Opener {
    InputStream open(String name) throws IOException;
  }

  /** The index of a sharded checkpoint (Hugging Face's {@code model.safetensors.index.json}). */
  public static final String INDEX = "model.safetensors.index.json";

  /**
   * Loads a model's parameters from a Hugging Face directory: each tensor the model holds from the
   * source's counterpart ({@link #sourceName}), reading only the files and tensors this model needs (a
   * rank reads its own experts). Tensors the source does not have (an upcycled router) keep their value.
   *
   * @param index the parsed {@link #INDEX} when the directory is sharded, else null (one model.safetensors)
   * @param noise upcycling only: each expert copy gets N(0, (noise · rms of the FFN weight)^2) noise,
   *     seeded by ({@code seed}, tensor name) so any number of ranks draws the same values; 0: exact copies
   */
  public static void load(TransformerLM model, Source source, JsonNode index, Opener files, String dir,
      double noise, long seed) throws IOException {
    Map<String, String> wanted = new LinkedHashMap<>(); // our name -> source name
    for (Param p : model.params().all()) {
      String hf = sourceName(source, p.name());
      if (hf != null) {
        wanted.put(p.name(), hf);
      }
    }
    Map<String, List<String>> byFile = new LinkedHashMap<>();
    for (String hf : new java.util.LinkedHashSet<>(wanted.values())) {
      String file = index == null ? ModelFiles.WEIGHTS : index.path("weight_map").path(hf).asText(null);
      if (file == null) {
        throw new IllegalArgumentException(dir + "/" + INDEX + ": no file holds tensor '" + hf + "'");
      }
      byFile.computeIfAbsent(file, k -> new ArrayList<>()).add(hf);
    }
    Map<String, Tensor> got = new LinkedHashMap<>();
    for (Map.Entry<String, List<String>> f : byFile.entrySet()) {
      java.util.Set<String> names = new java.util.HashSet<>(f.getValue());
      try (InputStream in = files.open(f.getKey())) {
        got.putAll(SafeTensors.read(in, dir + "/" + f.getKey(), model.params().backend(), names::contains));
      }
    }
    Map<String, Tensor> values = new LinkedHashMap<>();
    for (Param p : model.params().all()) {
      String hf = wanted.get(p.name());
      Tensor t = hf == null ? p.value() : got.get(hf);
      if (t == null) {
        throw new IllegalArgumentException(dir + ": missing tensor '" + hf + "' (for " + p.name() + ")");
      }
      values.put(p.name(), t);
    }
    ModelFiles.assign(values, model, dir);
    got.values().forEach(model.params().backend()::free); // copied into the parameters: back to the arena
    if (source.dense() && noise > 0) {
      Backend be = model.params().backend();
      Tensor sq = be.zeros(DType.F64, 1);
      for (Param p : model.params().all()) {
        if (p.isExpert()) {
          Tensor w = p.value(), n = be.empty(w.dtype(), w.shape());
          be.sumSquares(new Tensor[] {w}, sq, 0);
          Init.normal(n, seed, "upcycle_noise." + p.name(), noise * Math.sqrt(sq.toDoubles()[0] / w.length()));
          w.addi(n);
          be.free(n);
        }
      }
      be.free(sq);
    }
  }

  /**
   * Writes a Mixtral directory from the project's exported model directory {@code model}, into the
   * existing empty directory {@code out}: the weights are streamed under their new names, the tokenizer
   * copied with its config files. Refuses a model Mixtral does not represent.
   */
  public static void exportMixtral(Path model, Path out) throws IOException {
    RunConfig c = ModelFiles.readConfig(model);
    ModelFiles.verify(model);
    String refusal = mixtralRefusal(c.model(), c.moe());
    if (refusal != null) {
      throw new ConfigException(model + " cannot be exported as a Hugging Face Mixtral model: " + refusal);
    }
    Path weights = model.resolve(ModelFiles.WEIGHTS);
    if (!java.nio.file.Files.exists(weights)) {
      throw new ConfigException(weights + " does not exist: expected an exported model directory");
    }
    try (InputStream in = java.nio.file.Files.newInputStream(weights);
        OutputStream o = new java.io.BufferedOutputStream(java.nio.file.Files.newOutputStream(out.resolve(
            ModelFiles.WEIGHTS)), 1 << 16)) {
      SafeTensors.rename(in, weights.toString(), HuggingFace::mixtralName, Map.of("format", "pt"), o);
    }
    Path tokenizer = model.resolve(TOKENIZER);
    int eos = 0;
    if (java.nio.file.Files.exists(tokenizer)) {
      Path config = HfTokenizer.configBeside(tokenizer);
      java.nio.file.Files.copy(tokenizer, out.resolve(TOKENIZER));
      if (config != null) { // an existing tokenizer's own config (moe-prep --tokenizer): its special tokens
        eos = HfTokenizer.specials(java.nio.file.Files.readString(tokenizer), java.nio.file.Files.readString(config),
            tokenizer.toString()).eosId();
        java.nio.file.Files.copy(config, out.resolve(HfTokenizer.CONFIG_FILE));
      } else {
        HfTokenizer.Specials sp = HfTokenizer.specials(java.nio.file.Files.readString(tokenizer), null,
            tokenizer.toString());
        eos = sp.eosId();
        ModelFiles.JSON.writeValue(out.resolve(HfTokenizer.CONFIG_FILE).toFile(),
            tokenizerConfig(sp.eosText(), c.model().seqLen()));
      }
    }
    ModelFiles.JSON.writeValue(out.resolve(ModelFiles.CONFIG).toFile(), mixtralConfig(c.model(), c.moe(), eos));
    ModelFiles.JSON.writeValue(out.resolve("generation_config.json").toFile(), generationConfig(eos));
  }

  /** The tokenizer file of a model directory (the project's and Hugging Face's name alike). */
  public static final String TOKENIZER = "tokenizer.json";

  /**
   * rope_scaling (or transformers 5's rope_parameters) against the run's model.rope_scaling keys: none,
   * linear and llama3 are this model's; another type is refused by name.
   */
  private static void ropeScaling(List<String> bad, JsonNode hf, RunConfig.Model m) {
    JsonNode r = hf.path("rope_scaling").isObject() ? hf.get("rope_scaling") : hf.path("rope_parameters");
    String type = r.path("rope_type").asText(r.path("type").asText("default"));
    String ours = m.ropeScaling().name().toLowerCase(Locale.ROOT);
    if (!(type.equals("default") ? "none" : type).equals(ours)) {
      bad.add("rope_scaling type " + type + ", the run's model.rope_scaling = " + ours
          + (type.equals("default") || type.equals("linear") || type.equals("llama3") ? ""
              : " (this model has none, linear and llama3)"));
      return;
    }
    if (m.ropeScaling() != RopeScaling.Type.NONE) {
      close(bad, r, "factor", m.ropeScalingFactor(), "model.rope_scaling_factor");
    }
    if (m.ropeScaling() == RopeScaling.Type.LLAMA3) {
      close(bad, r, "low_freq_factor", m.ropeLowFreqFactor(), "model.rope_low_freq_factor");
      close(bad, r, "high_freq_factor", m.ropeHighFreqFactor(), "model.rope_high_freq_factor");
      same(bad, r, "original_max_position_embeddings", m.ropeOriginalMaxPositions(), "model.rope_original_max_positions");
    }
  }

  /** rope_scaling as transformers writes it, or null for plain RoPE. */
  static ObjectNode ropeScalingJson(RunConfig.Model m) {
    if (m.ropeScaling() == RopeScaling.Type.NONE) {
      return null;
    }
    ObjectNode r = ModelFiles.JSON.createObjectNode();
    r.put("rope_type", m.ropeScaling().name().toLowerCase(Locale.ROOT));
    r.put("factor", m.ropeScalingFactor());
    if (m.ropeScaling() == RopeScaling.Type.LLAMA3) {
      r.put("low_freq_factor", m.ropeLowFreqFactor());
      r.put("high_freq_factor", m.ropeHighFreqFactor());
      r.put("original_max_position_embeddings", m.ropeOriginalMaxPositions());
    }
    return r;
  }

  private static void same(List<String> bad, JsonNode hf, String key, long expected, String ours) {
    JsonNode v = hf.get(key);
    if (v == null || !v.canConvertToLong() || v.asLong() != expected) {
      bad.add(key + " = " + v + ", the run's " + ours + " = " + expected);
    }
  }

  private static void close(List<String> bad, JsonNode hf, String key, double expected, String ours) {
    JsonNode v = hf.get(key);
    if (v != null && v.isNumber() && Math.abs(v.asDouble() - expected) > 1e-12 * Math.abs(expected)) {
      bad.add(key + " = " + v + ", the run's " + ours + " = " + expected);
    }
  }

  private static void text(List<String> bad, JsonNode hf, String key, String expected) {
    JsonNode v = hf.get(key);
    if (v != null && !v.asText().equals(expected)) {
      bad.add(key + " = " + v + "; expected \"" + expected + "\"");
    }
  }
}

package io.moespark.ops.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.tensor.Param;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * The exported model: {@code model.safetensors} (DESIGN §3 tensor names, PyTorch [out, in] layout) and
 * {@code config.json} (DESIGN §3 keys), loadable by a short PyTorch script.
 */
public final class ModelFiles {
  public static final String WEIGHTS = "model.safetensors";
  public static final String CONFIG = "config.json";
  /** config.json's model_type of this project's model directories (Hugging Face ones name their family). */
  public static final String MODEL_TYPE = "moe-spark";
  /**
   * SHA-256 of the directory's weights (and tokenizer), checked on load, independent of any file
   * system's own checks; config.json stays a text a user may edit (a wrong shape is refused by name).
   */
  public static final String MANIFEST = "manifest.json";
  static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private ModelFiles() {}

  /** Writes weights, config.json and the manifest into {@code dir} (an existing local directory). */
  public static void writeInto(Path dir, TransformerLM model) throws IOException {
    try (OutputStream out = Files.newOutputStream(dir.resolve(WEIGHTS))) {
      writeWeights(model, out);
    }
    try (OutputStream out = Files.newOutputStream(dir.resolve(CONFIG))) {
      writeConfig(model, out);
    }
    Map<String, String> sums = new java.util.LinkedHashMap<>();
    sums.put(WEIGHTS, sha256(dir.resolve(WEIGHTS)));
    try (OutputStream out = Files.newOutputStream(dir.resolve(MANIFEST))) {
      writeManifest(sums, out);
    }
  }

  /** The manifest of a model directory: file name -> SHA-256 (hex). */
  public static void writeManifest(Map<String, String> sha256ByFile, OutputStream out) throws IOException {
    ObjectNode m = JSON.createObjectNode();
    ObjectNode files = m.putObject("files");
    sha256ByFile.forEach((name, sum) -> files.putObject(name).put("sha256", sum));
    out.write(JSON.writeValueAsBytes(m));
  }

  /**
   * Checks every file the directory's manifest lists against its SHA-256 (a directory written before
   * manifests existed has none and is read as it is); the message names the file. A mismatch is a
   * {@link ConfigException}: an input problem, not one that retrying could mend.
   */
  public static void verify(Path dir) throws IOException {
    Path manifest = dir.resolve(MANIFEST);
    if (!Files.exists(manifest)) {
      return;
    }
    JsonNode files = JSON.readTree(manifest.toFile()).path("files");
    if (!files.isObject() || !files.has(WEIGHTS)) {
      throw new ConfigException(manifest + " does not list " + WEIGHTS + " (not a model manifest)");
    }
    var it = files.fields();
    while (it.hasNext()) {
      var e = it.next();
      Path f = dir.resolve(e.getKey());
      if (!Files.exists(f)) {
        throw new ConfigException(f + " does not exist (listed in " + MANIFEST + ")");
      }
      if (!sha256(f).equals(e.getValue().path("sha256").asText())) {
        throw new ConfigException(f + ": checksum does not match " + MANIFEST + " (corrupt model file)");
      }
    }
  }

  private static String sha256(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return java.util.HexFormat.of().formatHex(md.digest());
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The {@link #WEIGHTS} file: every parameter of a model that holds all experts. */
  public static void writeWeights(TransformerLM model, OutputStream out) throws IOException {
    SafeTensors.write(model.params().values(), Map.of("format", "pt"), out);
  }

  /** The {@link #CONFIG} file. */
  public static void writeConfig(TransformerLM model, OutputStream out) throws IOException {
    out.write(JSON.writeValueAsBytes(configJson(model.config(), model.moeConfig())));
  }

  public static ObjectNode configJson(RunConfig.Model m, RunConfig.Moe e) {
    ObjectNode n = JSON.createObjectNode();
    n.put("model_type", MODEL_TYPE);
    n.put("vocab_size", m.vocabSize());
    n.put("d_model", m.dModel());
    n.put("n_layers", m.nLayers());
    n.put("n_heads", m.nHeads());
    n.put("n_kv_heads", m.nKvHeads()); // as configured: 0 is one per head
    n.put("tie_embeddings", m.tieEmbeddings());
    n.put("rope_scaling", m.ropeScaling().name().toLowerCase(Locale.ROOT));
    n.put("rope_scaling_factor", m.ropeScalingFactor());
    n.put("rope_low_freq_factor", m.ropeLowFreqFactor());
    n.put("rope_high_freq_factor", m.ropeHighFreqFactor());
    n.put("rope_original_max_positions", m.ropeOriginalMaxPositions());
    n.put("qkv_bias", m.qkvBias());
    n.put("d_ff", m.dFf());
    n.put("moe_every", e.every());
    n.put("n_experts", e.experts());
    n.put("top_k", e.topK());
    n.put("d_expert", e.dExpert());
    n.put("n_shared_experts", e.sharedExperts());
    n.put("activation", e.activation().name().toLowerCase(Locale.ROOT));
    n.put("router", e.router().name().toLowerCase(Locale.ROOT));
    n.put("norm_topk", e.normTopk());
    n.put("capacity_factor", e.capacityFactor());
    n.put("rope_theta", m.ropeTheta());
    n.put("norm_eps", m.normEps());
    n.put("seq_len", m.seqLen());
    return n;
  }

  /** Reads config.json of a model directory back into a run configuration (other keys at defaults). */
  public static RunConfig readConfig(Path dir) throws IOException {
    Path file = dir.resolve(CONFIG);
    JsonNode n;
    try {
      n = JSON.readTree(file.toFile());
    } catch (NoSuchFileException | java.io.FileNotFoundException e) {
      throw new ConfigException(file + " does not exist: expected an exported model directory with " + CONFIG
          + " and " + WEIGHTS);
    }
    List<String> sets = new ArrayList<>();
    String[][] keys = {{"vocab_size", "model.vocab_size"}, {"d_model", "model.d_model"},
        {"n_layers", "model.n_layers"}, {"n_heads", "model.n_heads"}, {"d_ff", "model.d_ff"},
        {"seq_len", "model.seq_len"}, {"rope_theta", "model.rope_theta"}, {"norm_eps", "model.norm_eps"},
        {"moe_every", "moe.every"}, {"n_experts", "moe.experts"}, {"top_k", "moe.top_k"},
        {"d_expert", "moe.d_expert"}, {"n_shared_experts", "moe.shared_experts"},
        {"activation", "moe.activation"}, {"router", "moe.router"}, {"norm_topk", "moe.norm_topk"},
        {"capacity_factor", "moe.capacity_factor"}};
    for (String[] k : keys) {
      JsonNode v = n.get(k[0]);
      if (v == null) {
        throw new ConfigException(file + ": missing key '" + k[0] + "'");
      }
      sets.add(k[1] + "=" + v.asText());
    }
    // Keys that models exported before them lack (their defaults are what those models are).
    for (String k0 : new String[] {"n_kv_heads", "tie_embeddings", "rope_scaling", "rope_scaling_factor",
        "rope_low_freq_factor", "rope_high_freq_factor", "rope_original_max_positions", "qkv_bias"}) {
      String[] k = {k0, "model." + k0};
      if (n.has(k[0])) {
        sets.add(k[1] + "=" + n.get(k[0]).asText());
      }
    }
    try {
      return ConfigLoader.load(null, sets);
    } catch (ConfigException e) {
      throw new ConfigException(file + ": " + e.getMessage(), e);
    }
  }

  /** Loads an exported model (F32) from {@code dir} onto {@code backend}. */
  public static TransformerLM load(Path dir, Backend backend) throws IOException {
    RunConfig c = readConfig(dir);
    verify(dir);
    TransformerLM model = TransformerLM.singleRank(c.model(), c.moe(), backend, DType.F32);
    loadWeights(dir.resolve(WEIGHTS), model);
    return model;
  }

  /**
   * Copies every tensor of a safetensors file into the model's parameters, checking names and shapes; the
   * file must hold exactly the model's tensors.
   */
  public static void loadWeights(Path file, TransformerLM model) throws IOException {
    Map<String, Tensor> tensors;
    try (InputStream in = Files.newInputStream(file)) {
      tensors = SafeTensors.read(in, file.toString(), model.params().backend());
    } catch (NoSuchFileException e) {
      throw new IOException(file + " does not exist", e);
    }
    assign(tensors, model, file.toString());
    tensors.values().forEach(model.params().backend()::free); // copied into the parameters: back to the arena
    // A model file holds exactly the model's tensors: anything else means a different model or config.
    List<String> extra = new ArrayList<>(tensors.keySet());
    extra.removeIf(model.params()::contains);
    if (!extra.isEmpty()) {
      throw new IllegalArgumentException(file + ": " + extra.size() + " tensor(s) that the config in "
          + CONFIG + " does not have: " + String.join(", ", extra.subList(0, Math.min(5, extra.size())))
          + (extra.size() > 5 ? ", ..." : ""));
    }
  }

  static void assign(Map<String, Tensor> tensors, TransformerLM model, String source) {
    for (Param p : model.params().all()) {
      Tensor t = tensors.get(p.name());
      if (t == null) {
        throw new IllegalArgumentException(source + ": missing tensor '" + p.name() + "'");
      }
      if (!Arrays.equals(t.shape(), p.shape())) {
        throw new IllegalArgumentException(source + ": tensor '" + p.name() + "' has shape "
            + Arrays.toString(t.shape()) + ", the config expects " + Arrays.toString(p.shape()));
      }
      p.value().assign(t);
    }
  }
}

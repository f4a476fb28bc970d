package io.moespark.ops.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.optim.AdamW;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A training checkpoint directory: the exported model files, {@code optimizer.safetensors} (AdamW
 * moments), {@code state.json} (step, optimizer step, selection biases) and {@code manifest.json} (SHA-256
 * and size of every file), written atomically. The data position is the step: batches are a function
 * of (seed, step).
 */
public final class Checkpoint {
  public static final String OPTIMIZER = "optimizer.safetensors";
  public static final String STATE = "state.json";
  public static final String MANIFEST = "manifest.json";
  private static final List<String> FILES = List.of(ModelFiles.WEIGHTS, ModelFiles.CONFIG, OPTIMIZER, STATE);

  /** What a checkpoint restores besides the tensors. */
  public record State(int step, long optimizerStep, double[][] selectionBias) {}

  private Checkpoint() {}

  public static void save(Path dir, TransformerLM model, AdamW optimizer, State state) throws IOException {
    AtomicDir.write(dir, tmp -> {
      ModelFiles.writeInto(tmp, model);
      try (OutputStream out = Files.newOutputStream(tmp.resolve(OPTIMIZER))) {
        SafeTensors.write(optimizer.state(), Map.of(), out);
      }
      ObjectNode s = ModelFiles.JSON.createObjectNode();
      s.put("step", state.step());
      s.put("optimizer_step", state.optimizerStep());
      ArrayNode biases = s.putArray("selection_bias");
      for (double[] layer : state.selectionBias()) {
        ArrayNode a = biases.addArray();
        for (double b : layer) {
          a.add(b);
        }
      }
      ModelFiles.JSON.writeValue(tmp.resolve(STATE).toFile(), s);
      ObjectNode manifest = ModelFiles.JSON.createObjectNode();
      for (String f : FILES) {
        ObjectNode e = manifest.putObject(f);
        e.put("sha256", sha256(tmp.resolve(f)));
        e.put("bytes", Files.size(tmp.resolve(f)));
      }
      ModelFiles.JSON.writeValue(tmp.resolve(MANIFEST).toFile(), manifest);
    });
  }

  /** Verifies the manifest, then loads weights and optimizer state into model and optimizer. */
  public static State load(Path dir, TransformerLM model, AdamW optimizer) throws IOException {
    Path manifestFile = dir.resolve(MANIFEST);
    if (!Files.exists(manifestFile)) {
      throw new NoSuchFileException(manifestFile + " (not a complete checkpoint directory)");
    }
    JsonNode manifest = ModelFiles.JSON.readTree(manifestFile.toFile());
    for (String f : FILES) {
      JsonNode e = manifest.get(f);
      Path p = dir.resolve(f);
      if (e == null || !Files.exists(p)) {
        throw new IOException(dir + ": checkpoint file " + f + " missing");
      }
      if (!sha256(p).equals(e.get("sha256").asText())) {
        throw new IOException(p + ": checksum does not match " + MANIFEST + " (corrupt checkpoint)");
      }
    }
    ModelFiles.loadWeights(dir.resolve(ModelFiles.WEIGHTS), model);
    JsonNode s = ModelFiles.JSON.readTree(dir.resolve(STATE).toFile());
    Map<String, INDArray> opt;
    try (InputStream in = Files.newInputStream(dir.resolve(OPTIMIZER))) {
      opt = SafeTensors.read(in, dir.resolve(OPTIMIZER).toString());
    }
    optimizer.restore(model.params().all(), opt, s.get("optimizer_step").asLong());
    JsonNode b = s.get("selection_bias");
    double[][] bias = new double[b.size()][];
    for (int i = 0; i < bias.length; i++) {
      bias[i] = new double[b.get(i).size()];
      for (int j = 0; j < bias[i].length; j++) {
        bias[i][j] = b.get(i).get(j).asDouble();
      }
    }
    return new State(s.get("step").asInt(), s.get("optimizer_step").asLong(), bias);
  }

  static String sha256(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}

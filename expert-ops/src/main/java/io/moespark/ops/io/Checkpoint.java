package io.moespark.ops.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.optim.AdamW;
import io.moespark.ops.tensor.Param;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;
import io.moespark.ops.tensor.Tensor;

/**
 * The checkpoint format, independent of where it is stored. Rank r of R writes one shard file,
 * {@link #shardFile}, with the parameters it owns (its experts; rank 0 also the dense ones) and their
 * AdamW moments ({@code exp_avg.NAME}, {@code exp_avg_sq.NAME}). Expert tensors carry their global
 * expert id in the name, so a checkpoint written with R ranks loads with any other R: a rank takes the
 * tensors it holds from the union of the shards. {@link State} (step, optimizer step, selection biases)
 * goes to {@link #STATE}; the data position is the step, since batches are a function of (seed, step).
 * The store (manifest of checksums, temporary directory and rename) is the runner's.
 */
public final class Checkpoint {
  public static final String STATE = "state.json";
  public static final String MANIFEST = "manifest.json";

  /** What a checkpoint restores besides the tensors. */
  public record State(int step, long optimizerStep, double[][] selectionBias) {}

  private Checkpoint() {}

  public static String shardFile(int rank) {
    return String.format(Locale.ROOT, "shard-%05d.safetensors", rank);
  }

  /**
   * The tensors rank {@code rank} writes: the expert parameters it is the primary holder of (dense ones too
   * on rank 0) and their moments ({@link Param#writtenBy}).
   */
  public static Map<String, Tensor> shardTensors(TransformerLM model, AdamW optimizer, int rank) {
    return tensors(model, optimizer, p -> p.writtenBy(rank));
  }

  /** The parameters {@code which} selects and their two moments, by checkpoint name. */
  public static Map<String, Tensor> tensors(TransformerLM model, AdamW optimizer,
      Predicate<Param> which) {
    if (optimizer.step() == 0) {
      throw new IllegalStateException("no optimizer moments yet: checkpoint before the first step");
    }
    Map<String, Tensor> moments = optimizer.state();
    Map<String, Tensor> out = new LinkedHashMap<>();
    for (Param p : model.params().all()) {
      if (which.test(p)) {
        out.put(p.name(), p.value());
        for (String kind : new String[] {"exp_avg.", "exp_avg_sq."}) {
          out.put(kind + p.name(), moments.get(kind + p.name()));
        }
      }
    }
    return out;
  }

  /**
   * Loads every parameter the model holds, and its moments, from {@code tensors} (the union of the
   * shards it needs), checking names and shapes; {@code source} names the checkpoint in errors.
   */
  public static void restore(Map<String, Tensor> tensors, TransformerLM model, AdamW optimizer, long optimizerStep,
      String source) {
    ModelFiles.assign(tensors, model, source);
    optimizer.restore(tensors, optimizerStep);
  }

  public static ObjectNode toJson(State state) {
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
    return s;
  }

  /** Reads {@link #toJson}'s output; {@code source} names the file in errors. */
  public static State fromJson(JsonNode s, String source) {
    for (String key : new String[] {"step", "optimizer_step", "selection_bias"}) {
      if (s == null || !s.has(key)) {
        throw new IllegalArgumentException(source + ": missing '" + key + "'");
      }
    }
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
}

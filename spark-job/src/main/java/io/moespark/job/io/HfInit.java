package io.moespark.job.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.job.data.PreparedData;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.HuggingFace;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.io.SafeTensors;
import io.moespark.ops.model.TransformerLM;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * {@code moe-train --init-from DIR}: a run that starts from a Hugging Face model directory (any Hadoop
 * path) instead of the seed's initialisation: a Mixtral model continued as it is, or a dense Llama model
 * upcycled. The driver checks the directory against the run's config before any executor work
 * ({@link #open}); each rank then reads only the tensors it holds ({@link #load}).
 *
 * @param source what the directory holds
 * @param indexJson its {@code model.safetensors.index.json} when sharded, else null
 * @param tokenizer its tokenizer.json, carried into the run's export, or null
 */
public record HfInit(String dir, HuggingFace.Source source, String indexJson, String tokenizer)
    implements Serializable {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Checks {@code dir} against the run: its config, its weights' presence, and its tokenizer against the data's. */
  public static HfInit open(String dir, RunConfig cfg, Configuration conf) throws IOException {
    Path root = new Path(dir);
    FileSystem fs = root.getFileSystem(conf);
    root = fs.makeQualified(root);
    Path config = new Path(root, ModelFiles.CONFIG);
    if (!fs.exists(config)) {
      throw new ConfigException("--init-from " + dir + ": " + config + " does not exist (expected a Hugging Face "
          + "model directory)");
    }
    JsonNode hf;
    try (InputStream in = fs.open(config)) {
      hf = JSON.readTree(in);
    }
    HuggingFace.checkCompatible(hf, cfg, config.toString());
    Path index = new Path(root, HuggingFace.INDEX), weights = new Path(root, ModelFiles.WEIGHTS);
    String indexJson = null;
    if (fs.exists(index)) {
      try (InputStream in = fs.open(index)) {
        indexJson = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      }
    } else if (!fs.exists(weights)) {
      throw new ConfigException("--init-from " + dir + ": neither " + ModelFiles.WEIGHTS + " nor " + HuggingFace.INDEX
          + " is there");
    }
    Path tokenizer = new Path(root, HuggingFace.TOKENIZER);
    String tok = fs.exists(tokenizer) ? tokenizer.toString() : null;
    if (tok != null && PreparedData.isPrepared(cfg.data().path(), conf)) {
      PreparedData data = PreparedData.open(cfg.data().path(), conf, "data.path");
      String mine = RunFiles.sha256(fs, tokenizer);
      String theirs = RunFiles.sha256(data.tokenizer().getFileSystem(conf), data.tokenizer());
      if (!mine.equals(theirs)) {
        throw new ConfigException("--init-from " + dir + ": its tokenizer.json differs from the one data.path "
            + cfg.data().path() + " was prepared with; prepare the data with the model's tokenizer");
      }
    }
    return new HfInit(root.toString(), HuggingFace.source(hf, config.toString()), indexJson, tok);
  }

  /**
   * Rank side: this rank's parameters from the directory (its experts only); the rest keeps its init.
   * Upcycled experts get {@code train.upcycle_noise}.
   */
  public void load(TransformerLM model, RunConfig cfg, Configuration conf) throws IOException {
    Path root = new Path(dir);
    FileSystem fs = root.getFileSystem(conf);
    JsonNode index = indexJson == null ? null : JSON.readTree(indexJson);
    try {
      HuggingFace.load(model, source, index, name -> fs.open(new Path(root, name)), dir, cfg.train().upcycleNoise(),
          cfg.train().seed());
    } catch (SafeTensors.Malformed e) {
      // A truncated or corrupt weights file: bad input, which reopening the ranks would only read again.
      throw new ConfigException("--init-from " + dir + ": " + e.getMessage(), e);
    }
  }

  /** What the console says when the run starts. */
  public String describe() {
    return source == HuggingFace.Source.MIXTRAL ? "initialised from the Mixtral model " + dir
        : "upcycled from the dense " + (source == HuggingFace.Source.QWEN2 ? "Qwen2" : "Llama") + " model " + dir
            + " (every expert a copy of its layer's FFN)";
  }
}

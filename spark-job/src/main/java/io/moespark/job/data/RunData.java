package io.moespark.job.data;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.train.TokenData;
import org.apache.hadoop.conf.Configuration;

/**
 * The token streams of a run, as each rank loads them: a data-prep directory (train split from
 * {@code data.split}, validation from its "val" split, its tokenizer exported with the model), or a raw
 * local file (text bytes or int32 tokens) whose last {@code data.val_fraction} is validation.
 *
 * @param tokenizer the tokenizer.json to export with the model, or null for raw byte or token files
 */
public record RunData(int[] train, int[] val, String tokenizer) {
  /**
   * The config with a relative local {@code data.path} made absolute on the driver: executors have their
   * own working directories.
   */
  public static RunConfig withAbsolutePath(RunConfig cfg) {
    String data = cfg.data().path();
    if (data.contains(":") || java.nio.file.Path.of(data).isAbsolute()) {
      return cfg;
    }
    ObjectNode tree = (ObjectNode) ConfigLoader.toTree(cfg);
    ((ObjectNode) tree.get("data")).put("path", java.nio.file.Path.of(data).toAbsolutePath().normalize().toString());
    return ConfigLoader.fromTree(tree, "run config");
  }

  /**
   * What the driver can check before any executor starts (each a one-line error, exit 2): the data path
   * exists; for prepared data, its manifest reads, the split exists, its tokenizer fits the model and the
   * shards to be read match the manifest's checksums.
   */
  public static void check(RunConfig cfg, Configuration conf) {
    RunConfig.Data d = cfg.data();
    try {
      org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(d.path());
      if (!p.getFileSystem(conf).exists(p)) {
        throw new ConfigException("data.path " + d.path() + " does not exist");
      }
    } catch (java.io.IOException e) {
      throw new ConfigException("data.path " + d.path() + ": " + e.getMessage(), e);
    }
    if (d.format().equals("prepared") || d.format().equals("auto") && PreparedData.isPrepared(d.path(), conf)) {
      PreparedData p = PreparedData.open(d.path(), conf, "data.path");
      p.checkVocab(cfg.model().vocabSize(), "data.path " + d.path());
      if (!p.hasSplit(d.split())) {
        throw new ConfigException("data.split: " + d.path() + " has no split '" + d.split() + "' (it has "
            + p.splits() + ")");
      }
      // The shards the ranks will read, against the manifest's checksums: corrupt data fails here, once.
      p.verify(d.split());
      if (!d.split().equals("val") && p.hasSplit("val")) {
        p.verify("val");
      }
    }
  }

  public static RunData load(RunConfig cfg, Configuration conf) {
    RunConfig.Data d = cfg.data();
    int vocab = cfg.model().vocabSize();
    if (d.format().equals("prepared") || d.format().equals("auto") && PreparedData.isPrepared(d.path(), conf)) {
      PreparedData p = PreparedData.open(d.path(), conf, "data.path");
      p.checkVocab(vocab, "data.path " + d.path());
      int[] train = p.read(d.split());
      int[] val = !d.split().equals("val") && p.hasSplit("val") ? p.read("val") : new int[0];
      return new RunData(train, val, p.tokenizer().toString());
    }
    int[] tokens = TokenData.load(java.nio.file.Path.of(d.path()), d.format(), "data.path");
    TokenData.checkVocab(tokens, vocab, "data.path " + d.path());
    TokenData.Split split = TokenData.split(tokens, d.valFraction());
    return new RunData(split.train(), split.val(), null);
  }
}

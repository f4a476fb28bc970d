package io.moespark.job;

import io.moespark.job.ui.MoeEvents;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.Generator;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.text.HfTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * {@code train.sample_prompts}: at each validation the driver continues each prompt greedily
 * ({@code train.sample_tokens} tokens) with the model assembled on its host and the run's tokenizer. Greedy
 * and on the driver: sampling changes nothing the ranks compute, so runs stay bit-identical with or without it.
 */
final class RunSamples implements AutoCloseable {
  private final RunConfig.Train train;
  private final HfTokenizer tokenizer;

  private RunSamples(RunConfig.Train train, HfTokenizer tokenizer) {
    this.train = train;
    this.tokenizer = tokenizer;
  }

  /**
   * The run's sampler, or null without prompts. {@code tokenizerPath} is the run's tokenizer.json (any Hadoop
   * path; its tokenizer_config.json beside it is read too) or null when the run has none.
   */
  static RunSamples open(RunConfig cfg, String tokenizerPath, Configuration conf) throws IOException {
    if (cfg.train().samplePrompts().isEmpty()) {
      return null;
    }
    requireTokenizer(cfg, tokenizerPath);
    Path file = new Path(tokenizerPath), config = new Path(file.getParent(), HfTokenizer.CONFIG_FILE);
    FileSystem fs = file.getFileSystem(conf);
    return new RunSamples(cfg.train(), HfTokenizer.fromJson(read(fs, file), fs.exists(config) ? read(fs, config) : null,
        file.toString()));
  }

  /** Refuses sample prompts in a run without a tokenizer ({@code tokenizerPath} null). */
  static void requireTokenizer(RunConfig cfg, String tokenizerPath) {
    if (!cfg.train().samplePrompts().isEmpty() && tokenizerPath == null) {
      throw new ConfigException("train.sample_prompts: the run has no tokenizer to turn prompts into ids (data.path "
          + "is not data prepared by bin/moe-prep and no --init-from model brings one)");
    }
  }

  private static String read(FileSystem fs, Path p) throws IOException {
    try (InputStream in = fs.open(p)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /** Each prompt and the model's greedy continuation, stopping at the tokenizer's end of text. */
  List<MoeEvents.Sample> sample(TransformerLM model) {
    Generator g = new Generator(model);
    List<MoeEvents.Sample> out = new ArrayList<>();
    for (String prompt : train.samplePrompts()) {
      int[] ids = g.generate(tokenizer.encode(prompt), train.sampleTokens(), tokenizer.specials().eosId(),
          Generator.Sampling.GREEDY);
      out.add(new MoeEvents.Sample(prompt, tokenizer.decode(ids, false)));
    }
    return out;
  }

  @Override
  public void close() {
    tokenizer.close();
  }
}

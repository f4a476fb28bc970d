package io.moespark.job.cli;

import io.moespark.ops.backend.Backends;
import io.moespark.job.data.PreparedData;
import io.moespark.ops.cli.Args;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.train.TokenData;
import io.moespark.ops.train.Trainer;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;
import org.apache.hadoop.conf.Configuration;

/**
 * {@code moe-eval --model DIR (--tokens FILE | --data PREPARED [--split val]) [--batch N]
 * [--capacity-factor CF]}: mean next-token CE of an exported model over consecutive windows of
 * seq_len + 1 tokens, from a token file (little-endian int32, or text as bytes) or a split of
 * data-prep's output; dropless unless a capacity factor is given. Prints one JSON line.
 */
public final class EvalMain {
  private static final String USAGE = "moe-eval --model DIR (--tokens FILE | --data PREPARED [--split val]) [--batch N] [--capacity-factor CF]";

  private EvalMain() {}

  public static void main(String[] argv) {
    Args.run("moe-eval", USAGE, argv, () -> {
      Args a = new Args(argv, 0, Set.of("--model", "--tokens", "--data", "--split", "--batch", "--capacity-factor"),
          Set.of());
      Path dir = Path.of(a.required("--model"));
      String tokensFile = a.optional("--tokens", null), data = a.optional("--data", null);
      if ((tokensFile == null) == (data == null)) {
        throw new ConfigException("give exactly one of --tokens FILE and --data PREPARED_DIR");
      }
      TransformerLM model = ModelFiles.load(dir, Backends.host());
      int vocab = model.config().vocabSize();
      int[] tokens;
      if (data != null) {
        PreparedData p = PreparedData.open(data, new Configuration(), "--data");
        p.checkVocab(vocab, "--data " + data);
        tokens = p.read(a.optional("--split", "val"));
      } else {
        tokens = TokenData.load(Path.of(tokensFile), "auto", "--tokens");
        TokenData.checkVocab(tokens, vocab, "--tokens " + tokensFile);
      }
      double cf = Double.parseDouble(a.optional("--capacity-factor", "0"));
      Trainer.Evaluation e = Trainer.evaluate(model, tokens, a.integer("--batch", 8), Integer.MAX_VALUE, cf);
      System.out.printf(Locale.ROOT, "{\"loss\": %.6f, \"tokens\": %d}%n", e.loss(), e.tokens());
    });
  }
}

package io.moespark.ops.cli;

import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.train.Trainer;
import io.moespark.ops.train.TokenData;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;

/**
 * {@code moe-eval --model DIR --tokens FILE [--batch N] [--capacity-factor CF]}: mean next-token CE of an
 * exported model over consecutive windows of seq_len + 1 tokens of a little-endian int32 token file (or
 * text as bytes), dropless unless a capacity factor is given. Prints one JSON line.
 */
public final class EvalMain {
  private EvalMain() {}

  public static void main(String[] argv) {
    Args.run("moe-eval", () -> {
      Args a = new Args(argv, 0, Set.of("--model", "--tokens", "--batch", "--capacity-factor"), Set.of());
      Path dir = Path.of(a.required("--model"));
      Path file = Path.of(a.required("--tokens"));
      TransformerLM model = ModelFiles.load(dir);
      int[] tokens = TokenData.load(file, "auto", "--tokens");
      TokenData.checkVocab(tokens, model.config().vocabSize(), "--tokens " + file);
      double cf = Double.parseDouble(a.optional("--capacity-factor", "0"));
      Trainer.Evaluation e = Trainer.evaluate(model, tokens, a.integer("--batch", 8), Integer.MAX_VALUE, cf);
      System.out.printf(Locale.ROOT, "{\"loss\": %.6f, \"tokens\": %d}%n", e.loss(), e.tokens());
    });
  }
}

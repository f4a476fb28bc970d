package io.moespark.ops.cli;

import io.moespark.ops.backend.Backends;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.io.HuggingFace;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.model.Generator;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.text.HfTokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * {@code moe-generate --model DIR (--prompt TEXT | --prompt-file F) [--max-new-tokens N] [--temperature T]
 * [--top-k K] [--top-p P] [--seed S] [--show-ids]}: continues each prompt (the --prompt, or each non-empty
 * line of the file) with the model of DIR: a model directory this project wrote (a run's {@code model/}), or
 * a Hugging Face Mixtral, Llama or Qwen2 directory as this model computes it; encoding and decoding with
 * the tokenizer beside its weights. Greedy unless a temperature is given; generation stops at the tokenizer's end-of-text token.
 */
public final class GenerateMain {
  private static final String USAGE = "moe-generate --model DIR (--prompt TEXT | --prompt-file F) "
      + "[--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--show-ids]";

  private GenerateMain() {}

  public static void main(String[] argv) {
    Args.run("moe-generate", USAGE, argv, () -> run(argv, System.out));
  }

  /** Parses {@code argv}, generates and prints each prompt and its continuation to {@code out}. */
  static void run(String[] argv, PrintStream out) throws IOException {
    Args a = new Args(argv, 0, Set.of("--model", "--prompt", "--prompt-file", "--max-new-tokens", "--temperature",
        "--top-k", "--top-p", "--seed"), Set.of("--show-ids"));
    Path dir = Path.of(a.required("--model"));
    List<String> prompts = prompts(a);
    int maxNew = a.integer("--max-new-tokens", 64);
    long topK = a.whole("--top-k", 0);
    Generator.Sampling sampling = new Generator.Sampling(a.number("--temperature", 0),
        (int) Math.max(-1, Math.min(Integer.MAX_VALUE, topK)), a.number("--top-p", 1), a.whole("--seed", 0));
    if (!Files.isRegularFile(dir.resolve(HfTokenizer.FILE))) {
      throw new ConfigException("--model " + dir + ": no " + HfTokenizer.FILE + " beside the weights (a model "
          + "trained on raw bytes or token ids has no tokenizer to turn text into ids)");
    }
    TransformerLM model = HuggingFace.isModelDirectory(dir) ? HuggingFace.loadModel(dir, Backends.host())
        : ModelFiles.load(dir, Backends.host());
    Generator generator = new Generator(model);
    try (HfTokenizer tok = HfTokenizer.open(dir)) {
      int eos = tok.specials().eosId();
      for (String prompt : prompts) {
        int[] ids = tok.encode(prompt);
        int[] gen = generator.generate(ids, maxNew, eos, sampling);
        out.println("> " + prompt);
        out.println(tok.decode(gen, false));
        if (a.flag("--show-ids")) {
          out.println("prompt ids: " + join(ids));
          out.println("generated ids: " + join(gen));
        }
        out.println();
      }
    }
  }

  private static List<String> prompts(Args a) throws IOException {
    String one = a.optional("--prompt", null), file = a.optional("--prompt-file", null);
    if ((one == null) == (file == null)) {
      throw new ConfigException("give one of --prompt TEXT or --prompt-file F");
    }
    if (one != null) {
      return List.of(one);
    }
    Path f = Path.of(file);
    if (!Files.isRegularFile(f)) {
      throw new ConfigException("--prompt-file " + f + ": no such file");
    }
    List<String> out = new ArrayList<>();
    for (String line : Files.readAllLines(f)) {
      if (!line.isBlank()) {
        out.add(line);
      }
    }
    if (out.isEmpty()) {
      throw new ConfigException("--prompt-file " + f + ": no prompts (expected one per non-empty line)");
    }
    return out;
  }

  private static String join(int[] ids) {
    return java.util.Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(" "));
  }
}

package io.moespark.prep;

import io.moespark.ops.text.HfTokenizer;
import io.moespark.prep.bpe.BpeTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.zip.GZIPInputStream;

/**
 * {@code moe-bench-tokenizer --tokenizer FILE --text FILE [--rounds N]}: encodes the paragraphs of a text
 * with a tokenizer.json this project trained, three ways, and prints MB/s of UTF-8 text for each (best of
 * the rounds, after a warm-up round): the project's encoder on one thread, Hugging Face's tokenizers
 * through DJL one document per call on one thread, and DJL's batchEncode of 256 documents per call (the
 * library's own threads: MB/s per core divides by the cores). The three must give identical ids, or it
 * fails. Packing in moe-prep runs the first where it is shown equal, the third otherwise.
 */
public final class TokenizerBench {
  private TokenizerBench() {}

  private static final String USAGE = "moe-bench-tokenizer --tokenizer FILE --text FILE [--rounds N]";

  public static void main(String[] argv) throws IOException {
    if (Arrays.asList(argv).contains("--help") || Arrays.asList(argv).contains("-h")) {
      System.out.println("usage: " + USAGE);
      return;
    }
    String tokFile = null, textFile = null;
    int rounds = 3;
    for (int i = 0; i < argv.length; i++) {
      switch (argv[i]) {
        case "--tokenizer" -> tokFile = argv[++i];
        case "--text" -> textFile = argv[++i];
        case "--rounds" -> rounds = Integer.parseInt(argv[++i]);
        default -> throw new IllegalArgumentException("unknown option " + argv[i] + " (usage: " + USAGE + ")");
      }
    }
    if (tokFile == null || textFile == null) {
      throw new IllegalArgumentException("usage: " + USAGE);
    }
    String json = Files.readString(Path.of(tokFile));
    BpeTokenizer ours = BpeTokenizer.fromJson(json, tokFile);
    List<String> docs = new ArrayList<>();
    for (String p : read(Path.of(textFile)).split("\n\\s*\n")) {
      if (!p.isBlank()) {
        docs.add(p);
      }
    }
    String[] all = docs.toArray(String[]::new);
    long bytes = 0;
    for (String d : all) {
      bytes += d.getBytes(StandardCharsets.UTF_8).length;
    }
    int[][] a = new int[all.length][], b = new int[all.length][], c = new int[all.length][];
    double best1 = Double.MAX_VALUE, best2 = Double.MAX_VALUE, best3 = Double.MAX_VALUE;
    try (HfTokenizer lib = HfTokenizer.fromJson(json, null, tokFile)) {
      for (int r = 0; r <= rounds; r++) { // round 0 warms up
        long t0 = System.nanoTime();
        for (int i = 0; i < all.length; i++) {
          a[i] = ours.encode(all[i]);
        }
        long t1 = System.nanoTime();
        for (int i = 0; i < all.length; i++) {
          b[i] = lib.encode(all[i]);
        }
        long t2 = System.nanoTime();
        for (int from = 0; from < all.length; from += 256) {
          int[][] got = lib.encodeBatch(Arrays.copyOfRange(all, from, Math.min(all.length, from + 256)));
          System.arraycopy(got, 0, c, from, got.length);
        }
        long t3 = System.nanoTime();
        if (r > 0) {
          best1 = Math.min(best1, (t1 - t0) / 1e9);
          best2 = Math.min(best2, (t2 - t1) / 1e9);
          best3 = Math.min(best3, (t3 - t2) / 1e9);
        }
      }
    }
    for (int i = 0; i < all.length; i++) {
      if (!Arrays.equals(a[i], b[i]) || !Arrays.equals(a[i], c[i])) {
        throw new IllegalStateException("document " + i + ": the encoders' ids differ");
      }
    }
    long tokens = Arrays.stream(a).mapToLong(x -> x.length).sum();
    System.out.printf(Locale.ROOT, "{\"documents\": %d, \"mb\": %.3f, \"tokens\": %d, \"ids_identical\": true, "
        + "\"project_1_thread_mb_s\": %.2f, \"djl_encode_1_thread_mb_s\": %.2f, \"djl_batch_encode_mb_s\": %.2f, "
        + "\"cores\": %d}%n", all.length, bytes / 1e6, tokens, bytes / 1e6 / best1, bytes / 1e6 / best2,
        bytes / 1e6 / best3, Runtime.getRuntime().availableProcessors());
  }

  private static String read(Path p) throws IOException {
    try (InputStream in = p.toString().endsWith(".gz") ? new GZIPInputStream(Files.newInputStream(p))
        : Files.newInputStream(p)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }
}

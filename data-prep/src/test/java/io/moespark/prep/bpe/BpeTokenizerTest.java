package io.moespark.prep.bpe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.moespark.prep.TestSpark;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.GZIPInputStream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The byte-level BPE: exact round trips, and the same ids as Hugging Face tokenizers (via DJL). */
class BpeTokenizerTest {
  static final Path CORPUS = Path.of("..", "data", "corpus", "moby-dick.txt.gz");
  static List<String> paragraphs;
  static BpeTokenizer trained;

  @BeforeAll
  static void train() throws Exception {
    String text;
    try (GZIPInputStream in = new GZIPInputStream(Files.newInputStream(CORPUS))) {
      text = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    }
    paragraphs = new ArrayList<>();
    for (String p : text.split("\n\\s*\n")) {
      if (p.length() > 40) {
        paragraphs.add(p);
      }
    }
    Dataset<Row> docs = TestSpark.get().createDataset(paragraphs.subList(0, 400), Encoders.STRING()).toDF("text");
    trained = BpeTrainer.train(docs, 400, s -> {});
  }

  @Test
  void trainsTheRequestedVocabularyWithUniqueTokens() {
    assertEquals(400, trained.vocabSize());
    java.util.Set<String> seen = new java.util.HashSet<>();
    for (int i = 0; i < trained.vocabSize(); i++) {
      assertTrue(seen.add(trained.token(i)), "duplicate token " + trained.token(i));
    }
    // Merges compress: English text takes well under one token per byte.
    String sample = paragraphs.get(500);
    assertTrue(trained.encode(sample).length < 0.6 * sample.getBytes(java.nio.charset.StandardCharsets.UTF_8).length);
  }

  @Test
  void roundTripsRandomUnicode() {
    SplittableRandom r = new SplittableRandom(7);
    int[][] ranges = {{0x20, 0x7e}, {0x09, 0x0d}, {0xa0, 0x24f}, {0x391, 0x3c9}, {0x400, 0x4ff}, {0x4e00, 0x9fff},
        {0x3040, 0x30ff}, {0xac00, 0xd7a3}, {0x1f300, 0x1faff}, {0x10000, 0x10fff}, {0x2000, 0x206f}, {0x300, 0x36f}};
    for (int n = 0; n < 2000; n++) {
      StringBuilder b = new StringBuilder();
      int len = r.nextInt(0, 40);
      for (int i = 0; i < len; i++) {
        int[] range = ranges[r.nextInt(ranges.length)];
        b.appendCodePoint(r.nextInt(range[0], range[1] + 1));
      }
      String s = b.toString();
      assertEquals(s, trained.decode(trained.encode(s)), "round trip of " + s.codePoints().mapToObj(Integer::toHexString).toList());
    }
    for (String s : new String[] {"", " ", "  \n\n\t ", "naïve café — “quoted” 🐳🐋 鯨 クジラ 고래", "e\u0301", "a\r\nb"}) {
      assertEquals(s, trained.decode(trained.encode(s)));
    }
  }

  @Test
  void jsonRoundTripsAndEodDecodes() {
    BpeTokenizer back = BpeTokenizer.fromJson(trained.toJson(), "test");
    String s = paragraphs.get(3);
    assertArrayEquals(trained.encode(s), back.encode(s));
    int[] ids = trained.encode("Call me");
    int[] withEod = java.util.Arrays.copyOf(ids, ids.length + 1);
    assertEquals("Call me" + BpeTokenizer.EOD, trained.decode(withEod));
  }

  @Test
  void huggingFaceTokenizersGiveTheSameIds(@TempDir Path tmp) throws Exception {
    Path file = tmp.resolve("tokenizer.json");
    Files.writeString(file, trained.toJson());
    try (HuggingFaceTokenizer hf = HuggingFaceTokenizer.builder().optTokenizerPath(file).optTruncation(false)
        .optPadding(false).build()) {
      List<String> samples = new ArrayList<>(paragraphs.subList(400, 600));
      samples.add("naïve café — “quoted” 🐳 鯨 クジラ  double  spaces\n\nand\ttabs 123,456.7 don't");
      for (String s : samples) {
        long[] theirs = hf.encode(s, false, false).getIds();
        int[] ours = trained.encode(s);
        assertArrayEquals(java.util.Arrays.stream(ours).asLongStream().toArray(), theirs, "ids differ for: " + s);
        assertEquals(s, hf.decode(theirs, false));
      }
    }
  }
}

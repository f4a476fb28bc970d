package io.moespark.prep;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.prep.bpe.BpeTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The whole pipeline on a small real corpus, and its behaviour on bad input. */
class PrepJobTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static String corpus;

  @BeforeAll
  static void load() throws IOException {
    try (GZIPInputStream in = new GZIPInputStream(Files.newInputStream(Path.of("..", "data", "corpus",
        "moby-dick.txt.gz")))) {
      String text = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      corpus = text.substring(0, 120_000);
    }
  }

  static PrepOptions options(Path in, Path out, boolean overwrite) {
    return options(in, out, overwrite, null);
  }

  static PrepOptions options(Path in, Path out, boolean overwrite, String tokenizer) {
    PrepOptions d = PrepOptions.defaults(List.of(in.toString()), out.toString());
    return new PrepOptions(d.inputs(), d.output(), 320, 32, 0.1, d.format(), d.textField(), d.minChars(),
        d.maxChars(), d.minLetterFraction(), d.maxRepeatedLineRatio(), d.nearDupJaccard(), 2, overwrite, d.master(),
        tokenizer);
  }

  @Test
  void writesShardsTokenizerAndManifest(@TempDir Path tmp) throws Exception {
    Path in = tmp.resolve("book.txt"), out = tmp.resolve("prepared");
    Files.writeString(in, corpus + "\n\n" + corpus.substring(0, 5000)); // repeated paragraphs: exact dupes
    JsonNode m = new PrepJob(TestSpark.get(), options(in, out, false), s -> {}).run();
    assertEquals(JSON.readTree(JSON.writeValueAsString(m)), JSON.readTree(out.resolve(PrepJob.MANIFEST).toFile()));
    assertEquals(320, m.get("vocab_size").asInt());
    assertEquals(32, m.get("seq_len").asInt());
    List<String> names = new ArrayList<>();
    m.get("stages").forEach(s -> names.add(s.get("stage").asText()));
    assertEquals(List.of("ingest", "normalize", "filter", "exact_dedup", "near_dedup", "split_train", "split_val",
        "bpe", "pack_train", "pack_val"), names);
    assertTrue(m.get("stages").get(3).get("rows").asLong() < m.get("stages").get(2).get("rows").asLong(),
        "exact dedup removed the repeated paragraphs");
    String tokJson = Files.readString(out.resolve(PrepJob.TOKENIZER));
    assertEquals(PrepJob.sha256(tokJson), m.get("tokenizer_sha256").asText());
    for (String split : List.of("train", "val")) {
      JsonNode files = m.get("splits").get(split).get("files");
      try (var parts = Files.list(out.resolve(split))) {
        List<Path> shards = parts.filter(p -> p.toString().endsWith(".parquet")).toList();
        assertEquals(shards.size(), files.size(), split + ": every shard listed");
        for (Path p : shards) {
          assertEquals(java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
              .digest(Files.readAllBytes(p))), files.get(p.getFileName().toString()).asText(), p.toString());
        }
      }
    }
    BpeTokenizer tok = BpeTokenizer.fromJson(tokJson, "tokenizer.json");
    for (String split : List.of("train", "val")) {
      JsonNode s = m.get("splits").get(split);
      List<Row> rows = TestSpark.get().read().parquet(out.resolve(split).toString()).collectAsList();
      assertEquals(s.get("rows").asLong(), rows.size());
      assertTrue(rows.size() > 0, split + " is empty");
      assertEquals(s.get("tokens_before_packing").asLong(), s.get("tokens").asLong() + s.get("tokens_dropped").asLong());
      for (Row r : rows) {
        List<Integer> t = r.getList(0);
        assertEquals(33, t.size());
      }
      // Rows decode to the corpus's own text, documents separated by the end-of-document token.
      String decoded = tok.decode(rows.get(0).<Integer>getList(0).stream().mapToInt(Integer::intValue).toArray());
      for (String piece : decoded.split(java.util.regex.Pattern.quote(BpeTokenizer.EOD))) {
        String p = piece.strip();
        if (p.length() > 10) {
          assertTrue(corpus.replaceAll("\\s+", " ").contains(p.replaceAll("\\s+", " ")), "not from the corpus: " + p);
        }
      }
    }
    assertFalse(Files.exists(out.resolve("_temporary")));
  }

  @Test
  void existingOutputIsNeverOverwrittenWithoutTheFlag(@TempDir Path tmp) throws IOException {
    Path in = tmp.resolve("book.txt"), out = tmp.resolve("prepared");
    Files.writeString(in, corpus.substring(0, 30_000));
    Files.createDirectories(out);
    Files.writeString(out.resolve("keep.txt"), "mine");
    PrepException e = assertThrows(PrepException.class,
        () -> new PrepJob(TestSpark.get(), options(in, out, false), s -> {}).run());
    assertTrue(e.getMessage().contains("already exists; pass --overwrite"), e.getMessage());
    assertEquals("mine", Files.readString(out.resolve("keep.txt")));
    new PrepJob(TestSpark.get(), options(in, out, true), s -> {}).run();
    assertTrue(Files.exists(out.resolve(PrepJob.MANIFEST)));
    assertFalse(Files.exists(out.resolve("keep.txt")));
    assertOnly(tmp, "book.txt", "prepared");
  }

  @Test
  void emptyCorpusAfterFiltersFailsAndLeavesNothing(@TempDir Path tmp) throws IOException {
    Path in = tmp.resolve("tiny.txt"), out = tmp.resolve("prepared");
    Files.writeString(in, "Too short.\n\nAlso short.\n");
    PrepException e = assertThrows(PrepException.class,
        () -> new PrepJob(TestSpark.get(), options(in, out, false), s -> {}).run());
    assertTrue(e.getMessage().contains("no documents left after the filters (ingest 2, normalize 2, filter 0)"),
        e.getMessage());
    assertOnly(tmp, "tiny.txt");
  }

  @Test
  void jsonWithoutTheTextFieldFailsAndLeavesNothing(@TempDir Path tmp) throws IOException {
    Path in = tmp.resolve("d.jsonl"), out = tmp.resolve("prepared");
    Files.writeString(in, "{\"content\": \"hello\"}\n");
    PrepException e = assertThrows(PrepException.class,
        () -> new PrepJob(TestSpark.get(), options(in, out, false), s -> {}).run());
    assertTrue(e.getMessage().contains("no field 'text' (fields: content)"), e.getMessage());
    assertOnly(tmp, "d.jsonl");
  }

  @Test
  void missingOrUnknownInputsFailAndLeaveNothing(@TempDir Path tmp) throws IOException {
    Path doc = tmp.resolve("notes.docx"), out = tmp.resolve("prepared");
    Files.writeString(doc, "binary?");
    PrepException e = assertThrows(PrepException.class,
        () -> new PrepJob(TestSpark.get(), options(doc, out, false), s -> {}).run());
    assertTrue(e.getMessage().contains("unknown input format for 'notes.docx'"), e.getMessage());
    e = assertThrows(PrepException.class,
        () -> new PrepJob(TestSpark.get(), options(tmp.resolve("gone.txt"), out, false), s -> {}).run());
    assertTrue(e.getMessage().contains("gone.txt: does not exist"), e.getMessage());
    assertOnly(tmp, "notes.docx");
  }

  @Test
  void optionsAreValidatedWithTheOptionNamed() {
    PrepException e = assertThrows(PrepException.class, () -> PrepMain.parse(new String[] {"--input", "a.txt",
        "--output", "o", "--vocab-size", "100"}));
    assertTrue(e.getMessage().startsWith("--vocab-size: expected in [258"), e.getMessage());
    e = assertThrows(PrepException.class, () -> PrepMain.parse(new String[] {"--input", "a.txt", "--output", "o",
        "--seq-len", "ten"}));
    assertEquals("--seq-len: expected an integer, got 'ten'", e.getMessage());
    e = assertThrows(PrepException.class, () -> PrepMain.parse(new String[] {"--output", "o"}));
    assertEquals("--input: expected at least one input path", e.getMessage());
    e = assertThrows(PrepException.class, () -> PrepMain.parse(new String[] {"--input", "a.txt", "--output", "o",
        "--vocab-size", "1000", "--tokenizer", "t.json"}));
    assertTrue(e.getMessage().startsWith("--vocab-size: not used with --tokenizer"), e.getMessage());
    PrepOptions o = PrepMain.parse(new String[] {"--input", "a.txt", "b/", "--output", "o", "--overwrite"});
    assertEquals(List.of("a.txt", "b/"), o.inputs());
    assertTrue(o.overwrite());
  }

  private static void assertOnly(Path dir, String... names) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      assertEquals(java.util.Set.of(names), s.map(p -> p.getFileName().toString())
          .filter(n -> !n.startsWith(".") || n.contains("tmp") || n.contains("old")).collect(java.util.stream.Collectors.toSet()));
    }
  }
}

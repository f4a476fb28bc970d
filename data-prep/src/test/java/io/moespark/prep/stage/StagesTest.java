package io.moespark.prep.stage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.prep.PrepException;
import io.moespark.prep.TestSpark;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.zip.GZIPInputStream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Each stage on small real text (paragraphs of the bundled corpus). */
class StagesTest {
  static List<String> paragraphs;

  @BeforeAll
  static void load() throws IOException {
    try (GZIPInputStream in = new GZIPInputStream(Files.newInputStream(Path.of("..", "data", "corpus",
        "moby-dick.txt.gz")))) {
      String text = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      paragraphs = new ArrayList<>();
      for (String p : text.split("\n\\s*\n")) {
        if (p.length() > 300 && !p.contains("\"")) {
          paragraphs.add(p.strip());
        }
      }
    }
  }

  static SparkSession spark() {
    return TestSpark.get();
  }

  static Dataset<Row> docs(List<String> texts) {
    return spark().createDataset(texts, Encoders.STRING()).toDF("text");
  }

  static List<String> texts(Dataset<Row> d) {
    return d.select("text").as(Encoders.STRING()).collectAsList();
  }

  @Test
  void ingestsTextJsonCsvParquetFilesAndDirectories(@TempDir Path tmp) throws IOException {
    String a = paragraphs.get(0), b = paragraphs.get(1), c = paragraphs.get(2);
    Files.writeString(tmp.resolve("book.txt"), a + "\n\n  \n" + b + "\n");
    Path jsonDir = Files.createDirectories(tmp.resolve("jsondir"));
    Files.writeString(jsonDir.resolve("part1.jsonl"), "{\"body\": " + quote(a) + ", \"id\": 1}\n");
    Files.writeString(jsonDir.resolve("part2.jsonl"), "{\"body\": " + quote(c) + ", \"id\": 2}\n");
    Files.writeString(tmp.resolve("t.csv"), "id,text\n1," + csvQuote(b) + "\n");
    docs(List.of(c)).write().parquet(tmp.resolve("p.parquet").toString());
    assertEquals(List.of(a, b), texts(Ingest.read(spark(), List.of(tmp.resolve("book.txt").toString()), "auto", "text"))
        .stream().map(String::strip).toList());
    assertEquals(Set.of(a, c), new HashSet<>(texts(Ingest.read(spark(), List.of(jsonDir.toString()), "auto", "body"))));
    assertEquals(List.of(b), texts(Ingest.read(spark(), List.of(tmp.resolve("t.csv").toString()), "auto", "text")));
    assertEquals(List.of(c), texts(Ingest.read(spark(), List.of(tmp.resolve("p.parquet").toString()), "parquet",
        "text")));
    // Several inputs of different kinds in one run.
    assertEquals(3, Ingest.read(spark(), List.of(tmp.resolve("book.txt").toString(), tmp.resolve("t.csv").toString()),
        "auto", "text").count());
  }

  @Test
  void badInputsNameWhatIsWrong(@TempDir Path tmp) throws IOException {
    Path json = tmp.resolve("d.jsonl");
    Files.writeString(json, "{\"body\": \"x\"}\n");
    PrepException e = assertThrows(PrepException.class, () -> Ingest.read(spark(), List.of(json.toString()), "auto",
        "text"));
    assertTrue(e.getMessage().contains("no field 'text'") && e.getMessage().contains("body"), e.getMessage());
    e = assertThrows(PrepException.class, () -> Ingest.read(spark(), List.of(tmp.resolve("nope.txt").toString()),
        "auto", "text"));
    assertTrue(e.getMessage().contains("nope.txt: does not exist"), e.getMessage());
    Files.writeString(tmp.resolve("x.docx"), "?");
    e = assertThrows(PrepException.class, () -> Ingest.read(spark(), List.of(tmp.resolve("x.docx").toString()),
        "auto", "text"));
    assertTrue(e.getMessage().contains("unknown input format for 'x.docx'"), e.getMessage());
  }

  @Test
  void normalizesUnicodeAndWhitespace() {
    String raw = "  Cafe\u0301 \t au\u00a0lait\r\nsecond   line  \n\n\n\nthird\u2003para ";
    assertEquals("Café au lait\nsecond line\n\nthird\u2003para", Clean.normalize(raw));
    assertEquals(List.of("Café au lait\nsecond line\n\nthird\u2003para"), texts(Clean.normalizeAll(docs(List.of(raw)))));
  }

  @Test
  void filtersByLengthLettersAndRepeatedLines() {
    String good = paragraphs.get(3);
    String shortDoc = "Too short.";
    String numbers = "1234 5678 9012 3456 7890 ".repeat(20);
    String boilerplate = "Click here to subscribe\n".repeat(8) + "Some real line\n";
    List<String> kept = texts(Clean.filter(docs(List.of(good, shortDoc, numbers, boilerplate)), 64, 100_000, 0.5, 0.3));
    assertEquals(List.of(good), kept);
    assertEquals(7.0 / 9, Clean.repeatedLineRatio(boilerplate), 1e-12);
  }

  @Test
  void exactAndNearDuplicatesAreRemovedDistinctTextsKept() {
    String a = paragraphs.get(4), b = paragraphs.get(5), c = paragraphs.get(6);
    String nearA = a.replaceFirst("the", "thy"); // one word changed in a long paragraph
    Dataset<Row> exact = Dedup.exact(docs(List.of(a, a, b, nearA, c)));
    assertEquals(4, exact.count());
    List<String> kept = texts(Dedup.near(exact, 0.8));
    assertEquals(3, kept.size(), "the near-duplicate pair keeps one member");
    assertTrue(kept.contains(b) && kept.contains(c));
    assertTrue(kept.contains(a) ^ kept.contains(nearA));
    assertTrue(Dedup.jaccard(a, nearA) > 0.9 && Dedup.jaccard(a, b) < 0.3);
  }

  @Test
  void splitIsStableAndNearTheFraction() {
    Dataset<Row> all = Dedup.exact(docs(paragraphs));
    Set<String> val = new HashSet<>(texts(Split.val(all, 0.1)));
    long n = all.count();
    assertTrue(Math.abs(val.size() - 0.1 * n) < 4 * Math.sqrt(0.1 * n), val.size() + " of " + n);
    assertEquals(n, val.size() + Split.train(all, 0.1).count());
    // Stability: in a corpus with half the documents, each document keeps its split.
    Dataset<Row> half = Dedup.exact(docs(paragraphs.subList(0, paragraphs.size() / 2)));
    Set<String> valHalf = new HashSet<>(texts(Split.val(half, 0.1)));
    Set<String> expected = paragraphs.subList(0, paragraphs.size() / 2).stream().filter(val::contains)
        .collect(Collectors.toSet());
    assertEquals(expected, valHalf);
  }

  static String csvQuote(String s) {
    return "\"" + s.replace("\"", "\"\"") + "\"";
  }

  static String quote(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
  }
}

package io.moespark.prep;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.text.HfTokenizer;
import io.moespark.prep.stage.Clean;
import io.moespark.prep.stage.Encoders;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code moe-prep --tokenizer}: documents encoded by an existing tokenizer give the tokenizers library's
 * own ids (and transformers' ids, committed by tools/make_hf_fixtures.py); the tokenizer's files travel
 * with the data unchanged; the project's own tokenizer is recognised and gives the same rows as the run
 * that trained it.
 */
class ExistingTokenizerTest {
  static final Path TOKENIZERS = Path.of("..", "expert-ops", "src", "test", "resources", "fixtures", "tokenizers");
  static final ObjectMapper JSON = new ObjectMapper();

  @BeforeAll
  static void corpus() throws IOException {
    PrepJobTest.load();
  }

  @ParameterizedTest
  @ValueSource(strings = {"bytelevel_bpe", "sentencepiece_bpe", "unigram", "wordpiece"})
  void encoderGivesTransformersIdsThenTheEndOfText(String kind) throws Exception {
    JsonNode expected = JSON.readTree(TOKENIZERS.resolve("expected.json").toFile());
    String[] docs = new String[expected.get("docs").size()];
    for (int d = 0; d < docs.length; d++) {
      docs[d] = expected.get("docs").get(d).asText();
    }
    Path dir = TOKENIZERS.resolve(kind);
    String json = Files.readString(dir.resolve("tokenizer.json"));
    String config = Files.readString(dir.resolve("tokenizer_config.json"));
    int eos = HfTokenizer.specials(json, config, kind).eosId();
    int[][] got;
    try (Encoders.Session s = Encoders.huggingFace(json, config, kind).open()) {
      got = s.encode(docs);
    }
    for (int d = 0; d < docs.length; d++) {
      List<Integer> want = new ArrayList<>();
      expected.get("ids").get(kind).get(d).forEach(i -> want.add(i.asInt()));
      if (want.isEmpty() || want.get(want.size() - 1) != eos) { // WordPiece's [SEP] already ends it
        want.add(eos);
      }
      assertArrayEquals(want.stream().mapToInt(Integer::intValue).toArray(), got[d], kind + ": document " + d);
    }
  }

  @Test
  void preparedDataHoldsTheLibrarysIdsOfItsDocuments(@TempDir Path tmp) throws Exception {
    List<String> docs = documents(60);
    Path in = tmp.resolve("docs.jsonl"), out = tmp.resolve("prepared");
    StringBuilder lines = new StringBuilder();
    for (String d : docs) {
      lines.append(JSON.writeValueAsString(Map.of("text", d))).append('\n');
    }
    Files.writeString(in, lines);
    Path tok = TOKENIZERS.resolve("sentencepiece_bpe");
    JsonNode m = new PrepJob(TestSpark.get(), PrepJobTest.options(in, out, false, tok.toString()), s -> {}).run();
    assertEquals("huggingface-tokenizers", m.get("encoder").asText());
    assertEquals("BPE", m.get("tokenizer_kind").asText());
    assertEquals(600, m.get("vocab_size").asInt());
    assertEquals(2, m.get("eod_id").asInt());
    assertEquals(Files.readString(tok.resolve("tokenizer.json")), Files.readString(out.resolve("tokenizer.json")));
    assertEquals(Files.readString(tok.resolve("tokenizer_config.json")),
        Files.readString(out.resolve("tokenizer_config.json")));
    Map<List<Integer>, String> byIds = new HashMap<>();
    try (HfTokenizer t = HfTokenizer.open(tok)) {
      for (String d : docs) {
        List<Integer> ids = new ArrayList<>();
        for (int id : t.encode(d)) {
          ids.add(id);
        }
        ids.add(2);
        byIds.put(ids, d);
      }
    }
    // Each part file is one packing partition: its rows in order are its documents' ids back to back, the
    // partition's partial last row dropped. Every whole document in them is one of the inputs, encoded.
    int found = 0;
    for (String split : List.of("train", "val")) {
      List<Path> parts;
      try (Stream<Path> s = Files.list(out.resolve(split))) {
        parts = s.filter(p -> p.toString().endsWith(".parquet")).sorted().toList();
      }
      for (Path part : parts) {
        List<Integer> segment = new ArrayList<>();
        for (Row r : TestSpark.get().read().parquet(part.toString()).collectAsList()) {
          for (Integer id : r.<Integer>getList(0)) {
            segment.add(id);
            if (id == 2) {
              assertTrue(byIds.containsKey(segment), split + "/" + part.getFileName() + ": ids of no input document: "
                  + segment);
              found++;
              segment = new ArrayList<>();
            }
          }
        }
      }
    }
    assertTrue(found >= docs.size() - 8, "whole documents found: " + found + " of " + docs.size());
  }

  @Test
  void theProjectsOwnTokenizerRunsOnItsOwnEncoderWithTheSameRows(@TempDir Path tmp) throws Exception {
    Path in = tmp.resolve("book.txt"), first = tmp.resolve("first"), second = tmp.resolve("second");
    Files.writeString(in, PrepJobTest.corpus.substring(0, 40_000));
    new PrepJob(TestSpark.get(), PrepJobTest.options(in, first, false), s -> {}).run();
    JsonNode m = new PrepJob(TestSpark.get(),
        PrepJobTest.options(in, second, false, first.resolve("tokenizer.json").toString()), s -> {}).run();
    assertEquals("project-bpe", m.get("encoder").asText());
    for (String split : List.of("train", "val")) {
      assertEquals(rows(first.resolve(split)), rows(second.resolve(split)), split);
    }
  }

  @Test
  void aMissingTokenizerIsRefusedByNameAndNothingIsWritten(@TempDir Path tmp) throws Exception {
    Path in = tmp.resolve("book.txt"), out = tmp.resolve("prepared");
    Files.writeString(in, PrepJobTest.corpus.substring(0, 20_000));
    PrepException e = assertThrows(PrepException.class, () -> new PrepJob(TestSpark.get(),
        PrepJobTest.options(in, out, false, tmp.resolve("nowhere").toString()), s -> {}).run());
    assertTrue(e.getMessage().startsWith("--tokenizer " + tmp.resolve("nowhere")), e.getMessage());
    Path bad = Files.createDirectories(tmp.resolve("bad"));
    Files.copy(TOKENIZERS.resolve("unigram").resolve("tokenizer.json"), bad.resolve("tokenizer.json"));
    e = assertThrows(PrepException.class, () -> new PrepJob(TestSpark.get(),
        PrepJobTest.options(in, out, false, bad.toString()), s -> {}).run());
    assertTrue(e.getMessage().contains("cannot tell its end-of-text token"), e.getMessage());
    assertFalse(Files.exists(out));
    try (Stream<Path> s = Files.list(tmp)) {
      assertEquals(List.of(), s.filter(p -> p.getFileName().toString().startsWith(".prepared")).toList());
    }
  }

  private static List<List<Integer>> rows(Path dir) {
    List<List<Integer>> out = new ArrayList<>();
    for (Row r : TestSpark.get().read().parquet(dir.toString()).collectAsList()) {
      out.add(r.getList(0));
    }
    out.sort(java.util.Comparator.comparing(Object::toString));
    return out;
  }

  /** Distinct paragraphs of the corpus as the pipeline keeps them (normalised, long enough, mostly letters). */
  private static List<String> documents(int n) {
    List<String> out = new ArrayList<>();
    for (String p : PrepJobTest.corpus.split("\n\n")) {
      String d = Clean.normalize(p);
      if (d.length() >= 200 && d.length() < 2000 && Clean.letterFraction(d) > 0.7 && !out.contains(d)) {
        out.add(d);
      }
      if (out.size() == n) {
        break;
      }
    }
    return out;
  }
}

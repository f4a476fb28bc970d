package io.moespark.ops.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.config.ConfigException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * The four tokenizer kinds against transformers' own {@code tokenizer(doc)} ids and decoding, committed by
 * tools/make_hf_fixtures.py; and the refusals of a tokenizer whose end-of-text token cannot be told.
 */
class HfTokenizerTest {
  static final Path DIR = Path.of("src", "test", "resources", "fixtures", "tokenizers");

  @ParameterizedTest
  @ValueSource(strings = {"bytelevel_bpe", "sentencepiece_bpe", "unigram", "wordpiece"})
  void idsAndTextAreTransformers(String kind) throws Exception {
    JsonNode expected = new ObjectMapper().readTree(DIR.resolve("expected.json").toFile());
    JsonNode docs = expected.get("docs");
    String[] all = new String[docs.size()];
    try (HfTokenizer t = HfTokenizer.open(DIR.resolve(kind))) {
      for (int d = 0; d < docs.size(); d++) {
        all[d] = docs.get(d).asText();
        int[] want = ints(expected.get("ids").get(kind).get(d));
        assertArrayEquals(want, t.encode(all[d]), kind + ": ids of document " + d);
        assertEquals(expected.get("decoded").get(kind).get(d).asText(), t.decode(want, false),
            kind + ": text of document " + d);
      }
      int[][] batch = t.encodeBatch(all);
      for (int d = 0; d < all.length; d++) {
        assertArrayEquals(ints(expected.get("ids").get(kind).get(d)), batch[d], kind + ": batch, document " + d);
      }
    }
  }

  @Test
  void specialTokensComeFromTheConfig() {
    HfTokenizer.Specials u = specials("unigram");
    assertEquals("Unigram", u.kind());
    assertEquals(600, u.vocabSize());
    assertEquals(1, u.eosId()); // "</s>", trained after "<pad>"
    assertEquals(0, u.padId());
    HfTokenizer.Specials s = specials("sentencepiece_bpe");
    assertEquals(2, s.eosId());
    assertEquals(-1, s.padId());
    assertEquals("WordPiece", specials("wordpiece").kind());
    assertEquals("[SEP]", specials("wordpiece").eosText());
  }

  @Test
  void anEndOfTextThatCannotBeToldIsRefusedNamingTheFile(@TempDir Path tmp) throws Exception {
    // No config beside a tokenizer with three special tokens.
    Files.copy(DIR.resolve("sentencepiece_bpe").resolve("tokenizer.json"), tmp.resolve("tokenizer.json"));
    ConfigException e = assertThrows(ConfigException.class, () -> HfTokenizer.open(tmp));
    assertTrue(e.getMessage().contains(tmp.resolve("tokenizer.json").toString()), e.getMessage());
    assertTrue(e.getMessage().contains("3 special tokens"), e.getMessage());
    // A config naming an end-of-text token the vocabulary lacks.
    Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"eos_token\": {\"content\": \"<|eot|>\"}}");
    e = assertThrows(ConfigException.class, () -> HfTokenizer.open(tmp));
    assertTrue(e.getMessage().contains("'<|eot|>' is not in its vocabulary"), e.getMessage());
    // A config without one.
    Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"pad_token\": \"<s>\"}");
    e = assertThrows(ConfigException.class, () -> HfTokenizer.open(tmp));
    assertTrue(e.getMessage().contains("has no eos_token"), e.getMessage());
    // Not a tokenizer at all.
    Files.writeString(tmp.resolve("tokenizer.json"), "{\"version\": \"1.0\"");
    e = assertThrows(ConfigException.class, () -> HfTokenizer.open(tmp));
    assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    assertThrows(ConfigException.class, () -> HfTokenizer.open(tmp.resolve("absent")));
  }

  private static HfTokenizer.Specials specials(String kind) {
    try {
      Path d = DIR.resolve(kind);
      return HfTokenizer.specials(Files.readString(d.resolve("tokenizer.json")),
          Files.readString(d.resolve("tokenizer_config.json")), kind);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  static int[] ints(JsonNode a) {
    int[] out = new int[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).asInt();
    }
    return out;
  }
}

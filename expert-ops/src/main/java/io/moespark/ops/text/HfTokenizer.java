package io.moespark.ops.text;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.config.ConfigException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A Hugging Face tokenizer ({@code tokenizer.json}, with the {@code tokenizer_config.json} beside it when
 * there is one) run by Hugging Face's own {@code tokenizers} library through DJL, for every model kind that
 * library has (byte-level BPE, BPE with byte fallback, Unigram, WordPiece, WordLevel). Encoding is what
 * transformers' {@code tokenizer(text)} gives: the tokenizer's own post-processor adds its special tokens
 * (Llama's BOS, for example); no truncation, no padding. The end-of-text and padding tokens come from the
 * tokenizer's config ({@code eos_token}, {@code pad_token}); without a config, a tokenizer with exactly one
 * special token uses it as end of text (the project's own tokenizers), any other is refused, naming the file.
 * Holds a native handle: close it.
 */
public final class HfTokenizer implements AutoCloseable {
  public static final String FILE = "tokenizer.json";
  public static final String CONFIG_FILE = "tokenizer_config.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  /** What a tokenizer's files say about it, read without the native library. */
  public record Specials(String kind, int vocabSize, int eosId, String eosText, int padId) {}

  private final HuggingFaceTokenizer tokenizer;
  private final Specials specials;

  private HfTokenizer(HuggingFaceTokenizer tokenizer, Specials specials) {
    this.tokenizer = tokenizer;
    this.specials = specials;
  }

  /** {@code path}'s tokenizer.json: the file itself, or the one in a model directory. */
  public static Path file(Path path) {
    Path f = Files.isDirectory(path) ? path.resolve(FILE) : path;
    if (!Files.isRegularFile(f)) {
      throw new ConfigException(path + ": expected a tokenizer.json file or a model directory holding one");
    }
    return f;
  }

  /** The tokenizer_config.json beside {@code tokenizerFile}, or null when there is none. */
  public static Path configBeside(Path tokenizerFile) {
    Path c = tokenizerFile.resolveSibling(CONFIG_FILE);
    return Files.isRegularFile(c) ? c : null;
  }

  /** Opens the tokenizer of {@code path} (a tokenizer.json or a model directory). */
  public static HfTokenizer open(Path path) {
    Path f = file(path);
    Path c = configBeside(f);
    try {
      return fromJson(Files.readString(f), c == null ? null : Files.readString(c), f.toString());
    } catch (IOException e) {
      throw new ConfigException(f + ": cannot read: " + e.getMessage(), e);
    }
  }

  /**
   * A tokenizer from the texts of its files ({@code configJson} may be null); {@code source} names them in
   * errors. Executors build theirs this way from what the driver read.
   */
  public static HfTokenizer fromJson(String tokenizerJson, String configJson, String source) {
    Specials s = specials(tokenizerJson, configJson, source);
    try {
      HuggingFaceTokenizer t = HuggingFaceTokenizer.newInstance(
          new ByteArrayInputStream(tokenizerJson.getBytes(StandardCharsets.UTF_8)),
          Map.of("addSpecialTokens", "true", "truncation", "false", "padding", "false"));
      return new HfTokenizer(t, s);
    } catch (IOException | RuntimeException e) {
      throw new ConfigException(source + ": the tokenizers library cannot load it: " + e.getMessage(), e);
    }
  }

  /** Reads the kind, the id range and the special tokens from the files' text. */
  public static Specials specials(String tokenizerJson, String configJson, String source) {
    JsonNode tok;
    JsonNode cfg;
    try {
      tok = JSON.readTree(tokenizerJson);
      cfg = configJson == null ? null : JSON.readTree(configJson);
    } catch (IOException e) {
      throw new ConfigException(source + ": not valid JSON: " + e.getMessage(), e);
    }
    JsonNode model = tok.path("model");
    String kind = model.path("type").asText("");
    if (kind.isEmpty()) {
      throw new ConfigException(source + ": no model.type (expected a Hugging Face tokenizer.json)");
    }
    int maxId = -1;
    JsonNode vocab = model.path("vocab");
    if (vocab.isObject()) {
      for (JsonNode id : vocab) {
        maxId = Math.max(maxId, id.asInt());
      }
    } else if (vocab.isArray()) { // Unigram: [piece, score] pairs, the id is the position
      maxId = vocab.size() - 1;
    }
    List<JsonNode> special = new ArrayList<>();
    for (JsonNode t : tok.path("added_tokens")) {
      maxId = Math.max(maxId, t.path("id").asInt());
      if (t.path("special").asBoolean(false)) {
        special.add(t);
      }
    }
    if (maxId < 0) {
      throw new ConfigException(source + ": model.vocab is empty");
    }
    String eosText;
    if (cfg != null) {
      eosText = tokenText(cfg.path("eos_token"));
      if (eosText == null) {
        throw new ConfigException(source + ": its " + CONFIG_FILE + " has no eos_token (the end-of-text token)");
      }
    } else if (special.size() == 1) {
      eosText = special.get(0).path("content").asText();
    } else {
      throw new ConfigException(source + ": cannot tell its end-of-text token: no " + CONFIG_FILE
          + " with eos_token beside it, and " + special.size() + " special tokens (expected exactly one)");
    }
    int eos = idOf(tok, eosText);
    if (eos < 0) {
      throw new ConfigException(source + ": eos_token '" + eosText + "' is not in its vocabulary");
    }
    String padText = cfg == null ? null : tokenText(cfg.path("pad_token"));
    int pad = padText == null ? -1 : idOf(tok, padText);
    return new Specials(kind, maxId + 1, eos, eosText, pad);
  }

  /** A token in a config: a string or an AddedToken object ({"content": ...}); null when absent. */
  private static String tokenText(JsonNode n) {
    if (n.isTextual()) {
      return n.asText();
    }
    return n.isObject() && n.path("content").isTextual() ? n.get("content").asText() : null;
  }

  private static int idOf(JsonNode tok, String text) {
    for (JsonNode t : tok.path("added_tokens")) {
      if (text.equals(t.path("content").asText())) {
        return t.path("id").asInt();
      }
    }
    JsonNode vocab = tok.path("model").path("vocab");
    if (vocab.isObject() && vocab.has(text)) {
      return vocab.get(text).asInt();
    }
    if (vocab.isArray()) {
      for (int i = 0; i < vocab.size(); i++) {
        if (text.equals(vocab.get(i).path(0).asText())) {
          return i;
        }
      }
    }
    return -1;
  }

  public Specials specials() {
    return specials;
  }

  /** The ids of {@code text} as transformers' {@code tokenizer(text)} gives them (special tokens included). */
  public int[] encode(String text) {
    return ints(tokenizer.encode(text, true, false).getIds());
  }

  /** {@link #encode} of each text, in one call into the library (its own threads). */
  public int[][] encodeBatch(String[] texts) {
    Encoding[] enc = tokenizer.batchEncode(texts, true, false);
    int[][] out = new int[enc.length][];
    for (int i = 0; i < enc.length; i++) {
      out[i] = ints(enc[i].getIds());
    }
    return out;
  }

  /** The text of {@code ids}; special tokens are kept when {@code keepSpecial}. */
  public String decode(int[] ids, boolean keepSpecial) {
    long[] l = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      l[i] = ids[i];
    }
    return tokenizer.decode(l, !keepSpecial);
  }

  private static int[] ints(long[] ids) {
    int[] out = new int[ids.length];
    for (int i = 0; i < ids.length; i++) {
      out[i] = Math.toIntExact(ids[i]);
    }
    return out;
  }

  @Override
  public void close() {
    tokenizer.close();
  }
}

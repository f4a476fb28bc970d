package io.moespark.prep.bpe;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A byte-level BPE tokenizer: id 0 is the end-of-document token, ids 1..256 the byte characters in byte
 * order, then one id per merge in rank order. Encoding merges, within each pre-token, the adjacent pair of
 * lowest rank until none applies (Hugging Face's BPE model); decoding is exact for any string.
 * Serializable so that Spark ships it to executors.
 */
public final class BpeTokenizer implements Serializable {
  private static final long serialVersionUID = 1L;
  public static final String EOD = "<|endoftext|>";
  public static final int EOD_ID = 0;
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private final String[] tokens;
  /** (left << 32 | right) -> rank; the merged id is 257 + rank. */
  private final HashMap<Long, Integer> ranks = new HashMap<>();
  private transient Map<String, int[]> cache;

  /** @param merges pairs of token ids, in rank order */
  public BpeTokenizer(List<int[]> merges) {
    tokens = new String[257 + merges.size()];
    tokens[EOD_ID] = EOD;
    for (int b = 0; b < 256; b++) {
      tokens[1 + b] = String.valueOf(ByteLevel.charOf(b));
    }
    for (int r = 0; r < merges.size(); r++) {
      int[] m = merges.get(r);
      if (m[0] <= 0 || m[1] <= 0 || m[0] >= 257 + r || m[1] >= 257 + r) {
        throw new IllegalArgumentException("merge " + r + " refers to an unknown token");
      }
      tokens[257 + r] = tokens[m[0]] + tokens[m[1]];
      ranks.put(key(m[0], m[1]), r);
    }
  }

  public int vocabSize() {
    return tokens.length;
  }

  public String token(int id) {
    return tokens[id];
  }

  private static long key(int a, int b) {
    return ((long) a << 32) | (b & 0xffffffffL);
  }

  /** Token ids of {@code text} (no end-of-document token). */
  public int[] encode(String text) {
    List<String> pieces = ByteLevel.pretokenize(text);
    int[][] parts = new int[pieces.size()][];
    int n = 0;
    for (int i = 0; i < parts.length; i++) {
      parts[i] = encodePiece(pieces.get(i));
      n += parts[i].length;
    }
    int[] out = new int[n];
    int o = 0;
    for (int[] p : parts) {
      System.arraycopy(p, 0, out, o, p.length);
      o += p.length;
    }
    return out;
  }

  /** Applies merges by rank to one byte-level piece. */
  int[] encodePiece(String piece) {
    if (cache == null) {
      cache = new HashMap<>();
    }
    int[] hit = cache.get(piece);
    if (hit != null) {
      return hit;
    }
    int[] sym = new int[piece.length()];
    int len = sym.length;
    for (int i = 0; i < len; i++) {
      sym[i] = 1 + byteOf(piece.charAt(i));
    }
    while (len > 1) {
      int best = -1, bestRank = Integer.MAX_VALUE;
      for (int i = 0; i + 1 < len; i++) {
        Integer r = ranks.get(key(sym[i], sym[i + 1]));
        if (r != null && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) {
        break;
      }
      sym[best] = 257 + bestRank;
      System.arraycopy(sym, best + 2, sym, best + 1, len - best - 2);
      len--;
    }
    int[] out = java.util.Arrays.copyOf(sym, len);
    if (cache.size() < 1 << 16) {
      cache.put(piece, out);
    }
    return out;
  }

  private static int byteOf(char c) {
    ByteArrayOutputStream b = new ByteArrayOutputStream(1);
    ByteLevel.unspell(String.valueOf(c), b);
    return b.toByteArray()[0] & 0xff;
  }

  public String decode(int[] ids) {
    StringBuilder out = new StringBuilder();
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    for (int id : ids) {
      if (id == EOD_ID) {
        out.append(new String(bytes.toByteArray(), StandardCharsets.UTF_8)).append(EOD);
        bytes.reset();
      } else {
        ByteLevel.unspell(tokens[id], bytes);
      }
    }
    return out.append(new String(bytes.toByteArray(), StandardCharsets.UTF_8)).toString();
  }

  /** Hugging Face tokenizer.json: byte-level pre-tokenizer and decoder, BPE model, EOD as special token. */
  public String toJson() {
    ObjectNode root = JSON.createObjectNode();
    root.put("version", "1.0");
    root.putNull("truncation");
    root.putNull("padding");
    ObjectNode eod = root.putArray("added_tokens").addObject();
    eod.put("id", EOD_ID).put("content", EOD).put("single_word", false).put("lstrip", false)
        .put("rstrip", false).put("normalized", false).put("special", true);
    root.putNull("normalizer");
    ObjectNode pre = root.putObject("pre_tokenizer");
    pre.put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true).put("use_regex", true);
    root.putNull("post_processor");
    ObjectNode dec = root.putObject("decoder");
    dec.put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true).put("use_regex", true);
    ObjectNode model = root.putObject("model");
    model.put("type", "BPE").putNull("dropout").putNull("unk_token").putNull("continuing_subword_prefix")
        .putNull("end_of_word_suffix").put("fuse_unk", false).put("byte_fallback", false);
    ObjectNode vocab = model.putObject("vocab");
    for (int i = 0; i < tokens.length; i++) {
      vocab.put(tokens[i], i);
    }
    ArrayNode merges = model.putArray("merges");
    List<int[]> m = merges();
    for (int[] pair : m) {
      merges.add(tokens[pair[0]] + " " + tokens[pair[1]]);
    }
    try {
      return JSON.writeValueAsString(root);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The merges in rank order, as id pairs. */
  public List<int[]> merges() {
    int[][] byRank = new int[tokens.length - 257][];
    ranks.forEach((k, r) -> byRank[r] = new int[] {(int) (k >>> 32), (int) (long) k});
    return List.of(byRank);
  }

  /** Reads what {@link #toJson} wrote. */
  public static BpeTokenizer fromJson(String json, String source) {
    try {
      JsonNode model = JSON.readTree(json).get("model");
      if (model == null || !"BPE".equals(model.path("type").asText())) {
        throw new IllegalArgumentException(source + ": not a BPE tokenizer.json");
      }
      Map<String, Integer> vocab = new HashMap<>();
      model.get("vocab").fields().forEachRemaining(e -> vocab.put(e.getKey(), e.getValue().asInt()));
      List<int[]> merges = new ArrayList<>();
      for (JsonNode m : model.get("merges")) {
        String[] ab = m.asText().split(" ", 2);
        merges.add(new int[] {vocab.get(ab[0]), vocab.get(ab[1])});
      }
      BpeTokenizer t = new BpeTokenizer(merges);
      for (int i = 0; i < t.tokens.length; i++) {
        if (!Integer.valueOf(i).equals(vocab.get(t.tokens[i]))) {
          throw new IllegalArgumentException(source + ": vocabulary is not in this project's layout at id " + i);
        }
      }
      return t;
    } catch (IOException e) {
      throw new IllegalArgumentException(source + ": not valid JSON: " + e.getMessage(), e);
    }
  }
}

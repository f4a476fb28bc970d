package io.moespark.prep.stage;

import io.moespark.ops.text.HfTokenizer;
import io.moespark.prep.bpe.BpeTokenizer;
import java.io.Serializable;
import java.util.Arrays;

/**
 * How documents become token ids on the executors: the project's own byte-level BPE, or an existing
 * tokenizer run by Hugging Face's tokenizers library. Each document's ids end with the end-of-text token.
 */
public final class Encoders {
  private Encoders() {}

  /** Shipped to the executors; opened once per partition. */
  public interface Encoder extends Serializable {
    Session open();
  }

  /** One partition's encoding. */
  public interface Session extends AutoCloseable {
    /** The ids of each document, its end-of-text token last. */
    int[][] encode(String[] docs);

    @Override
    void close();
  }

  /** The project's BPE: its ids, then {@link BpeTokenizer#EOD_ID}. */
  public static Encoder project(BpeTokenizer tokenizer) {
    return () -> new Session() {
      @Override
      public int[][] encode(String[] docs) {
        int[][] out = new int[docs.length][];
        for (int i = 0; i < docs.length; i++) {
          int[] ids = tokenizer.encode(docs[i]);
          out[i] = Arrays.copyOf(ids, ids.length + 1);
          out[i][ids.length] = BpeTokenizer.EOD_ID;
        }
        return out;
      }

      @Override
      public void close() {}
    };
  }

  /**
   * A Hugging Face tokenizer from the text of its files (the driver read them; {@code config} may be null):
   * transformers' {@code tokenizer(text)} ids (the post-processor's special tokens included), then its
   * eos_token unless the post-processor already ended the document with it.
   */
  public static Encoder huggingFace(String tokenizerJson, String config, String source) {
    return () -> {
      HfTokenizer t = HfTokenizer.fromJson(tokenizerJson, config, source);
      int eos = t.specials().eosId();
      return new Session() {
        @Override
        public int[][] encode(String[] docs) {
          int[][] ids = t.encodeBatch(docs);
          for (int i = 0; i < ids.length; i++) {
            int n = ids[i].length;
            if (n == 0 || ids[i][n - 1] != eos) {
              ids[i] = Arrays.copyOf(ids[i], n + 1);
              ids[i][n] = eos;
            }
          }
          return ids;
        }

        @Override
        public void close() {
          t.close();
        }
      };
    };
  }
}

package io.moespark.prep.bpe;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.count;
import static org.apache.spark.sql.functions.explode;
import static org.apache.spark.sql.functions.sum;
import static org.apache.spark.sql.functions.udf;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.types.DataTypes;

/**
 * Trains byte-level BPE merges with Spark. Word counting is an aggregation over the documents; each round
 * counts adjacent symbol pairs over the distributed word table (another aggregation), takes up to
 * {@link #MERGES_PER_ROUND} of the most frequent pairs whose occurrences cannot overlap (no pair's right
 * symbol is another's left, so merging one leaves the others' counts exact), and rewrites the word table. Exact one-merge-at-a-time BPE would need one Spark job per
 * merge; the rounds keep it to one per 64. A merge whose result spells an existing token is skipped so
 * that token strings stay unique. Words are stored as their symbols joined by spaces (byte-level symbols
 * never contain a space).
 */
public final class BpeTrainer {
  public static final int MERGES_PER_ROUND = 64;

  private static final UserDefinedFunction WORDS = udf((UDF1<String, List<String>>) BpeTrainer::words,
      DataTypes.createArrayType(DataTypes.StringType));
  private static final UserDefinedFunction PAIRS = udf((UDF1<String, List<String>>) BpeTrainer::pairs,
      DataTypes.createArrayType(DataTypes.StringType));

  private BpeTrainer() {}

  /** Learns merges from the {@code text} column until the vocabulary (EOD + 256 bytes + merges) is full. */
  public static BpeTokenizer train(Dataset<Row> docs, int vocabSize, Consumer<String> log) {
    Map<String, Integer> ids = new HashMap<>();
    for (int b = 0; b < 256; b++) {
      ids.put(String.valueOf(ByteLevel.charOf(b)), 1 + b);
    }
    List<int[]> merges = new ArrayList<>();
    Dataset<Row> words = docs.select(explode(WORDS.apply(col("text"))).as("w")).groupBy("w")
        .agg(count("*").as("n")).where(col("w").contains(" ")).localCheckpoint();
    int rounds = 0;
    while (257 + merges.size() < vocabSize) {
      int room = vocabSize - 257 - merges.size();
      List<Row> top = words.select(explode(PAIRS.apply(col("w"))).as("p"), col("n")).groupBy("p")
          .agg(sum("n").as("c")).orderBy(col("c").desc(), col("p").asc()).limit(4 * MERGES_PER_ROUND).collectAsList();
      List<String[]> round = new ArrayList<>();
      Set<String> lefts = new HashSet<>(), rights = new HashSet<>();
      for (Row r : top) {
        if (r.getLong(1) < 2 || round.size() == Math.min(room, MERGES_PER_ROUND)) {
          break;
        }
        String[] ab = r.getString(0).split(" ");
        if (rights.contains(ab[0]) || lefts.contains(ab[1]) || ab[0].equals(ab[1]) && !round.isEmpty()
            || ids.containsKey(ab[0] + ab[1])) {
          continue;
        }
        lefts.add(ab[0]);
        rights.add(ab[1]);
        round.add(ab);
      }
      if (round.isEmpty()) {
        break;
      }
      for (String[] ab : round) {
        merges.add(new int[] {ids.get(ab[0]), ids.get(ab[1])});
        ids.put(ab[0] + ab[1], 256 + merges.size());
      }
      UserDefinedFunction apply = udf((UDF1<String, String>) w -> applyMerges(w, round), DataTypes.StringType);
      Dataset<Row> next = words.withColumn("w", apply.apply(col("w"))).where(col("w").contains(" ")).localCheckpoint();
      words = next;
      rounds++;
    }
    log.accept("bpe: " + merges.size() + " merges in " + rounds + " rounds, vocabulary " + (257 + merges.size()));
    return new BpeTokenizer(merges);
  }

  /** Pre-tokens of a document, each spelled as byte-level symbols joined by spaces. */
  static List<String> words(String text) {
    List<String> out = new ArrayList<>();
    for (String piece : ByteLevel.pretokenize(text)) {
      StringBuilder b = new StringBuilder(piece.length() * 2);
      for (int i = 0; i < piece.length(); i++) {
        if (i > 0) {
          b.append(' ');
        }
        b.append(piece.charAt(i));
      }
      out.add(b.toString());
    }
    return out;
  }

  /** Adjacent symbol pairs of a word, one entry per occurrence, as "left right". */
  static List<String> pairs(String word) {
    String[] s = word.split(" ");
    List<String> out = new ArrayList<>(s.length);
    for (int i = 0; i + 1 < s.length; i++) {
      out.add(s[i] + " " + s[i + 1]);
    }
    return out;
  }

  /** Merges, left to right, every occurrence of each pair (occurrences of one round's pairs never overlap). */
  static String applyMerges(String word, List<String[]> round) {
    List<String> s = new ArrayList<>(List.of(word.split(" ")));
    for (String[] ab : round) {
      for (int i = 0; i + 1 < s.size(); i++) {
        if (s.get(i).equals(ab[0]) && s.get(i + 1).equals(ab[1])) {
          s.set(i, ab[0] + ab[1]);
          s.remove(i + 1);
        }
      }
    }
    return String.join(" ", s);
  }
}

package io.moespark.prep.stage;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.length;
import static org.apache.spark.sql.functions.udf;

import java.text.Normalizer;
import java.util.HashSet;
import java.util.Set;
import java.util.regex.Pattern;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.types.DataTypes;

/** Normalisation and quality filters, as DataFrame steps over (source, text). */
public final class Clean {
  private static final Pattern HSPACE = Pattern.compile("[\\t\\x0B\\f\\u00A0 ]+");
  private static final Pattern TRAILING = Pattern.compile(" +\\n");
  private static final Pattern BLANKS = Pattern.compile("\\n{3,}");

  static final UserDefinedFunction NORMALIZE = udf((UDF1<String, String>) Clean::normalize, DataTypes.StringType);
  static final UserDefinedFunction LETTER_FRACTION =
      udf((UDF1<String, Double>) Clean::letterFraction, DataTypes.DoubleType);
  static final UserDefinedFunction REPEATED_LINES =
      udf((UDF1<String, Double>) Clean::repeatedLineRatio, DataTypes.DoubleType);

  private Clean() {}

  /** Unicode NFC, \r\n and \r to \n, runs of horizontal space to one space, at most one blank line, trimmed. */
  public static String normalize(String s) {
    String t = Normalizer.normalize(s, Normalizer.Form.NFC).replace("\r\n", "\n").replace('\r', '\n');
    t = HSPACE.matcher(t).replaceAll(" ");
    t = TRAILING.matcher(t).replaceAll("\n");
    t = BLANKS.matcher(t).replaceAll("\n\n");
    return t.strip();
  }

  /** Letters (any script) over code points. */
  public static Double letterFraction(String s) {
    long letters = s.codePoints().filter(Character::isLetter).count(), all = s.codePoints().count();
    return all == 0 ? 0.0 : (double) letters / all;
  }

  /** Fraction of non-empty lines that repeat an earlier line of the same document. */
  public static Double repeatedLineRatio(String s) {
    Set<String> seen = new HashSet<>();
    int lines = 0, repeated = 0;
    for (String line : s.split("\n")) {
      String l = line.strip();
      if (!l.isEmpty()) {
        lines++;
        if (!seen.add(l)) {
          repeated++;
        }
      }
    }
    return lines == 0 ? 0.0 : (double) repeated / lines;
  }

  public static Dataset<Row> normalizeAll(Dataset<Row> docs) {
    return docs.withColumn("text", NORMALIZE.apply(col("text")));
  }

  public static Dataset<Row> filter(Dataset<Row> docs, int minChars, int maxChars, double minLetters,
      double maxRepeated) {
    return docs.where(length(col("text")).between(minChars, maxChars))
        .where(LETTER_FRACTION.apply(col("text")).geq(minLetters))
        .where(REPEATED_LINES.apply(col("text")).leq(maxRepeated));
  }
}

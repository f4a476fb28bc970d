package io.moespark.prep;

import java.util.ArrayList;
import java.util.List;
import java.net.URL;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.MutableURLClassLoader;

/**
 * {@code moe-prep --input PATH... --output DIR [--vocab-size N | --tokenizer PATH] [--seq-len T] [--val-fraction F]
 * [--format F] [--text-field NAME] [--shards N] [--overwrite] [--master URL]}. In-process on local[*]
 * unless a master is given; under spark-submit the submitted master is used.
 */
public final class PrepMain {
  private static final String USAGE = "moe-prep --input PATH... --output DIR [--vocab-size N | --tokenizer PATH] "
      + "[--seq-len T] "
      + "[--val-fraction F] [--format auto|text|json|csv|parquet] [--text-field NAME] [--shards N] [--overwrite] "
      + "[--master URL]";

  private PrepMain() {}

  public static void main(String[] argv) {
    if (java.util.Arrays.asList(argv).contains("--help") || java.util.Arrays.asList(argv).contains("-h")) {
      System.out.println("usage: " + USAGE);
      return;
    }
    try {
      PrepOptions o = parse(argv);
      SparkSession.Builder b = SparkSession.builder().appName("moe-prep");
      if (System.getProperty("spark.master") == null) {
        // In-process: a handful of shuffle partitions suits one machine (200 cost seconds per shuffle).
        b.master(o.master()).config("spark.sql.shuffle.partitions", 8);
        // As spark-submit does: plugins that add jars at run time (the RAPIDS shims) need a mutable loader.
        Thread.currentThread().setContextClassLoader(
            new MutableURLClassLoader(new URL[0], Thread.currentThread().getContextClassLoader()));
      }
      SparkSession spark = b.getOrCreate();
      spark.sparkContext().setLogLevel("WARN");
      try {
        var m = new PrepJob(spark, o, System.out::println).run();
        System.out.println("wrote " + o.output() + ": vocabulary " + m.get("vocab_size") + ", train rows "
            + m.get("splits").get("train").get("rows") + ", val rows " + m.get("splits").get("val").get("rows"));
      } finally {
        spark.stop();
      }
    } catch (PrepException e) {
      System.err.println("moe-prep: " + e.getMessage());
      System.exit(2);
    } catch (Exception e) {
      System.err.println("moe-prep: " + e);
      System.exit(1);
    }
  }

  static PrepOptions parse(String[] a) {
    List<String> inputs = new ArrayList<>();
    String output = null;
    PrepOptions d = PrepOptions.defaults(List.of(), null);
    int vocab = d.vocabSize(), seq = d.seqLen(), shards = d.shards();
    double val = d.valFraction();
    String format = d.format(), field = d.textField(), master = d.master();
    boolean overwrite = false;
    String tokenizer = null;
    boolean vocabGiven = false;
    for (int i = 0; i < a.length; i++) {
      switch (a[i]) {
        case "--input" -> {
          inputs.add(value(a, i));
          while (i + 2 < a.length && !a[i + 2].startsWith("--")) {
            inputs.add(a[++i + 1]);
          }
          i++;
        }
        case "--output" -> output = value(a, i++);
        case "--vocab-size" -> {
          vocab = integer(a, i++);
          vocabGiven = true;
        }
        case "--tokenizer" -> tokenizer = value(a, i++);
        case "--seq-len" -> seq = integer(a, i++);
        case "--shards" -> shards = integer(a, i++);
        case "--val-fraction" -> val = number(a, i++);
        case "--format" -> format = value(a, i++);
        case "--text-field" -> field = value(a, i++);
        case "--master" -> master = value(a, i++);
        case "--overwrite" -> overwrite = true;
        default -> throw new PrepException("unknown option '" + a[i] + "' (known: --input, --output, --vocab-size, "
            + "--tokenizer, --seq-len, --val-fraction, --format, --text-field, --shards, --overwrite, --master)");
      }
    }
    if (vocabGiven && tokenizer != null) {
      throw new PrepException("--vocab-size: not used with --tokenizer (the tokenizer's vocabulary is used as it is)");
    }
    return new PrepOptions(inputs, output, vocab, seq, val, format, field, d.minChars(), d.maxChars(),
        d.minLetterFraction(), d.maxRepeatedLineRatio(), d.nearDupJaccard(), shards, overwrite, master, tokenizer)
        .validate();
  }

  private static String value(String[] a, int i) {
    if (i + 1 >= a.length || a[i + 1].startsWith("--")) {
      throw new PrepException(a[i] + ": needs a value");
    }
    return a[i + 1];
  }

  private static int integer(String[] a, int i) {
    try {
      return Integer.parseInt(value(a, i));
    } catch (NumberFormatException e) {
      throw new PrepException(a[i] + ": expected an integer, got '" + a[i + 1] + "'");
    }
  }

  private static double number(String[] a, int i) {
    try {
      return Double.parseDouble(value(a, i));
    } catch (NumberFormatException e) {
      throw new PrepException(a[i] + ": expected a number, got '" + a[i + 1] + "'");
    }
  }
}

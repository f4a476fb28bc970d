package io.moespark.prep.stage;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.explode;
import static org.apache.spark.sql.functions.input_file_name;
import static org.apache.spark.sql.functions.split;

import io.moespark.prep.PrepException;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * Reads inputs (files or directories, any Hadoop path) into documents (source, text). Plain text is cut
 * into documents at blank lines; JSON lines, CSV (with a header) and Parquet take one document per record
 * from the text field.
 */
public final class Ingest {
  private static final Set<String> TEXT = Set.of("txt", "text", "md");
  private static final Set<String> JSON = Set.of("json", "jsonl", "ndjson");

  private Ingest() {}

  public static Dataset<Row> read(SparkSession spark, List<String> inputs, String format, String textField) {
    Dataset<Row> all = null;
    for (String input : inputs) {
      requireExists(spark, input);
      Dataset<Row> docs = readOne(spark, input, format.equals("auto") ? detect(spark, input) : format, textField);
      all = all == null ? docs : all.unionByName(docs);
    }
    return all;
  }

  private static Dataset<Row> readOne(SparkSession spark, String input, String format, String field) {
    Dataset<Row> raw;
    switch (format) {
      case "text" -> {
        return spark.read().option("wholetext", true).text(input)
            .select(input_file_name().as("source"), explode(split(col("value"), "\\n[ \\t]*\\n")).as("text"));
      }
      case "json" -> raw = spark.read().json(input);
      case "csv" -> raw = spark.read().option("header", true).option("multiLine", true).option("escape", "\"")
          .csv(input);
      case "parquet" -> raw = spark.read().parquet(input);
      default -> throw new PrepException("--format: unknown format '" + format + "'");
    }
    if (!Arrays.asList(raw.columns()).contains(field)) {
      throw new PrepException("--input " + input + ": " + format + " records have no field '" + field
          + "' (fields: " + String.join(", ", raw.columns()) + "); choose one with --text-field");
    }
    return raw.select(input_file_name().as("source"), col(field).cast("string").as("text"))
        .where(col("text").isNotNull());
  }

  private static void requireExists(SparkSession spark, String input) {
    Path path = new Path(input);
    try {
      if (!path.getFileSystem(spark.sparkContext().hadoopConfiguration()).exists(path)) {
        throw new PrepException("--input " + input + ": does not exist");
      }
    } catch (IOException e) {
      throw new PrepException("--input " + input + ": cannot access: " + e.getMessage(), e);
    }
  }

  /** The format of a file by its extension, or of a directory by the extension its data files share. */
  static String detect(SparkSession spark, String input) {
    Path path = new Path(input);
    try {
      FileSystem fs = path.getFileSystem(spark.sparkContext().hadoopConfiguration());
      List<String> names;
      if (fs.getFileStatus(path).isDirectory()) {
        names = Arrays.stream(fs.listStatus(path)).filter(FileStatus::isFile).map(s -> s.getPath().getName())
            .filter(n -> !n.startsWith(".") && !n.startsWith("_")).collect(Collectors.toList());
        if (names.isEmpty()) {
          throw new PrepException("--input " + input + ": directory has no data files");
        }
      } else {
        names = List.of(path.getName());
      }
      Set<String> formats = names.stream().map(Ingest::byExtension).collect(Collectors.toSet());
      if (formats.size() != 1) {
        throw new PrepException("--input " + input + ": mixed file kinds " + formats + "; give one kind per input");
      }
      return formats.iterator().next();
    } catch (IOException e) {
      throw new PrepException("--input " + input + ": cannot list: " + e.getMessage(), e);
    }
  }

  private static String byExtension(String name) {
    String n = name.toLowerCase(Locale.ROOT);
    String ext = n.endsWith(".gz") ? n.substring(0, n.length() - 3) : n;
    ext = ext.contains(".") ? ext.substring(ext.lastIndexOf('.') + 1) : "";
    if (TEXT.contains(ext)) {
      return "text";
    }
    if (JSON.contains(ext)) {
      return "json";
    }
    if (ext.equals("csv")) {
      return "csv";
    }
    if (ext.equals("parquet")) {
      return "parquet";
    }
    throw new PrepException("unknown input format for '" + name + "': expected .txt/.text/.md, .json/.jsonl/.ndjson, "
        + ".csv or .parquet (optionally .gz), or --format");
  }
}

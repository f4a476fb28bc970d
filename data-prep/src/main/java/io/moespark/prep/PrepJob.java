package io.moespark.prep;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.text.HfTokenizer;
import io.moespark.prep.bpe.BpeTokenizer;
import io.moespark.prep.bpe.BpeTrainer;
import io.moespark.prep.stage.Clean;
import io.moespark.prep.stage.Dedup;
import io.moespark.prep.stage.Encoders;
import io.moespark.prep.stage.Ingest;
import io.moespark.prep.stage.Pack;
import io.moespark.prep.stage.Split;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.UUID;
import java.util.function.Consumer;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * The preparation pipeline: ingest -> normalise -> filter -> exact dedup -> near dedup -> split -> BPE (or
 * an existing tokenizer) -> tokenize and pack -> Parquet shards, tokenizer.json (with the tokenizer's
 * tokenizer_config.json when it has one) and manifest.json. Everything is written under a
 * temporary sibling of the output and renamed into place at the end; an existing output is replaced only
 * with {@code overwrite}, and only after the new one is complete.
 */
public final class PrepJob {
  public static final String MANIFEST = "manifest.json";
  public static final String TOKENIZER = "tokenizer.json";
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private final SparkSession spark;
  private final PrepOptions o;
  private final Consumer<String> log;
  private final ObjectNode manifest = JSON.createObjectNode();
  private final ArrayNode stages = JSON.createArrayNode();

  public PrepJob(SparkSession spark, PrepOptions options, Consumer<String> log) {
    this.spark = spark;
    this.o = options.validate();
    this.log = log;
  }

  /** Runs the pipeline and returns the manifest that was written. */
  public ObjectNode run() throws IOException {
    Path out = new Path(o.output());
    FileSystem fs = out.getFileSystem(spark.sparkContext().hadoopConfiguration());
    if (fs.exists(out) && !o.overwrite()) {
      throw new PrepException("--output " + o.output() + ": already exists; pass --overwrite to replace it");
    }
    Path tmp = new Path(out.getParent(), "." + out.getName() + ".tmp-" + UUID.randomUUID());
    try {
      write(fs, tmp);
      commit(fs, tmp, out);
      return manifest;
    } finally {
      if (fs.exists(tmp)) {
        fs.delete(tmp, true);
      }
    }
  }

  private void write(FileSystem fs, Path tmp) throws IOException {
    long inputBytes = 0;
    for (String in : o.inputs()) {
      Path p = new Path(in);
      FileSystem ifs = p.getFileSystem(spark.sparkContext().hadoopConfiguration());
      inputBytes += ifs.exists(p) ? ifs.getContentSummary(p).getLength() : 0;
    }
    long t0 = System.nanoTime();
    // An existing tokenizer is read and checked first: a bad one fails before any Spark work.
    Tokenizing given = o.tokenizer() == null ? null : existing(o.tokenizer());
    if (given != null) {
      record("tokenizer", given.specials().vocabSize(), t0);
    }
    Dataset<Row> docs = stage("ingest", Ingest.read(spark, o.inputs(), o.format(), o.textField()));
    docs = stage("normalize", Clean.normalizeAll(docs));
    docs = stage("filter", Clean.filter(docs, o.minChars(), o.maxChars(), o.minLetterFraction(),
        o.maxRepeatedLineRatio()));
    if (lastRows() == 0) {
      throw new PrepException("no documents left after the filters (" + summary() + "); relax --min-chars, "
          + "--min-letter-fraction or --max-repeated-line-ratio");
    }
    docs = stage("exact_dedup", Dedup.exact(docs));
    docs = stage("near_dedup", Dedup.near(docs, o.nearDupJaccard()));
    Dataset<Row> train = stage("split_train", Split.train(docs, o.valFraction()));
    if (lastRows() == 0) {
      throw new PrepException("the train split is empty (" + summary() + "); lower --val-fraction");
    }
    Dataset<Row> val = stage("split_val", Split.val(docs, o.valFraction()));
    Tokenizing tok = given;
    if (tok == null) {
      long t1 = System.nanoTime();
      tok = trainBpe(train);
      record("bpe", tok.specials().vocabSize(), t1);
    }
    writeText(fs, new Path(tmp, TOKENIZER), tok.json());
    if (tok.config() != null) {
      writeText(fs, new Path(tmp, HfTokenizer.CONFIG_FILE), tok.config());
    }
    ObjectNode splits = manifest.putObject("splits");
    packSplit(fs, tmp, "train", train, tok.encoder(), splits);
    packSplit(fs, tmp, "val", val, tok.encoder(), splits);
    manifest.put("format_version", 1);
    manifest.put("vocab_size", tok.specials().vocabSize());
    manifest.put("seq_len", o.seqLen());
    manifest.put("eod_id", tok.specials().eosId());
    if (tok.specials().padId() >= 0) {
      manifest.put("pad_id", tok.specials().padId());
    }
    manifest.put("tokenizer", TOKENIZER);
    manifest.put("tokenizer_sha256", sha256(tok.json()));
    manifest.put("tokenizer_kind", tok.specials().kind());
    manifest.put("encoder", tok.encoderName());
    manifest.put("input_bytes", inputBytes);
    manifest.set("stages", stages);
    manifest.set("options", JSON.valueToTree(o));
    writeText(fs, new Path(tmp, MANIFEST), JSON.writeValueAsString(manifest));
  }

  /**
   * The tokenizer of the run: its files' text (written beside the data, byte for byte, so that a model with
   * the same tokenizer.json is recognised by --init-from), what they say, and the encoder the executors run.
   */
  private record Tokenizing(String json, String config, HfTokenizer.Specials specials, Encoders.Encoder encoder,
      String encoderName) {}

  private Tokenizing trainBpe(Dataset<Row> train) {
    BpeTokenizer bpe = BpeTrainer.train(train, o.vocabSize(), log);
    String json = bpe.toJson();
    return new Tokenizing(json, null, HfTokenizer.specials(json, null, TOKENIZER), Encoders.project(bpe),
        "project-bpe");
  }

  /**
   * An existing tokenizer ({@code --tokenizer}, any Hadoop path): run by Hugging Face's library on the
   * executors, except a tokenizer this project wrote itself (its own BPE reads it back to the same bytes),
   * which the project's encoder runs: BpeTokenizerTest shows it gives the library's ids, several times faster.
   */
  private Tokenizing existing(String given) throws IOException {
    Path p = new Path(given);
    FileSystem fs = p.getFileSystem(spark.sparkContext().hadoopConfiguration());
    if (fs.isDirectory(p)) {
      p = new Path(p, TOKENIZER);
    }
    if (!fs.exists(p)) {
      throw new PrepException("--tokenizer " + given + ": expected a tokenizer.json or a model directory holding "
          + "one; " + p + " does not exist");
    }
    String json = readText(fs, p);
    Path c = new Path(p.getParent(), HfTokenizer.CONFIG_FILE);
    String config = fs.exists(c) ? readText(fs, c) : null;
    HfTokenizer.Specials specials;
    try {
      specials = HfTokenizer.specials(json, config, p.toString());
      HfTokenizer.fromJson(json, config, p.toString()).close(); // refused here, not on an executor
    } catch (io.moespark.ops.config.ConfigException e) {
      throw new PrepException("--tokenizer: " + e.getMessage());
    }
    BpeTokenizer own = projectBpe(json);
    log.accept("tokenizer    " + p + ": " + specials.kind() + ", " + specials.vocabSize() + " ids, end of text "
        + specials.eosId() + (own != null ? " (this project's BPE: its own encoder)" : ""));
    return own != null && specials.eosId() == BpeTokenizer.EOD_ID
        ? new Tokenizing(json, config, specials, Encoders.project(own), "project-bpe")
        : new Tokenizing(json, config, specials, Encoders.huggingFace(json, config, p.toString()),
            "huggingface-tokenizers");
  }

  /** The project's BPE when {@code json} is exactly what it writes, else null. */
  private static BpeTokenizer projectBpe(String json) {
    try {
      BpeTokenizer t = BpeTokenizer.fromJson(json, TOKENIZER);
      return t.toJson().equals(json) ? t : null;
    } catch (RuntimeException e) {
      return null;
    }
  }

  private static String readText(FileSystem fs, Path p) throws IOException {
    try (java.io.InputStream in = fs.open(p)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  private void packSplit(FileSystem fs, Path tmp, String split, Dataset<Row> docs, Encoders.Encoder tok,
      ObjectNode splits) throws IOException {
    long t0 = System.nanoTime();
    Pack.Counters c = new Pack.Counters(spark.sparkContext().longAccumulator(split + " tokens"),
        spark.sparkContext().longAccumulator(split + " tokens dropped"));
    String dir = new Path(tmp, split).toString();
    Pack.pack(spark, docs, tok, o.seqLen(), o.shards(), c).write().parquet(dir);
    long rows = spark.read().parquet(dir).count();
    record("pack_" + split, rows, t0);
    ObjectNode s = splits.putObject(split);
    s.put("path", split);
    s.put("documents", docs.count());
    s.put("rows", rows);
    s.put("tokens", rows * (o.seqLen() + 1));
    s.put("tokens_before_packing", c.tokens().value());
    s.put("tokens_dropped", c.dropped().value());
    // Every shard's SHA-256, checked by the reader: object stores keep no .crc side files.
    ObjectNode files = s.putObject("files");
    for (org.apache.hadoop.fs.FileStatus f : fs.listStatus(new Path(dir), p -> p.getName().endsWith(".parquet"))) {
      files.put(f.getPath().getName(), sha256(fs, f.getPath()));
    }
  }

  static String sha256(FileSystem fs, Path file) throws IOException {
    try (java.io.InputStream in = fs.open(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private Dataset<Row> stage(String name, Dataset<Row> ds) {
    long t0 = System.nanoTime();
    Dataset<Row> cached = ds.cache();
    long rows = cached.count();
    record(name, rows, t0);
    return cached;
  }

  private void record(String name, long rows, long t0) {
    double seconds = (System.nanoTime() - t0) / 1e9;
    ObjectNode s = stages.addObject();
    s.put("stage", name);
    s.put("rows", rows);
    s.put("seconds", Math.round(seconds * 1000) / 1000.0);
    log.accept(String.format(java.util.Locale.ROOT, "%-12s %,10d rows  %7.2f s", name, rows, seconds));
  }

  private long lastRows() {
    return stages.get(stages.size() - 1).get("rows").asLong();
  }

  private String summary() {
    StringBuilder b = new StringBuilder();
    stages.forEach(s -> b.append(b.length() == 0 ? "" : ", ").append(s.get("stage").asText()).append(' ')
        .append(s.get("rows").asLong()));
    return b.toString();
  }

  /** Renames tmp to out; an existing out is moved aside first and deleted only after. */
  private static void commit(FileSystem fs, Path tmp, Path out) throws IOException {
    Path old = null;
    if (fs.exists(out)) {
      old = new Path(out.getParent(), "." + out.getName() + ".old-" + UUID.randomUUID());
      if (!fs.rename(out, old)) {
        throw new IOException("cannot move the existing output " + out + " aside");
      }
    }
    if (!fs.rename(tmp, out)) {
      if (old != null) {
        fs.rename(old, out);
      }
      throw new IOException("cannot rename " + tmp + " to " + out);
    }
    if (old != null) {
      fs.delete(old, true);
    }
  }

  private static void writeText(FileSystem fs, Path p, String text) throws IOException {
    try (OutputStream os = fs.create(p, false)) {
      os.write(text.getBytes(StandardCharsets.UTF_8));
    }
  }

  static String sha256(String s) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}

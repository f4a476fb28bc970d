package io.moespark.job.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.config.ConfigException;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.example.GroupReadSupport;

/**
 * data-prep's output directory (any Hadoop path): {@code manifest.json}, {@code tokenizer.json} and one
 * Parquet directory per split whose rows are {@code tokens array<int>} windows of seq_len + 1. A split
 * reads as one token stream: its part files in name order, rows in file order, so the stream (and every
 * batch drawn from it) is the same on every executor and in every run. Read with parquet-hadoop
 * directly, so executors load their data inside a task without a SparkSession.
 */
public final class PreparedData {
  public static final String MANIFEST = "manifest.json";
  public static final String TOKENIZER = "tokenizer.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path dir;
  private final FileSystem fs;
  private final JsonNode manifest;

  private PreparedData(Path dir, FileSystem fs, JsonNode manifest) {
    this.dir = dir;
    this.fs = fs;
    this.manifest = manifest;
  }

  /** True when {@code path} is a directory holding a data-prep manifest. */
  public static boolean isPrepared(String path, Configuration conf) {
    try {
      Path p = new Path(path);
      FileSystem fs = p.getFileSystem(conf);
      return fs.isDirectory(p) && fs.exists(new Path(p, MANIFEST));
    } catch (IOException | IllegalArgumentException e) {
      return false;
    }
  }

  /** @param what how the user named the directory (an option or config key), for error messages */
  public static PreparedData open(String path, Configuration conf, String what) {
    Path dir = new Path(path);
    try {
      FileSystem fs = dir.getFileSystem(conf);
      Path m = new Path(dir, MANIFEST);
      if (!fs.exists(m)) {
        throw new ConfigException(what + ": " + path + " is not a prepared data directory (no " + MANIFEST
            + "; run bin/moe-prep first)");
      }
      try (InputStream in = fs.open(m)) {
        return new PreparedData(dir, fs, JSON.readTree(in));
      }
    } catch (IOException e) {
      throw new ConfigException(what + ": cannot read " + path + ": " + e.getMessage(), e);
    }
  }

  public int vocabSize() {
    return manifest.path("vocab_size").asInt();
  }

  /** Throws naming {@code what} when the tokenizer has more tokens than a model of {@code vocab} can embed. */
  public void checkVocab(int vocab, String what) {
    if (vocabSize() > vocab) {
      throw new ConfigException(what + ": its tokenizer has " + vocabSize() + " tokens, more than the model's "
          + "vocab_size = " + vocab);
    }
  }

  public List<String> splits() {
    List<String> names = new ArrayList<>();
    manifest.path("splits").fieldNames().forEachRemaining(names::add);
    return names;
  }

  public boolean hasSplit(String split) {
    return manifest.path("splits").has(split);
  }

  public Path tokenizer() {
    return new Path(dir, manifest.path("tokenizer").asText(TOKENIZER));
  }

  /**
   * Checks the split's shards against the SHA-256 the manifest lists (data prepared before manifests
   * listed them has none and is read as it is): the same set of files, each unchanged. Independent of
   * Hadoop's .crc side files, which object stores do not keep.
   */
  private void verify(JsonNode listed, FileStatus[] files, Path splitDir) throws IOException {
    if (listed.isMissingNode()) {
      return;
    }
    java.util.Set<String> names = new java.util.TreeSet<>();
    for (FileStatus f : files) {
      names.add(f.getPath().getName());
      JsonNode sum = listed.get(f.getPath().getName());
      if (sum == null) {
        throw new ConfigException(f.getPath() + " is not listed in " + new Path(dir, MANIFEST)
            + " (a shard added after preparation)");
      }
      if (!io.moespark.job.io.RunFiles.sha256(fs, f.getPath()).equals(sum.asText())) {
        throw new ConfigException(f.getPath() + ": checksum does not match " + new Path(dir, MANIFEST)
            + " (corrupt prepared data; prepare it again)");
      }
    }
    listed.fieldNames().forEachRemaining(n -> {
      if (!names.contains(n)) {
        throw new ConfigException(new Path(splitDir, n) + " is listed in " + MANIFEST + " but missing");
      }
    });
  }

  /**
   * Checks the split's shards against the manifest's checksums without reading their tokens: what the
   * driver does before any executor work, so that corrupt data is one error naming the file, never a
   * failed stage that the run would retry.
   */
  public void verify(String split) {
    JsonNode s = split(split);
    Path splitDir = new Path(dir, s.path("path").asText(split));
    try {
      verify(s.path("files"), shards(splitDir), splitDir);
    } catch (IOException e) {
      throw new ConfigException(splitDir + ": cannot read split '" + split + "': " + e.getMessage(), e);
    }
  }

  private JsonNode split(String split) {
    JsonNode s = manifest.path("splits").get(split);
    if (s == null) {
      throw new ConfigException(dir + ": no split '" + split + "' (the manifest has " + splits() + ")");
    }
    return s;
  }

  private FileStatus[] shards(Path splitDir) throws IOException {
    FileStatus[] files = fs.listStatus(splitDir, p -> p.getName().endsWith(".parquet"));
    Arrays.sort(files, (a, b) -> a.getPath().getName().compareTo(b.getPath().getName()));
    return files;
  }

  /** The split's windows concatenated into one stream. */
  public int[] read(String split) {
    JsonNode s = split(split);
    Path splitDir = new Path(dir, s.path("path").asText(split));
    try {
      FileStatus[] files = shards(splitDir);
      verify(s.path("files"), files, splitDir);
      long expected = s.path("tokens").asLong(-1);
      int[] out = new int[(int) Math.max(expected, 0)];
      int n = 0;
      for (FileStatus f : files) {
        try (ParquetReader<Group> r = ParquetReader.builder(new GroupReadSupport(), f.getPath())
            .withConf(fs.getConf()).build()) {
          for (Group row; (row = r.read()) != null; ) {
            Group list = row.getGroup("tokens", 0);
            int len = list.getFieldRepetitionCount("list");
            if (n + len > out.length) {
              out = Arrays.copyOf(out, Math.max(n + len, out.length * 2));
            }
            for (int i = 0; i < len; i++) {
              out[n++] = list.getGroup("list", i).getInteger("element", 0);
            }
          }
        }
      }
      if (expected >= 0 && n != expected) {
        throw new ConfigException(splitDir + ": " + n + " tokens, the manifest says " + expected
            + " (incomplete or modified prepared data)");
      }
      return n == out.length ? out : Arrays.copyOf(out, n);
    } catch (IOException | RuntimeException e) {
      if (e instanceof ConfigException c) {
        throw c;
      }
      throw new ConfigException(splitDir + ": cannot read split '" + split + "': " + e.getMessage(), e);
    }
  }
}

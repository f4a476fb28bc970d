package io.moespark.job.io;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;

/**
 * Files of a run directory on any Hadoop file system: checksummed writes and directories that appear
 * complete or not at all (written under a temporary sibling, then renamed).
 */
public final class RunFiles {
  private RunFiles() {}

  /** Writes into a stream the caller does not close. */
  public interface Writer {
    void write(OutputStream out) throws IOException;
  }

  /** Fills a temporary directory. */
  public interface DirWriter {
    void write(Path tmp) throws IOException;
  }

  /** A written file: its name within its directory, SHA-256 and size. */
  public record Written(String name, String sha256, long bytes) implements Serializable {}

  public static FileSystem fs(Path p, Configuration conf) throws IOException {
    FileSystem fs = p.getFileSystem(conf);
    // Locally, the raw file system: no .crc side files (manifests carry SHA-256) and append works.
    return fs instanceof LocalFileSystem local ? local.getRaw() : fs;
  }

  /** Creates (or replaces) {@code file} and returns its digest. */
  public static Written write(FileSystem fs, Path file, Writer writer) throws IOException {
    MessageDigest md = sha256();
    long bytes;
    try (FSDataOutputStream raw = fs.create(file, true); DigestOutputStream out = new DigestOutputStream(raw, md)) {
      writer.write(out);
      out.flush();
      bytes = raw.getPos();
    }
    return new Written(file.getName(), HexFormat.of().formatHex(md.digest()), bytes);
  }

  public static String sha256(FileSystem fs, Path file) throws IOException {
    MessageDigest md = sha256();
    try (InputStream in = fs.open(file)) {
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
    }
    return HexFormat.of().formatHex(md.digest());
  }

  /** Writes {@code file} atomically: into a temporary sibling, then renamed over it. */
  public static Written replace(FileSystem fs, Path file, Writer writer) throws IOException {
    Path tmp = tempSibling(file);
    Written w = write(fs, tmp, writer);
    commit(fs, tmp, file);
    return new Written(file.getName(), w.sha256(), w.bytes());
  }

  /** A fresh temporary sibling of {@code target}, hidden from listings by its leading underscore. */
  public static Path tempSibling(Path target) {
    return new Path(target.getParent(), "_tmp-" + target.getName() + "-" + UUID.randomUUID());
  }

  /** Removes the temporary siblings ({@link #tempSibling}) a killed writer left in {@code dir}; returns how many. */
  public static int removeTemporaries(FileSystem fs, Path dir) throws IOException {
    if (!fs.exists(dir)) {
      return 0;
    }
    FileStatus[] tmp = fs.listStatus(dir, p -> p.getName().startsWith("_tmp-"));
    for (FileStatus s : tmp) {
      fs.delete(s.getPath(), true);
    }
    return tmp.length;
  }

  /**
   * Writes a directory atomically: {@code writer} fills a temporary sibling, which then replaces
   * {@code target}. A failure leaves {@code target} as it was and removes the temporary directory.
   */
  public static void writeDir(FileSystem fs, Path target, DirWriter writer) throws IOException {
    Path tmp = tempSibling(target);
    fs.mkdirs(tmp);
    try {
      writer.write(tmp);
      commit(fs, tmp, target);
    } catch (IOException | RuntimeException e) {
      fs.delete(tmp, true);
      throw e;
    }
  }

  /** Renames a complete temporary directory onto {@code target}, replacing an existing one. */
  public static void commit(FileSystem fs, Path tmp, Path target) throws IOException {
    Path old = null;
    if (fs.exists(target)) {
      old = new Path(target.getParent(), "_old-" + target.getName() + "-" + UUID.randomUUID());
      rename(fs, target, old);
    }
    rename(fs, tmp, target);
    if (old != null) {
      fs.delete(old, true);
    }
  }

  private static void rename(FileSystem fs, Path from, Path to) throws IOException {
    if (!fs.rename(from, to)) {
      throw new IOException("cannot rename " + from + " to " + to);
    }
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * The Hadoop configuration an executor sees: defaults plus the application's spark.hadoop.* settings (the
   * driver uses it too, before Spark starts).
   */
  public static Configuration hadoopConf(SparkConf conf) {
    Configuration c = new Configuration();
    for (scala.Tuple2<String, String> kv : conf.getAllWithPrefix("spark.hadoop.")) {
      c.set(kv._1(), kv._2());
    }
    return c;
  }
}

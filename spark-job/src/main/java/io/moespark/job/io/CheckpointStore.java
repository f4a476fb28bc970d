package io.moespark.job.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.io.SafeTensors;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.Set;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.Tensor;

/**
 * Checkpoints of a run under {@code RUN/checkpoints/step-NNNNNNNN/}, on any Hadoop file system. The ranks
 * write their shards ({@link Checkpoint}'s format) into a temporary directory the driver opened; the
 * driver adds {@code state.json}, {@code config.json} and {@code manifest.json} (SHA-256 and size of every
 * file, and which tensors each shard holds), then renames the directory into place and keeps the newest
 * {@code checkpoint.keep}. A directory without a manifest is never read; a file whose checksum differs
 * from the manifest is refused by name.
 */
public final class CheckpointStore {
  public static final String DIR = "checkpoints";
  public static final String CONFIG = "config.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  /** A rank's shard: the file written and the tensors in it. */
  public record Shard(RunFiles.Written file, List<String> tensors) implements Serializable {}

  /** A committed checkpoint as ranks need it to load. */
  public record Stored(String dir, int step, String stateJson, String configJson, List<Shard> shards)
      implements Serializable {}

  private final Path root;
  private final FileSystem fs;
  private final int keep;

  public CheckpointStore(String runDir, int keep, Configuration conf) throws IOException {
    this.root = new Path(runDir, DIR);
    this.fs = RunFiles.fs(root, conf);
    this.keep = keep;
  }

  /** Opens the temporary directory the ranks write the checkpoint of {@code step} into. */
  public String begin(int step) throws IOException {
    Path tmp = RunFiles.tempSibling(stepDir(step));
    fs.mkdirs(tmp);
    return tmp.toString();
  }

  public void abort(String tmp) throws IOException {
    fs.delete(new Path(tmp), true);
  }

  /** Completes the checkpoint and makes it visible; returns its directory. */
  public String commit(String tmp, int step, ObjectNode state, String configJson, List<Shard> shards)
      throws IOException {
    Path dir = new Path(tmp);
    List<RunFiles.Written> files = new ArrayList<>();
    for (Shard s : shards) {
      files.add(s.file());
    }
    files.add(RunFiles.write(fs, new Path(dir, Checkpoint.STATE), out -> JSON.writeValue(out, state)));
    files.add(RunFiles.write(fs, new Path(dir, CONFIG), out -> out.write(configJson.getBytes(StandardCharsets.UTF_8))));
    ObjectNode manifest = JSON.createObjectNode();
    manifest.put("step", step);
    ObjectNode f = manifest.putObject("files");
    for (RunFiles.Written w : files) {
      f.putObject(w.name()).put("sha256", w.sha256()).put("bytes", w.bytes());
    }
    ObjectNode t = manifest.putObject("shards");
    for (Shard s : shards) {
      ArrayNode names = t.putArray(s.file().name());
      s.tensors().forEach(names::add);
    }
    RunFiles.write(fs, new Path(dir, Checkpoint.MANIFEST), out -> JSON.writerWithDefaultPrettyPrinter()
        .writeValue(out, manifest));
    Path target = stepDir(step);
    RunFiles.commit(fs, dir, target);
    prune();
    return target.toString();
  }

  /**
   * The newest committed checkpoint whose every file matches its manifest. A damaged newer one (a
   * corrupt shard, an unreadable manifest) is reported through {@code warn} and skipped, never deleted;
   * the run then continues from the one before, which the next checkpoint supersedes.
   */
  public Optional<Stored> latestIntact(Consumer<String> warn) throws IOException {
    List<Path> dirs = committed();
    for (int i = dirs.size() - 1; i >= 0; i--) {
      try {
        Stored s = read(dirs.get(i));
        for (Shard shard : s.shards()) {
          Path file = new Path(dirs.get(i), shard.file().name());
          if (!fs.exists(file) || !RunFiles.sha256(fs, file).equals(shard.file().sha256())) {
            throw new IOException(file + ": " + (fs.exists(file) ? "checksum does not match " : "listed in ")
                + Checkpoint.MANIFEST + (fs.exists(file) ? "" : " but missing"));
          }
        }
        return Optional.of(s);
      } catch (IOException | RuntimeException e) {
        warn.accept("warning: checkpoint " + dirs.get(i) + " is damaged (" + e.getMessage() + ")"
            + (i > 0 ? "; using the one before it" : ""));
      }
    }
    return Optional.empty();
  }

  /** Whether any checkpoint was committed (intact or not). */
  public boolean hasCommitted() throws IOException {
    return !committed().isEmpty();
  }

  /**
   * Removes the temporary directories of checkpoints that were never committed (a driver or rank killed
   * while writing); returns how many. Committed checkpoints are untouched.
   */
  public int removeUncommitted() throws IOException {
    return RunFiles.removeTemporaries(fs, root);
  }

  private Stored read(Path dir) throws IOException {
    JsonNode manifest = readJson(new Path(dir, Checkpoint.MANIFEST));
    if (manifest == null || !manifest.isObject() || !manifest.has("files")) {
      throw new IOException(new Path(dir, Checkpoint.MANIFEST) + " is empty or not a checkpoint manifest");
    }
    JsonNode files = manifest.path("files");
    String state = verifiedText(dir, Checkpoint.STATE, files);
    String config = verifiedText(dir, CONFIG, files);
    List<Shard> shards = new ArrayList<>();
    var it = manifest.path("shards").fields();
    while (it.hasNext()) {
      var e = it.next();
      JsonNode f = files.get(e.getKey());
      if (f == null) {
        throw new IOException(dir + ": " + Checkpoint.MANIFEST + " lists shard " + e.getKey() + " without a checksum");
      }
      List<String> tensors = new ArrayList<>();
      e.getValue().forEach(n -> tensors.add(n.asText()));
      shards.add(new Shard(new RunFiles.Written(e.getKey(), f.get("sha256").asText(), f.get("bytes").asLong()),
          tensors));
    }
    return new Stored(dir.toString(), manifest.path("step").asInt(), state, config, shards);
  }

  /**
   * Rank side: writes rank {@code rank}'s shard into the temporary directory {@code tmp}.
   */
  public static Shard writeShard(String tmp, int rank, Map<String, Tensor> tensors, Configuration conf)
      throws IOException {
    Path file = new Path(tmp, Checkpoint.shardFile(rank));
    RunFiles.Written w = RunFiles.write(RunFiles.fs(file, conf), file, out -> SafeTensors.write(tensors, Map.of(), out));
    return new Shard(w, List.copyOf(tensors.keySet()));
  }

  /**
   * Rank side: the tensors named in {@code needed} from the shards that hold any of them, each file
   * checked against the manifest before it is used, read onto {@code backend}.
   */
  public static Map<String, Tensor> readShards(Stored ckpt, Set<String> needed, Configuration conf, Backend backend)
      throws IOException {
    Map<String, Tensor> out = new HashMap<>();
    for (Shard s : ckpt.shards()) {
      if (s.tensors().stream().noneMatch(needed::contains)) {
        continue;
      }
      Path file = new Path(ckpt.dir(), s.file().name());
      FileSystem fs = RunFiles.fs(file, conf);
      if (!RunFiles.sha256(fs, file).equals(s.file().sha256())) {
        throw new IOException(file + ": checksum does not match " + Checkpoint.MANIFEST + " (corrupt checkpoint)");
      }
      try (InputStream in = fs.open(file)) {
        out.putAll(SafeTensors.read(in, file.toString(), backend, needed::contains));
      }
    }
    return out;
  }

  private String verifiedText(Path dir, String name, JsonNode files) throws IOException {
    Path p = new Path(dir, name);
    JsonNode f = files.get(name);
    if (f == null || !fs.exists(p)) {
      throw new IOException(dir + ": checkpoint file " + name + " missing");
    }
    if (!RunFiles.sha256(fs, p).equals(f.get("sha256").asText())) {
      throw new IOException(p + ": checksum does not match " + Checkpoint.MANIFEST + " (corrupt checkpoint)");
    }
    try (InputStream in = fs.open(p)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  private JsonNode readJson(Path p) throws IOException {
    try (InputStream in = fs.open(p)) {
      return JSON.readTree(in);
    }
  }

  /** Complete checkpoint directories, oldest first. */
  private List<Path> committed() throws IOException {
    if (!fs.exists(root)) {
      return List.of();
    }
    FileStatus[] all = fs.listStatus(root, p -> p.getName().startsWith("step-"));
    List<Path> dirs = new ArrayList<>();
    for (FileStatus s : all) {
      if (s.isDirectory() && fs.exists(new Path(s.getPath(), Checkpoint.MANIFEST))) {
        dirs.add(s.getPath());
      }
    }
    dirs.sort((a, b) -> a.getName().compareTo(b.getName()));
    return dirs;
  }

  private void prune() throws IOException {
    List<Path> dirs = committed();
    for (int i = 0; i < dirs.size() - keep; i++) {
      fs.delete(dirs.get(i), true);
    }
  }

  private Path stepDir(int step) {
    return new Path(root, String.format(Locale.ROOT, "step-%08d", step));
  }
}

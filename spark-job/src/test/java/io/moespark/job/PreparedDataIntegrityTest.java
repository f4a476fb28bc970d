package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.job.cli.TrainMain;
import io.moespark.job.data.PreparedData;
import io.moespark.ops.config.ConfigException;
import io.moespark.prep.PrepJob;
import io.moespark.prep.PrepOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPInputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prepared shards are checked against the SHA-256 in their manifest when read, without Hadoop's .crc side
 * files (object stores keep none): a shard with flipped bytes is refused by name instead of training on
 * wrong tokens; moe-train finds it on the driver before Spark starts and stops with one line and exit 2.
 */
class PreparedDataIntegrityTest {
  @Test
  void aCorruptShardIsRefusedByNameWithoutCrcFiles(@TempDir Path tmp) throws Exception {
    String text;
    try (GZIPInputStream in = new GZIPInputStream(Files.newInputStream(SmallRuns.CORPUS))) {
      text = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).substring(0, 60_000);
    }
    Path corpus = tmp.resolve("book.txt"), out = tmp.resolve("prepared");
    Files.writeString(corpus, text);
    PrepOptions d = PrepOptions.defaults(List.of(corpus.toString()), out.toString());
    PrepOptions o = new PrepOptions(d.inputs(), d.output(), 300, 32, 0.1, d.format(), d.textField(), d.minChars(),
        d.maxChars(), d.minLetterFraction(), d.maxRepeatedLineRatio(), d.nearDupJaccard(), 2, false, d.master(), null);
    SparkSession spark = SparkSession.builder().master("local[2]").appName("prepared data integrity")
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4").getOrCreate();
    try {
      new PrepJob(spark, o, s -> {}).run();
    } finally {
      spark.stop();
    }
    Configuration conf = new Configuration();
    int tokens = PreparedData.open(out.toString(), conf, "data.path").read("train").length;
    assertTrue(tokens > 0);

    Path shard;
    try (var parts = Files.list(out.resolve("train"))) {
      shard = parts.filter(p -> p.toString().endsWith(".parquet")).sorted().findFirst().orElseThrow();
    }
    try (var crcs = Files.list(out.resolve("train"))) {
      for (Path crc : crcs.filter(p -> p.getFileName().toString().endsWith(".crc")).toList()) {
        Files.delete(crc);
      }
    }
    assertEquals(tokens, PreparedData.open(out.toString(), conf, "data.path").read("train").length,
        "without .crc files an intact split still reads");
    byte[] b = Files.readAllBytes(shard);
    b[b.length / 2] ^= 0x5A;
    Files.write(shard, b);
    ConfigException e = assertThrows(ConfigException.class,
        () -> PreparedData.open(out.toString(), conf, "data.path").read("train"));
    assertTrue(e.getMessage().contains(shard.getFileName().toString()) && e.getMessage().contains("checksum"),
        e.getMessage());

    // moe-train on it: the driver finds it before Spark starts (nothing to retry): one line, exit 2.
    List<String> cmd = Jvm.command();
    cmd.addAll(List.of(TrainMain.class.getName(), "--config", Path.of("..", "conf", "tiny.yaml").toString(),
        "--set", "data.path=" + out, "--run-dir", tmp.resolve("run").toString(), "--master", "local[2]"));
    Path stdout = tmp.resolve("stdout.log"), stderr = tmp.resolve("stderr.log");
    long t0 = System.nanoTime();
    Process p = new ProcessBuilder(cmd).redirectOutput(stdout.toFile()).redirectError(stderr.toFile()).start();
    if (!p.waitFor(5, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new AssertionError("moe-train did not end within 5 minutes: " + Files.readString(stdout));
    }
    List<String> err = Files.readAllLines(stderr).stream().filter(l -> !l.isBlank()).toList();
    System.out.printf(java.util.Locale.ROOT, "moe-train on a corrupt shard: exit %d after %.1f s, %d line(s) on stderr%n",
        p.exitValue(), (System.nanoTime() - t0) / 1e9, err.size());
    assertEquals(2, p.exitValue(), "exit code; stderr: " + err);
    assertEquals(1, err.size(), "one line on stderr: " + err);
    assertTrue(err.get(0).startsWith("moe-train: ") && err.get(0).contains(shard.getFileName().toString())
        && err.get(0).contains("checksum"), err.get(0));
    assertEquals("", Files.readString(stdout), "nothing else printed: Spark was not started");
    assertFalse(Files.exists(tmp.resolve("run")), "no run directory written");
  }
}

package io.moespark.prep;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * moe-prep through spark-submit's own entry point (org.apache.spark.deploy.SparkSubmit, what the
 * spark-submit script runs) in a child JVM, with the module's classes packed as the application jar.
 */
class SparkSubmitTest {

  @Test
  void runsUnderSparkSubmitAndReportsBadInputInOneLine(@TempDir Path tmp) throws Exception {
    Path app = appJar(tmp.resolve("data-prep-app.jar"));
    Path in = tmp.resolve("book.txt");
    Files.writeString(in, String.join("\n\n", paragraphs()));
    Path out = tmp.resolve("prepared");
    Result ok = submit(app, "--input", in.toString(), "--output", out.toString(), "--vocab-size", "300",
        "--seq-len", "16", "--shards", "1");
    assertEquals(0, ok.code, ok.output);
    assertTrue(Files.exists(out.resolve(PrepJob.MANIFEST)), ok.output);
    assertTrue(ok.output.contains("wrote " + out), ok.output);

    Result bad = submit(app, "--input", tmp.resolve("missing.txt").toString(), "--output",
        tmp.resolve("other").toString());
    assertEquals(2, bad.code, bad.output);
    assertTrue(bad.output.contains("moe-prep: --input " + tmp.resolve("missing.txt") + ": does not exist"), bad.output);
    assertFalse(Files.exists(tmp.resolve("other")));
  }

  private record Result(int code, String output) {}

  private static Result submit(Path app, String... args) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx2g"));
    cmd.addAll(List.of(System.getProperty("moe.addOpens", "").split(" ")).stream().filter(s -> !s.isBlank()).toList());
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "org.apache.spark.deploy.SparkSubmit",
        "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=2",
        "--class", PrepMain.class.getName(), app.toString()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String output = new String(p.getInputStream().readAllBytes());
    return new Result(p.waitFor(), output);
  }

  private static List<String> paragraphs() throws IOException {
    try (var in = new java.util.zip.GZIPInputStream(Files.newInputStream(Path.of("..", "data", "corpus",
        "moby-dick.txt.gz")))) {
      String text = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      return List.of(text.substring(0, 40_000).split("\n\\s*\n"));
    }
  }

  /** The module's compiled classes as a jar, as `mvn package` would build it. */
  private static Path appJar(Path jar) throws IOException {
    Path classes = Path.of("target", "classes").toAbsolutePath();
    try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar)); Stream<Path> files = Files.walk(classes)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
        out.putNextEntry(new JarEntry(classes.relativize(f).toString().replace(File.separatorChar, '/')));
        Files.copy(f, (OutputStream) out);
        out.closeEntry();
      }
    }
    return jar;
  }
}

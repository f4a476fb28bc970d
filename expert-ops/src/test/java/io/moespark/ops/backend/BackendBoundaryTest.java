package io.moespark.ops.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The compute seam holds: ND4J is used by the CPU backend and nowhere else in the project's main code
 * (every module, the cuda profile's sources included), so another backend runs with no ND4J on the
 * class path.
 */
class BackendBoundaryTest {
  private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  private static final String CPU_BACKEND = "io/moespark/ops/backend/cpu/";

  private static List<Path> mainSources() throws IOException {
    List<Path> dirs = List.of(ROOT.resolve("expert-ops/src/main/java"), ROOT.resolve("data-prep/src/main/java"),
        ROOT.resolve("spark-job/src/main/java"), ROOT.resolve("spark-job/src/cuda/java"));
    try (Stream<Path> s = dirs.stream().filter(Files::isDirectory).flatMap(d -> {
      try {
        return Files.walk(d);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    })) {
      return s.filter(p -> p.toString().endsWith(".java")).toList();
    }
  }

  @Test
  void nd4jIsUsedOnlyInsideTheCpuBackend() throws IOException {
    List<Path> sources = mainSources();
    assertTrue(sources.size() > 50, "expected the project's main sources under " + ROOT + ", found " + sources.size());
    List<String> offenders = sources.stream()
        .filter(p -> !p.toString().replace('\\', '/').contains(CPU_BACKEND))
        .filter(p -> read(p).contains("org.nd4j"))
        .map(p -> ROOT.relativize(p).toString())
        .toList();
    assertEquals(List.of(), offenders, "main classes outside " + CPU_BACKEND + " that use ND4J");
    assertTrue(sources.stream().anyMatch(p -> p.toString().replace('\\', '/').contains(CPU_BACKEND)
        && read(p).contains("import org.nd4j")), "the CPU backend should be where ND4J is used");
  }

  private static String read(Path p) {
    try {
      return Files.readString(p);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}

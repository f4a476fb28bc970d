package io.moespark.ops.cli;

import io.moespark.ops.config.ConfigException;
import io.moespark.ops.io.HuggingFace;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code moe-export --model DIR --out DIR [--overwrite]}: the project's exported model as a Hugging Face
 * Mixtral directory ({@code AutoModelForCausalLM.from_pretrained(out)}), written into a temporary sibling
 * and renamed into place; an existing output is replaced only with {@code --overwrite}, and only once the
 * new one is complete.
 */
public final class ExportMain {
  private static final String USAGE = "moe-export --model DIR --out HF_DIR [--overwrite]";

  private ExportMain() {}

  public static void main(String[] argv) {
    Args.run("moe-export", USAGE, argv, () -> {
      Args a = new Args(argv, 0, Set.of("--model", "--out"), Set.of("--overwrite"));
      Path model = Path.of(a.required("--model")), out = Path.of(a.required("--out")).toAbsolutePath();
      if (Files.exists(out) && !a.flag("--overwrite")) {
        throw new ConfigException("--out " + out + " already exists; pass --overwrite to replace it");
      }
      Files.createDirectories(out.getParent());
      // Not createTempDirectory: its 0700 would become the export's permissions; this gets the umask's.
      Path tmp = Files.createDirectory(out.resolveSibling("." + out.getFileName() + ".tmp-" + System.nanoTime()));
      try {
        HuggingFace.exportMixtral(model, tmp);
        Path old = Files.exists(out) ? out.resolveSibling("." + out.getFileName() + ".old-" + System.nanoTime()) : null;
        if (old != null) {
          Files.move(out, old, StandardCopyOption.ATOMIC_MOVE);
        }
        Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
        if (old != null) {
          delete(old);
        }
      } finally {
        delete(tmp);
      }
      System.out.println("Hugging Face Mixtral model written to " + out);
    });
  }

  private static void delete(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}

package io.moespark.ops.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.train.Trainer;
import io.moespark.ops.train.StepReport;
import io.moespark.ops.train.TokenData;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Locale;
import java.util.Set;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * {@code moe-train --config FILE [--set key=value]... [--run-dir DIR]}: trains with the single-process
 * reference trainer, writing DIR/config.json, DIR/metrics.jsonl (one JSON object per step),
 * DIR/checkpoint/ and the exported DIR/model/.
 */
public final class TrainMain {
  private static final ObjectMapper JSON = new ObjectMapper();

  private TrainMain() {}

  public static void main(String[] argv) {
    Args.run("moe-train", () -> {
      Args a = new Args(argv, 0, Set.of("--config", "--set", "--run-dir"), Set.of());
      Path configFile = Path.of(a.required("--config"));
      RunConfig cfg = ConfigLoader.load(configFile, a.all("--set"));
      String name = configFile.getFileName().toString().replaceFirst("\\.ya?ml$", "");
      train(cfg, Path.of(a.optional("--run-dir", "runs/" + name)));
    });
  }

  static void train(RunConfig cfg, Path runDir) throws IOException {
    Path data = Path.of(cfg.data().path());
    int[] tokens = TokenData.load(data, cfg.data().format(), "data.path");
    TokenData.checkVocab(tokens, cfg.model().vocabSize(), "data.path " + data);
    TokenData.Split split = TokenData.split(tokens, cfg.data().valFraction());
    Files.createDirectories(runDir);
    writeAtomically(runDir.resolve("config.json"), JSON.writerWithDefaultPrettyPrinter()
        .writeValueAsString(ConfigLoader.toTree(cfg)));
    System.out.printf(Locale.ROOT, "data: %s, %,d train and %,d validation tokens; unigram entropy %.3f nats%n",
        data, split.train().length, split.val().length, TokenData.unigramEntropy(split.train()));
    Trainer trainer = Trainer.singleProcess(cfg, split.train(), DataType.FLOAT);
    RunConfig.Train t = cfg.train();
    double elapsed = 0;
    try (BufferedWriter metrics = Files.newBufferedWriter(runDir.resolve("metrics.jsonl"), StandardCharsets.UTF_8,
        StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
      for (int s = 0; s < t.steps(); s++) {
        StepReport r = trainer.step();
        elapsed += r.seconds();
        ObjectNode line = metricsLine(r);
        boolean eval = t.evalEvery() > 0 && split.val().length > cfg.model().seqLen()
            && ((s + 1) % t.evalEvery() == 0 || s + 1 == t.steps());
        if (eval) {
          line.put("val_loss", trainer.evaluate(split.val()));
        }
        metrics.write(JSON.writeValueAsString(line));
        metrics.newLine();
        metrics.flush();
        if ((s + 1) % t.logEvery() == 0 || s + 1 == t.steps()) {
          System.out.println(progress(r, t.steps(), elapsed / (s + 1), line));
        }
        if (cfg.checkpoint().every() > 0 && (s + 1) % cfg.checkpoint().every() == 0) {
          trainer.saveCheckpoint(runDir.resolve("checkpoint"));
        }
      }
    }
    trainer.saveCheckpoint(runDir.resolve("checkpoint"));
    ModelFiles.export(runDir.resolve("model"), trainer.model());
    System.out.println("model exported to " + runDir.resolve("model"));
  }

  static ObjectNode metricsLine(StepReport r) {
    ObjectNode n = JSON.createObjectNode();
    n.put("step", r.step());
    n.put("loss", r.loss().total());
    n.put("ce", r.loss().ce());
    n.put("aux", r.loss().aux());
    n.put("z", r.loss().z());
    n.put("lr", r.lr());
    n.put("grad_norm", r.gradNorm());
    n.put("tokens_per_s", r.tokensPerSecond());
    n.put("max_over_mean_load", r.maxOverMeanLoad());
    n.put("dropped_fraction", r.droppedFraction());
    var layers = n.putArray("expert_load");
    r.layers().forEach(l -> {
      var row = layers.addArray();
      for (long c : l.assignedPerExpert()) {
        row.add(c);
      }
    });
    return n;
  }

  private static String progress(StepReport r, int steps, double secondsPerStep, ObjectNode line) {
    long eta = Math.round(secondsPerStep * (steps - r.step() - 1));
    String val = line.has("val_loss") ? String.format(Locale.ROOT, " · val %.4f", line.get("val_loss").asDouble()) : "";
    return String.format(Locale.ROOT, "step %d/%d · loss %.4f (ce %.4f)%s · %,.0f tok/s · max/mean load %.2f · ETA %dm%02ds",
        r.step() + 1, steps, r.loss().total(), r.loss().ce(), val, r.tokensPerSecond(), r.maxOverMeanLoad(),
        eta / 60, eta % 60);
  }

  private static void writeAtomically(Path file, String text) throws IOException {
    Path tmp = file.resolveSibling("." + file.getFileName() + ".tmp");
    Files.writeString(tmp, text, StandardCharsets.UTF_8);
    Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }
}

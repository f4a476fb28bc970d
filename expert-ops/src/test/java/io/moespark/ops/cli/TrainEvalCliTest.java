package io.moespark.ops.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** moe-train writes the run directory; moe-eval scores the export as DESIGN §3 "Evaluation" defines. */
class TrainEvalCliTest {
  static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void trainWritesRunDirectoryAndEvalScoresTheExport(@TempDir Path tmp) throws Exception {
    RunConfig c = ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), List.of("train.steps=4", "train.eval_every=2",
        "train.eval_batches=1", "data.path=" + ROOT.resolve("data/corpus/moby-dick.txt.gz"), "model.seq_len=16"));
    Path run = tmp.resolve("run");
    TrainMain.train(c, run);
    List<String> lines = Files.readAllLines(run.resolve("metrics.jsonl"));
    assertEquals(4, lines.size());
    for (int i = 0; i < 4; i++) {
      JsonNode m = JSON.readTree(lines.get(i));
      assertEquals(i, m.get("step").asInt());
      for (String k : List.of("loss", "ce", "aux", "tokens_per_s", "max_over_mean_load", "dropped_fraction")) {
        assertTrue(m.has(k), k + " missing in " + lines.get(i));
      }
      assertEquals(i % 2 == 1, m.has("val_loss"));
    }
    assertEquals(c, ConfigLoader.fromTree(JSON.readTree(run.resolve("config.json").toFile()), "config.json"));
    assertTrue(Files.exists(run.resolve("model/model.safetensors")));
    assertTrue(Files.exists(run.resolve("checkpoint/manifest.json")));

    // 5 windows of 17 tokens and a tail of 3 that must be ignored.
    int seq = 16;
    int[] tokens = new int[5 * (seq + 1) + 3];
    for (int i = 0; i < tokens.length; i++) {
      tokens[i] = (i * 37 + 11) % 256;
    }
    ByteBuffer b = ByteBuffer.allocate(tokens.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asIntBuffer().put(tokens);
    Path file = tmp.resolve("val.bin");
    Files.write(file, b.array());
    PrintStream old = System.out;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    System.setOut(new PrintStream(out, true));
    try {
      EvalMain.main(new String[] {"--model", run.resolve("model").toString(), "--tokens", file.toString(),
          "--batch", "2"});
    } finally {
      System.setOut(old);
    }
    JsonNode r = JSON.readTree(out.toString().trim());
    assertEquals(5 * seq, r.get("tokens").asLong());
    // Independently: each window scored on its own, positions 0..15 predicting 1..16.
    TransformerLM m = ModelFiles.load(run.resolve("model"));
    double sum = 0;
    for (int w = 0; w < 5; w++) {
      int[] in = Arrays.copyOfRange(tokens, w * 17, w * 17 + 16), tg = Arrays.copyOfRange(tokens, w * 17 + 1, w * 17 + 17);
      sum += m.evalLossSum(in, tg, 1, Exchange.LOCAL, Reducer.LOCAL);
    }
    assertEquals(sum / (5 * seq), r.get("loss").asDouble(), 1e-5);
  }
}

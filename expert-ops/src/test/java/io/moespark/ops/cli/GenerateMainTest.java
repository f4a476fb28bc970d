package io.moespark.ops.cli;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.HuggingFace;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.tensor.DType;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * moe-generate: greedy decoding of a Mixtral that transformers made from a config (grouped-query attention)
 * equals transformers' greedy generate token for token (ids committed by tools/make_hf_fixtures.py, computed
 * in float64; the smallest top-2 logit gap along the way is 0.005, far above float32's error here).
 */
class GenerateMainTest {
  static final Path FIXTURE = Path.of("src", "test", "resources", "fixtures", "hf_mixtral_gen");
  /** The fixture's config.json in this project's keys (HuggingFace.checkCompatible checks the match). */
  static final List<String> MIXTRAL_GEN = List.of("model.vocab_size=600", "model.d_model=64", "model.n_layers=2",
      "model.n_heads=4", "model.n_kv_heads=2", "model.d_ff=96", "model.seq_len=64", "model.rope_theta=1e6",
      "model.norm_eps=1e-5", "moe.every=1", "moe.experts=4", "moe.top_k=2", "moe.d_expert=96",
      "moe.shared_experts=0");

  @Test
  void greedyEqualsTransformersGenerateThroughTheCommandLine(@TempDir Path tmp) throws Exception {
    ObjectMapper json = new ObjectMapper();
    RunConfig cfg = ConfigLoader.load(null, MIXTRAL_GEN);
    HuggingFace.checkCompatible(json.readTree(FIXTURE.resolve("config.json").toFile()), cfg, "config.json");
    TransformerLM m = TransformerLM.singleRank(cfg.model(), cfg.moe(), CpuBackend.INSTANCE, DType.F32);
    HuggingFace.load(m, HuggingFace.Source.MIXTRAL, null, n -> Files.newInputStream(FIXTURE.resolve(n)),
        FIXTURE.toString(), 0, 0);
    Path model = Files.createDirectories(tmp.resolve("model"));
    ModelFiles.writeInto(model, m);
    for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
      Files.copy(FIXTURE.resolve(f), model.resolve(f));
    }
    JsonNode expected = json.readTree(FIXTURE.resolve("expected.json").toFile());
    // The run's model directory, and the Hugging Face directory itself.
    for (JsonNode c : expected.get("cases")) {
      for (Path dir : List.of(model, FIXTURE)) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        GenerateMain.run(new String[] {"--model", dir.toString(), "--prompt",
            c.get("prompt").asText(), "--max-new-tokens", expected.get("max_new_tokens").asText(), "--show-ids"},
            new PrintStream(out, true, StandardCharsets.UTF_8));
        String text = out.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("prompt ids: " + join(c.get("prompt_ids")) + "\n"), text);
        assertTrue(text.contains("generated ids: " + join(c.get("generated")) + "\n"),
            "transformers: " + join(c.get("generated")) + "\nours: " + text);
      }
    }
  }

  private static String join(JsonNode ids) {
    List<String> s = new ArrayList<>();
    ids.forEach(i -> s.add(i.asText()));
    return String.join(" ", s);
  }
}

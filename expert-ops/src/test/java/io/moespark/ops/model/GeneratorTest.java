package io.moespark.ops.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.nn.KvCache;
import io.moespark.ops.tensor.DType;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Generation: the KV-cached step equals the whole-prefix forward (the training forward); sampling is
 * reproducible per seed; bad settings are refused by name. GenerateMainTest checks greedy decoding against
 * transformers.
 */
class GeneratorTest {
  /** Models covering what the cached step handles on its own: MHA and GQA, q/k/v biases, scaled RoPE, routers. */
  static RunConfig small(String variant) {
    List<String> s = new ArrayList<>(List.of("model.vocab_size=50", "model.d_model=24", "model.n_layers=2",
        "model.n_heads=4", "model.d_ff=20", "model.seq_len=16", "moe.every=2", "moe.experts=4", "moe.top_k=2",
        "moe.d_expert=12"));
    switch (variant) {
      case "mha_bias_llama3" -> s.addAll(List.of("model.qkv_bias=true", "model.tie_embeddings=true",
          "model.rope_scaling=llama3", "model.rope_scaling_factor=8", "model.rope_original_max_positions=8"));
      case "gqa_hash_shared" -> s.addAll(List.of("model.n_kv_heads=2", "moe.router=hash", "moe.top_k=1", "moe.shared_experts=1"));
      case "mqa_linear" -> s.addAll(List.of("model.n_kv_heads=1", "model.rope_scaling=linear",
          "model.rope_scaling_factor=2"));
      default -> throw new IllegalArgumentException(variant);
    }
    return ConfigLoader.load(null, s);
  }

  @ParameterizedTest
  @ValueSource(strings = {"mha_bias_llama3", "gqa_hash_shared", "mqa_linear"})
  void theCachedStepEqualsTheWholePrefixForward(String variant) {
    RunConfig cfg = small(variant);
    TransformerLM m = TransformerLM.singleRank(cfg.model(), cfg.moe(), CpuBackend.INSTANCE, DType.F64);
    m.init(11);
    m.setCapacityFactor(0);
    int[] seq = new int[20]; // beyond seq_len: RoPE's tables grow with the cache
    for (int i = 0; i < seq.length; i++) {
      seq[i] = (i * 37 + 5) % 50;
    }
    int prompt = 3;
    try (KvCache cache = m.newKvCache(seq.length)) {
      double[] cached = m.nextLogits(java.util.Arrays.copyOf(seq, prompt), cache);
      for (int t = prompt; ; t++) {
        double[] whole;
        try (KvCache fresh = m.newKvCache(t)) {
          whole = m.nextLogits(java.util.Arrays.copyOf(seq, t), fresh);
        }
        double scale = 0;
        for (double w : whole) {
          scale = Math.max(scale, Math.abs(w));
        }
        for (int v = 0; v < whole.length; v++) {
          // F64 throughout; the two paths sum the same products in different orders: a few ulps of the
          // largest logit per layer.
          assertEquals(whole[v], cached[v], 1e-12 * (1 + scale), variant + ": position " + (t - 1) + ", token " + v);
        }
        if (t == seq.length) {
          break;
        }
        cached = m.nextLogits(new int[] {seq[t]}, cache);
      }
    }
  }

  @Test
  void samplingIsReproduciblePerSeedAndTopOneIsGreedy() {
    RunConfig cfg = small("gqa_hash_shared");
    TransformerLM m = TransformerLM.singleRank(cfg.model(), cfg.moe(), CpuBackend.INSTANCE, DType.F32);
    m.init(5);
    Generator g = new Generator(m);
    int[] prompt = {1, 2, 3};
    Generator.Sampling warm = new Generator.Sampling(1.5, 0, 1, 42);
    int[] a = g.generate(prompt, 30, -1, warm), b = g.generate(prompt, 30, -1, warm);
    assertArrayEquals(a, b);
    assertFalse(java.util.Arrays.equals(a, g.generate(prompt, 30, -1, new Generator.Sampling(1.5, 0, 1, 43))),
        "another seed, another sample");
    int[] greedy = g.generate(prompt, 30, -1, Generator.Sampling.GREEDY);
    assertArrayEquals(greedy, g.generate(prompt, 30, -1, new Generator.Sampling(1.5, 1, 1, 7)));
    assertArrayEquals(greedy, g.generate(prompt, 30, -1, new Generator.Sampling(0.7, 0, 1e-9, 9)));
    int[] stops = g.generate(prompt, 30, greedy[4], Generator.Sampling.GREEDY);
    assertEquals(java.util.Arrays.stream(greedy).boxed().toList().indexOf(greedy[4]) + 1, stops.length,
        "stops after the end-of-text token");
  }

  /** The cached step on every backend (the CUDA backend on the host device layer): the CPU's greedy tokens. */
  @ParameterizedTest
  @org.junit.jupiter.params.provider.MethodSource("io.moespark.ops.backend.ConformanceBackends#all")
  void greedyTokensAreTheSameOnEveryBackend(io.moespark.ops.backend.Backend backend) {
    RunConfig cfg = small("mha_bias_llama3");
    TransformerLM cpu = TransformerLM.singleRank(cfg.model(), cfg.moe(), CpuBackend.INSTANCE, DType.F32);
    TransformerLM other = TransformerLM.singleRank(cfg.model(), cfg.moe(), backend, DType.F32);
    cpu.init(3);
    other.init(3);
    int[] prompt = {4, 8, 15, 16, 23, 42};
    assertArrayEquals(new Generator(cpu).generate(prompt, 12, -1, Generator.Sampling.GREEDY),
        new Generator(other).generate(prompt, 12, -1, Generator.Sampling.GREEDY), backend.name());
  }

  @Test
  void badSettingsAreRefusedByName() {
    assertTrue(assertThrows(ConfigException.class, () -> new Generator.Sampling(-1, 0, 1, 0)).getMessage()
        .startsWith("--temperature"));
    assertTrue(assertThrows(ConfigException.class, () -> new Generator.Sampling(1, -2, 1, 0)).getMessage()
        .startsWith("--top-k"));
    assertTrue(assertThrows(ConfigException.class, () -> new Generator.Sampling(1, 0, 0, 0)).getMessage()
        .startsWith("--top-p"));
    RunConfig ec = ConfigLoader.load(null, List.of("model.vocab_size=50", "model.d_model=8", "model.n_layers=1",
        "model.n_heads=2", "model.d_ff=8", "model.seq_len=8", "moe.experts=2", "moe.top_k=1", "moe.d_expert=8",
        "moe.router=expert_choice"));
    TransformerLM m = TransformerLM.singleRank(ec.model(), ec.moe(), CpuBackend.INSTANCE, DType.F32);
    assertTrue(assertThrows(ConfigException.class, () -> new Generator(m)).getMessage().contains("expert_choice"));
  }
}

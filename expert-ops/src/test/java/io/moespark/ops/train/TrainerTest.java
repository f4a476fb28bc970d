package io.moespark.ops.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.io.SafeTensors;
import io.moespark.ops.tensor.Param;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import io.moespark.ops.TestTensors;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import org.nd4j.linalg.api.ndarray.INDArray;

/** The single-process trainer on real English text (the bundled corpus, byte tokens). */
class TrainerTest {
  static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  static final Path TINY = ROOT.resolve("conf/tiny.yaml");
  static final Path CORPUS = ROOT.resolve("data/corpus/moby-dick.txt.gz");

  static RunConfig tiny(String... sets) {
    List<String> s = new ArrayList<>(List.of("data.path=" + CORPUS));
    s.addAll(List.of(sets));
    return ConfigLoader.load(TINY, s);
  }

  static TokenData.Split corpus(RunConfig c) {
    return TokenData.split(TokenData.load(CORPUS, "auto", "corpus"), c.data().valFraction());
  }

  @Test
  void tinyConfigLearnsWellBelowTheUnigramEntropy() {
    RunConfig c = tiny("train.steps=150");
    TokenData.Split data = corpus(c);
    double unigram = TokenData.unigramEntropy(data.train());
    Trainer t = Trainer.singleProcess(c, data.train(), CpuBackend.INSTANCE, DType.F32);
    double first = t.step().loss().ce();
    for (int s = 1; s < 150; s++) {
      t.step();
    }
    double val = t.evaluate(data.val());
    // Byte unigram entropy of English is about 3.1 nats; a model that uses context must go well below it.
    assertTrue(first > 5.0, "initial CE should be near ln(256) = 5.55, was " + first);
    assertTrue(val < unigram - 0.5, "validation CE " + val + " not well below unigram entropy " + unigram);
  }

  @Test
  void sameSeedGivesBitIdenticalLossesAndParameters() {
    RunConfig c = tiny("train.steps=6", "moe.capacity_factor=1.0", "moe.bias_update_rate=0.01");
    TokenData.Split data = corpus(c);
    Trainer a = Trainer.singleProcess(c, data.train(), CpuBackend.INSTANCE, DType.F32);
    Trainer b = Trainer.singleProcess(c, data.train(), CpuBackend.INSTANCE, DType.F32);
    for (int s = 0; s < 6; s++) {
      assertEquals(a.step().loss().total(), b.step().loss().total(), 0.0, "step " + s);
    }
    assertSameParams(a, b);
  }

  @Test
  void resumeFromCheckpointIsBitIdentical() throws IOException {
    RunConfig c = tiny("train.steps=6", "moe.bias_update_rate=0.01");
    TokenData.Split data = corpus(c);
    Trainer straight = Trainer.singleProcess(c, data.train(), CpuBackend.INSTANCE, DType.F32);
    Trainer first = Trainer.singleProcess(c, data.train(), CpuBackend.INSTANCE, DType.F32);
    double[] losses = new double[6];
    for (int s = 0; s < 6; s++) {
      losses[s] = straight.step().loss().total();
    }
    for (int s = 0; s < 3; s++) {
      first.step();
    }
    // Through the file format: the shard as safetensors bytes, the state as JSON.
    ByteArrayOutputStream shard = new ByteArrayOutputStream();
    SafeTensors.write(first.checkpointTensors(), Map.of(), shard);
    Checkpoint.State state = Checkpoint.fromJson(Checkpoint.toJson(first.checkpointState()), "state");
    Trainer resumed = Trainer.singleProcess(c, data.train(), CpuBackend.INSTANCE, DType.F32);
    resumed.restore(SafeTensors.read(new ByteArrayInputStream(shard.toByteArray()), "shard", CpuBackend.INSTANCE), state, "checkpoint");
    assertEquals(3, resumed.nextStep());
    for (int s = 3; s < 6; s++) {
      assertEquals(losses[s], resumed.step().loss().total(), 0.0, "step " + s);
    }
    assertSameParams(straight, resumed);
  }

  @Test
  void checkpointMissingATensorIsRefusedWithItsName() {
    RunConfig c = tiny("train.steps=2");
    Trainer t = Trainer.singleProcess(c, corpus(c).train(), CpuBackend.INSTANCE, DType.F32);
    t.step();
    Map<String, Tensor> tensors = new HashMap<>(t.checkpointTensors());
    tensors.remove("exp_avg_sq.layers.1.moe.experts.3.w2.weight");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> t.restore(tensors, t.checkpointState(), "ckpt"));
    assertTrue(e.getMessage().contains("layers.1.moe.experts.3.w2.weight"), e.getMessage());
  }

  private static void assertSameParams(Trainer a, Trainer b) {
    List<Param> pa = a.model().params().all(), pb = b.model().params().all();
    for (int i = 0; i < pa.size(); i++) {
      assertArrayEquals(TestTensors.nd(pa.get(i).value()).dup().data().asFloat(), TestTensors.nd(pb.get(i).value()).dup().data().asFloat(), 0f,
          pa.get(i).name());
    }
  }
}

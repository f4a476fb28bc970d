package io.moespark.ops.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.tensor.Param;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

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
    Trainer t = Trainer.singleProcess(c, data.train(), DataType.FLOAT);
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
    Trainer a = Trainer.singleProcess(c, data.train(), DataType.FLOAT);
    Trainer b = Trainer.singleProcess(c, data.train(), DataType.FLOAT);
    for (int s = 0; s < 6; s++) {
      assertEquals(a.step().loss().total(), b.step().loss().total(), 0.0, "step " + s);
    }
    assertSameParams(a, b);
  }

  @Test
  void resumeFromCheckpointIsBitIdentical(@TempDir Path tmp) throws IOException {
    RunConfig c = tiny("train.steps=6", "moe.bias_update_rate=0.01");
    TokenData.Split data = corpus(c);
    Trainer straight = Trainer.singleProcess(c, data.train(), DataType.FLOAT);
    Trainer first = Trainer.singleProcess(c, data.train(), DataType.FLOAT);
    double[] losses = new double[6];
    for (int s = 0; s < 6; s++) {
      losses[s] = straight.step().loss().total();
    }
    for (int s = 0; s < 3; s++) {
      first.step();
    }
    first.saveCheckpoint(tmp.resolve("ckpt"));
    Trainer resumed = Trainer.singleProcess(c, data.train(), DataType.FLOAT);
    resumed.loadCheckpoint(tmp.resolve("ckpt"));
    assertEquals(3, resumed.nextStep());
    for (int s = 3; s < 6; s++) {
      assertEquals(losses[s], resumed.step().loss().total(), 0.0, "step " + s);
    }
    assertSameParams(straight, resumed);
  }

  @Test
  void corruptCheckpointIsRefusedWithTheFileNamed(@TempDir Path tmp) throws IOException {
    RunConfig c = tiny("train.steps=2");
    TokenData.Split data = corpus(c);
    Trainer t = Trainer.singleProcess(c, data.train(), DataType.FLOAT);
    t.step();
    Path dir = tmp.resolve("ckpt");
    t.saveCheckpoint(dir);
    byte[] bytes = Files.readAllBytes(dir.resolve(Checkpoint.OPTIMIZER));
    bytes[bytes.length - 1] ^= 1;
    Files.write(dir.resolve(Checkpoint.OPTIMIZER), bytes);
    IOException e = assertThrows(IOException.class, () -> t.loadCheckpoint(dir));
    assertTrue(e.getMessage().contains(Checkpoint.OPTIMIZER) && e.getMessage().contains("checksum"), e.getMessage());
  }

  private static void assertSameParams(Trainer a, Trainer b) {
    List<Param> pa = a.model().params().all(), pb = b.model().params().all();
    for (int i = 0; i < pa.size(); i++) {
      assertArrayEquals(pa.get(i).value().data().asFloat(), pb.get(i).value().data().asFloat(), 0f,
          pa.get(i).name());
    }
  }
}

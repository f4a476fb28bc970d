package io.moespark.ops.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.ops.TestTensors;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.tensor.Param;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

class ModelFilesTest {
  private static final CpuBackend CPU = CpuBackend.INSTANCE;

  static RunConfig small(String... extra) {
    List<String> s = new java.util.ArrayList<>(List.of("model.d_model=16", "model.n_heads=2", "model.d_ff=32",
        "moe.experts=3", "moe.d_expert=8", "moe.every=2", "moe.shared_experts=1"));
    s.addAll(List.of(extra));
    return ConfigLoader.load(null, s);
  }

  @Test
  void safetensorsRoundTripsFloatAndDouble() throws IOException {
    Map<String, Tensor> t = new LinkedHashMap<>();
    t.put("a", TestTensors.t(Nd4j.rand(DataType.FLOAT, 3, 5)));
    t.put("b.weight", TestTensors.t(Nd4j.rand(DataType.DOUBLE, 7)));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    SafeTensors.write(t, Map.of("format", "pt"), out);
    Map<String, Tensor> back = SafeTensors.read(new ByteArrayInputStream(out.toByteArray()), "mem", CPU);
    assertEquals(t.keySet(), back.keySet());
    assertEquals(TestTensors.nd(t.get("a")), TestTensors.nd(back.get("a")));
    assertEquals(TestTensors.nd(t.get("b.weight")), TestTensors.nd(back.get("b.weight")));
  }

  @Test
  void exportThenLoadGivesTheSameModel(@TempDir Path tmp) throws IOException {
    RunConfig c = small();
    TransformerLM m = TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32);
    m.init(5);
    Path dir = tmp.resolve("model");
    exportTo(dir, m);
    TransformerLM back = ModelFiles.load(dir, CPU);
    assertEquals(m.config(), back.config());
    List<Param> a = m.params().all(), b = back.params().all();
    assertEquals(a.size(), b.size());
    for (int i = 0; i < a.size(); i++) {
      assertEquals(a.get(i).name(), b.get(i).name());
      assertArrayEquals(TestTensors.nd(a.get(i).value()).dup().data().asFloat(), TestTensors.nd(b.get(i).value()).dup().data().asFloat(), 0f);
    }
    assertTrue(a.stream().anyMatch(p -> p.name().equals("layers.1.moe.experts.2.w2.weight")));
    assertTrue(a.stream().anyMatch(p -> p.name().equals("layers.0.ffn.w3.weight")));
  }

  @Test
  void shapeMismatchOnLoadNamesTensorAndShapes(@TempDir Path tmp) throws IOException {
    RunConfig c = small();
    TransformerLM m = TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32);
    Path dir = tmp.resolve("model");
    exportTo(dir, m);
    ObjectNode cfg = (ObjectNode) ModelFiles.JSON.readTree(dir.resolve(ModelFiles.CONFIG).toFile());
    cfg.put("d_expert", 10);
    ModelFiles.JSON.writeValue(dir.resolve(ModelFiles.CONFIG).toFile(), cfg);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelFiles.load(dir, CPU));
    assertTrue(e.getMessage().contains("layers.1.moe.experts.0.w1.weight")
        && e.getMessage().contains("[8, 16]") && e.getMessage().contains("[10, 16]"), e.getMessage());
  }

  @Test
  void missingFilesAreOneClearError(@TempDir Path tmp) throws IOException {
    ConfigException e = assertThrows(ConfigException.class, () -> ModelFiles.load(tmp.resolve("nothing"), CPU));
    assertTrue(e.getMessage().contains("config.json does not exist"), e.getMessage());
    RunConfig c = small();
    Path dir = tmp.resolve("model");
    exportTo(dir, TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32));
    Files.delete(dir.resolve(ModelFiles.WEIGHTS));
    ConfigException io = assertThrows(ConfigException.class, () -> ModelFiles.load(dir, CPU));
    assertTrue(io.getMessage().contains("model.safetensors does not exist"), io.getMessage());
  }

  @Test
  void extraTensorInAModelFileIsRefusedByName(@TempDir Path tmp) throws IOException {
    RunConfig c = small();
    TransformerLM m = TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32);
    Path dir = tmp.resolve("model");
    exportTo(dir, m);
    Map<String, Tensor> t = new LinkedHashMap<>(m.params().values());
    t.put("layers.1.moe.experts.7.w1.weight", CPU.zeros(DType.F32, 8, 16));
    try (var out = Files.newOutputStream(dir.resolve(ModelFiles.WEIGHTS))) {
      SafeTensors.write(t, Map.of(), out);
    }
    Files.delete(dir.resolve(ModelFiles.MANIFEST)); // a directory assembled by hand carries no manifest
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelFiles.load(dir, CPU));
    assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains("layers.1.moe.experts.7.w1.weight"),
        e.getMessage());
  }

  @Test
  void aCorruptWeightsFileIsRefusedByItsChecksum(@TempDir Path tmp) throws IOException {
    RunConfig c = small();
    Path dir = tmp.resolve("model");
    exportTo(dir, TransformerLM.singleRank(c.model(), c.moe(), CPU, DType.F32));
    Path weights = dir.resolve(ModelFiles.WEIGHTS);
    byte[] b = Files.readAllBytes(weights);
    for (int i = 1; i <= 4; i++) {
      b[b.length - i] = (byte) 0xFF; // a NaN in the last tensor: would score as NaN without the check
    }
    Files.write(weights, b);
    // An input problem (a command exits 2 on it), not an I/O failure that a retry could mend.
    ConfigException e = assertThrows(ConfigException.class, () -> ModelFiles.load(dir, CPU));
    assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains("checksum"), e.getMessage());
  }

  /** A file of two F32 tensors [2] with the given header offsets and {@code dataBytes} bytes of data. */
  private static byte[] handMade(String offsetsA, String offsetsB, int dataBytes) {
    String header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + offsetsA + "},"
        + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + offsetsB + "}}";
    byte[] h = header.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + h.length + dataBytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    return b.array();
  }

  private static String readError(byte[] file) {
    return assertThrows(IOException.class, () -> SafeTensors.read(new ByteArrayInputStream(file), "f.safetensors", CPU))
        .getMessage();
  }

  @Test
  void safetensorsReaderRefusesWhatTheFormatForbids() throws IOException {
    assertEquals(2, SafeTensors.read(new ByteArrayInputStream(handMade("[0,8]", "[8,16]", 16)), "ok", CPU).size());
    String gap = readError(handMade("[0,8]", "[12,20]", 20));
    assertTrue(gap.contains("f.safetensors") && gap.contains("'b'") && gap.contains("gap"), gap);
    String overlap = readError(handMade("[0,8]", "[4,12]", 12));
    assertTrue(overlap.contains("'b'") && overlap.contains("overlapping"), overlap);
    String pastEnd = readError(handMade("[0,8]", "[8,16]", 12));
    assertTrue(pastEnd.contains("truncated"), pastEnd);
    String trailing = readError(handMade("[0,8]", "[8,16]", 20));
    assertTrue(trailing.contains("after the last tensor"), trailing);
    String size = readError(handMade("[0,8]", "[8,20]", 20));
    assertTrue(size.contains("'b'") && size.contains("expected 8 bytes"), size);
    String reversed = readError(handMade("[8,0]", "[8,16]", 16));
    assertTrue(reversed.contains("'a'") && reversed.contains("0 <= begin <= end"), reversed);
    String notFirst = readError(handMade("[8,16]", "[16,24]", 24));
    assertTrue(notFirst.contains("'a'") && notFirst.contains("gap"), notFirst);
  }

  private static void exportTo(Path dir, TransformerLM m) throws IOException {
    Files.createDirectories(dir);
    ModelFiles.writeInto(dir, m);
  }
}

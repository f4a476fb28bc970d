package io.moespark.ops.cli;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.OpCases;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPU check's own logic, on the CPU: recorded with the CPU backend, run on the CUDA backend's code
 * through the host device layer (the bundle's dry run). It passes; a recorded op output or loss moved
 * past its tolerance fails it, naming the check.
 */
class GpuCheckTest {
  private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  private static final String[] SMALL = {"--set", "train.batch_size=4", "--set", "model.seq_len=32"};

  private static String[] args(String sub, Path recorded, String... more) {
    List<String> a = new ArrayList<>(List.of(sub, sub.equals("record") ? "--out" : "--recorded", recorded.toString(),
        "--config", ROOT.resolve("conf/tiny.yaml").toString(), "--data",
        ROOT.resolve("data/corpus/moby-dick.txt.gz").toString(), "--steps", "3"));
    a.addAll(List.of(SMALL));
    a.addAll(List.of(more));
    return a.toArray(String[]::new);
  }

  private static final Set<String> RUN_OPTIONS = Set.of("--recorded", "--config", "--bench", "--data", "--device",
      "--steps", "--two-rank-steps", "--bench-steps", "--bench-out", "--set");

  private static String run(Path recorded, boolean expectOk) throws Exception {
    ByteArrayOutputStream text = new ByteArrayOutputStream();
    boolean ok = GpuCheckMain.run(new Args(args("run", recorded, "--device", "host", "--two-rank-steps", "2"), 1,
        RUN_OPTIONS, Set.of()), new PrintStream(text, true));
    String out = text.toString();
    assertTrue(ok == expectOk, (expectOk ? "should pass" : "should fail") + ":\n" + out);
    return out;
  }

  @Test
  void passesOnTheCudaBackendsCodeAndFailsWhenARecordedValueMoves(@TempDir Path tmp) throws Exception {
    GpuCheckMain.record(new Args(args("record", tmp), 1, Set.of("--out", "--config", "--data", "--steps", "--set"),
        Set.of()));
    String out = run(tmp, true);
    for (String check : List.of("ok     (a)", "ok     (b)", "ok     (c)")) {
      assertTrue(out.contains(check), check + " missing:\n" + out);
    }

    // A recorded loss 1e-3 away: (b) fails, (a) and (c) still pass.
    Path losses = tmp.resolve(GpuCheckMain.LOSSES);
    List<String> lines = Files.readAllLines(losses);
    Files.write(losses, List.of(String.valueOf(Double.parseDouble(lines.get(0)) * 1.001), lines.get(1), lines.get(2)));
    out = run(tmp, false);
    assertTrue(out.contains("FAILED (b)") && out.contains("ok     (a)"), out);
    Files.write(losses, lines);

    // One recorded element of one op output moved by 1e-4 of the output's scale: (a) fails, naming it.
    Map<String, List<OpCases.Output>> ops;
    try (DataInputStream in = new DataInputStream(Files.newInputStream(tmp.resolve(GpuCheckMain.OPS)))) {
      ops = OpCases.read(in);
    }
    double[] dx = ops.get("rmsnorm").get(2).values();
    double scale = 0;
    for (double v : dx) {
      scale = Math.max(scale, Math.abs(v));
    }
    dx[17] += 1e-4 * scale;
    try (DataOutputStream o = new DataOutputStream(Files.newOutputStream(tmp.resolve(GpuCheckMain.OPS)))) {
      OpCases.write(ops, o);
    }
    out = run(tmp, false);
    assertTrue(out.contains("MISMATCH rmsnorm/dx: element 17") && out.contains("FAILED (a)"), out);
    assertFalse(out.contains("FAILED (b)"), out);
  }
}

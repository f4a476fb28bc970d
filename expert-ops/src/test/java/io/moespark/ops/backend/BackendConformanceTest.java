package io.moespark.ops.backend;

import static io.moespark.ops.GradCheck.gaussian;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.GradCheck;
import io.moespark.ops.moe.Router;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.DoubleSupplier;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The backend conformance suite: every method of {@link Backend}, on every backend of
 * {@link ConformanceBackends#float64}, through the interface only (values go up with {@code fromDoubles} and
 * come back with {@code toDoubles}). Each op is checked against its definition written out here as
 * plain loops, and every backward against central finite differences in float64 ({@link GradCheck});
 * {@code TorchParityTest} runs the whole model on the same backends against PyTorch's fixtures. Values
 * are F64 unless a test is about another type, so the tolerances are float64 rounding of these small
 * sums (1e-12 relative), far below any real error.
 */
class BackendConformanceTest {
  private static final double TOL = 1e-12;

  static List<Backend> backends() {
    return ConformanceBackends.float64().toList();
  }

  // ---- helpers: the suite touches values only through the interface ----

  private static Tensor up(Backend be, double[] v, long... shape) {
    Tensor t = be.empty(DType.F64, shape);
    be.fromDoubles(v, t);
    return t;
  }

  private static Tensor ints(Backend be, int... v) {
    Tensor t = be.empty(DType.I32, v.length);
    be.fromInts(v, t);
    return t;
  }

  private static void assertClose(String what, double[] expected, double[] actual) {
    assertEquals(expected.length, actual.length, what + ": length");
    for (int i = 0; i < expected.length; i++) {
      double tol = TOL * (1 + Math.abs(expected[i]));
      assertTrue(Math.abs(expected[i] - actual[i]) <= tol,
          what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
    }
  }

  private static double dot(double[] a, double[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += a[i] * b[i];
    }
    return s;
  }

  // ---- the arena, views, events ----

  @ParameterizedTest
  @MethodSource("backends")
  void allocationsAreZeroedCountedAndFreed(Backend be) {
    for (DType type : DType.values()) {
      Tensor t = be.zeros(type, 3, 4);
      assertEquals(type, t.dtype());
      assertArrayEquals(new long[] {3, 4}, t.shape());
      assertArrayEquals(new double[12], t.toDoubles(), type.toString());
      assertArrayEquals(new long[] {2, 0}, be.empty(type, 2, 0).shape());
    }
    Footprint before = be.footprint();
    Tensor a = be.zeros(DType.F32, 10, 10);
    Footprint held = be.footprint();
    assertEquals(before.liveBytes() + 400, held.liveBytes());
    assertEquals(before.allocations() + 1, held.allocations());
    assertTrue(held.peakBytes() >= held.liveBytes());
    be.free(a);
    assertEquals(before.liveBytes(), be.footprint().liveBytes());
  }

  @ParameterizedTest
  @MethodSource("backends")
  void viewsShareMemory(Backend be) {
    Tensor t = be.zeros(DType.F64, 4, 3);
    be.rows(t, 1, 3).fill(2);
    be.slice(t, 3).fill(5);
    be.fill(be.view(t, 1, 2), 7); // elements 1 and 2 of row 0
    assertArrayEquals(new double[] {0, 7, 7, 2, 2, 2, 2, 2, 2, 5, 5, 5}, t.toDoubles());
    assertArrayEquals(new long[] {0, 3}, be.rows(t, 2, 2).shape());
    assertArrayEquals(new double[] {2, 2, 2}, be.view(t, 3, 1, 3).toDoubles());
  }

  @ParameterizedTest
  @MethodSource("backends")
  void ensureAndGrowReuseWhatFits(Backend be) {
    Tensor a = be.ensure(null, DType.F32, 2, 3);
    assertSame(a, be.ensure(a, DType.F32, 2, 3));
    Tensor b = be.ensure(a, DType.F32, 3, 3);
    assertNotSame(a, b);
    assertArrayEquals(new long[] {3, 3}, b.shape());
    Tensor g = be.grow(null, DType.F64, 10, 4);
    assertTrue(g.size(0) >= 10);
    assertSame(g, be.grow(g, DType.F64, 5, 4));
    Tensor bigger = be.grow(g, DType.F64, 100, 4);
    assertTrue(bigger.size(0) >= 100 && bigger.size(1) == 4);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void eventsCompleteTheWorkBeforeThem(Backend be) {
    Tensor t = be.zeros(DType.F64, 1000);
    t.fill(3);
    Backend.Event e = be.record();
    e.synchronize();
    assertTrue(e.isDone());
    be.waitFor(e);
    assertEquals(3000.0, Arrays.stream(t.toDoubles()).sum());
  }

  // ---- elementwise, conversions, host copies ----

  @ParameterizedTest
  @MethodSource("backends")
  void elementwise(Backend be) {
    double[] x = gaussian(1, 6), y = gaussian(2, 6);
    Tensor tx = up(be, x, 2, 3), ty = up(be, y, 2, 3);
    be.add(ty, tx);
    be.scale(ty, -0.5);
    double[] want = new double[6];
    for (int i = 0; i < 6; i++) {
      want[i] = (y[i] + x[i]) * -0.5;
    }
    assertClose("y = (y + x) * -0.5", want, ty.toDoubles());
    Tensor flat = be.zeros(DType.F64, 6);
    be.copy(tx, flat); // equal lengths, other shape
    assertArrayEquals(x, flat.toDoubles());
    be.fill(flat, 1.25);
    assertArrayEquals(new double[] {1.25, 1.25, 1.25, 1.25, 1.25, 1.25}, flat.toDoubles());
  }

  /** Round to nearest even of an f32 to its upper 16 bits: the definition of the BF16 conversion. */
  private static double bf16(float f) {
    int b = Float.floatToRawIntBits(f);
    b += 0x7FFF + ((b >>> 16) & 1);
    return Float.intBitsToFloat(b & 0xFFFF0000);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void conversionsRoundToNearestEven(Backend be) {
    double[] v = gaussian(3, 64);
    float[] f = new float[v.length + 3];
    for (int i = 0; i < v.length; i++) {
      f[i] = (float) (v[i] * Math.pow(10, i % 7 - 3));
    }
    // Ties: 1 + 2^-8 lies halfway between bf16 1 and 1 + 2^-7 (rounds to the even 1); 1 + 3 * 2^-8 halfway
    // between 1 + 2^-7 and 1 + 2^-6 (rounds to the even 1 + 2^-6); just above a tie rounds up.
    f[v.length] = 1 + 0x1p-8f;
    f[v.length + 1] = 1 + 3 * 0x1p-8f;
    f[v.length + 2] = 1 + 0x1p-8f + 0x1p-20f;
    double[] fd = new double[f.length];
    double[] want = new double[f.length];
    for (int i = 0; i < f.length; i++) {
      fd[i] = f[i];
      want[i] = bf16(f[i]);
    }
    Tensor f32 = be.empty(DType.F32, f.length);
    be.fromDoubles(fd, f32);
    assertArrayEquals(fd, f32.toDoubles(), "f32 values go up and down exactly");
    Tensor b = be.zeros(DType.BF16, f.length);
    be.copy(f32, b);
    assertArrayEquals(want, b.toDoubles(), "f32 -> bf16");
    Tensor back = be.zeros(DType.F32, f.length);
    be.copy(b, back);
    assertArrayEquals(want, back.toDoubles(), "bf16 -> f32 is exact");
    Tensor f64 = up(be, v, v.length);
    Tensor narrow = be.zeros(DType.F32, v.length);
    be.copy(f64, narrow);
    double[] rounded = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      rounded[i] = (float) v[i];
    }
    assertArrayEquals(rounded, narrow.toDoubles(), "f64 -> f32");
  }

  @ParameterizedTest
  @MethodSource("backends")
  void hostCopiesAreLittleEndianAndCounted(Backend be) {
    double[] v = {1.5, -2.25, 3e-3, 7, 0};
    for (DType type : DType.values()) {
      Tensor t = be.empty(type, v.length);
      be.fromDoubles(type == DType.I32 ? new double[] {1, -2, 3, 7, 0} : v, t);
      ByteBuffer bytes = ByteBuffer.allocate(v.length * type.width() + 3).order(ByteOrder.LITTLE_ENDIAN);
      bytes.position(3); // appends at the position
      HostTransfers.Snapshot before = be.transfers().snapshot();
      be.toHost(t, bytes);
      HostTransfers.Snapshot d = be.transfers().snapshot().minus(before);
      assertEquals(new HostTransfers.Snapshot(1, v.length * type.width(), 0, 0), d, type + " toHost counted");
      assertEquals(3 + v.length * type.width(), bytes.position());
      bytes.position(3);
      switch (type) {
        case F32 -> assertEquals(-2.25f, bytes.getFloat(3 + 4));
        case F64 -> assertEquals(-2.25, bytes.getDouble(3 + 8));
        case I32 -> assertEquals(-2, bytes.getInt(3 + 4));
        case BF16 -> assertEquals((short) (Float.floatToRawIntBits(-2.25f) >>> 16), bytes.getShort(3 + 2));
      }
      Tensor copy = be.zeros(type, v.length);
      before = be.transfers().snapshot();
      be.fromHost(bytes, copy);
      assertEquals(new HostTransfers.Snapshot(0, 0, 1, v.length * type.width()),
          be.transfers().snapshot().minus(before), type + " fromHost counted");
      assertArrayEquals(t.toDoubles(), copy.toDoubles(), type + " round trip");
    }
    Tensor ids = ints(be, 4, -1, 2147483647);
    assertArrayEquals(new double[] {4, -1, 2147483647}, ids.toDoubles());
  }

  // ---- reductions and GEMMs ----

  @ParameterizedTest
  @MethodSource("backends")
  void sumSquaresOverParts(Backend be) {
    double[] a = gaussian(4, 7), b = gaussian(5, 12);
    Tensor out = be.zeros(DType.F64, 3);
    be.sumSquares(new Tensor[] {up(be, a, 7), up(be, b, 3, 4), be.zeros(DType.F64, 0)}, out, 1);
    assertClose("sum of squares", new double[] {0, dot(a, a) + dot(b, b), 0}, out.toDoubles());
  }

  /** C = op(A) op(B) + beta C by the definition, row-major. */
  private static double[] gemmRef(double[] a, double[] b, double[] c, int m, int n, int k, boolean ta, boolean tb,
      double beta) {
    double[] out = new double[m * n];
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double s = 0;
        for (int p = 0; p < k; p++) {
          s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
        }
        out[i * n + j] = s + beta * c[i * n + j];
      }
    }
    return out;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void gemmEveryTransposeAndBeta(Backend be) {
    int m = 3, n = 7, k = 5;
    double[] a = gaussian(6, m * k), b = gaussian(7, k * n), c = gaussian(8, m * n);
    for (boolean ta : new boolean[] {false, true}) {
      for (boolean tb : new boolean[] {false, true}) {
        for (double beta : new double[] {0, 1}) {
          Tensor tc = up(be, c, m, n);
          be.gemm(up(be, a, ta ? k : m, ta ? m : k), up(be, b, tb ? n : k, tb ? k : n), tc, ta, tb, beta);
          assertClose("gemm ta=" + ta + " tb=" + tb + " beta=" + beta, gemmRef(a, b, c, m, n, k, ta, tb, beta),
              tc.toDoubles());
        }
      }
    }
    Tensor tc = up(be, c, m, n);
    be.gemm(be.zeros(DType.F64, m, 0), be.zeros(DType.F64, 0, n), tc, false, false, 1);
    assertArrayEquals(c, tc.toDoubles(), "empty K, beta 1: C unchanged");
    be.gemm(be.zeros(DType.F64, m, 0), be.zeros(DType.F64, 0, n), tc, false, false, 0);
    assertArrayEquals(new double[m * n], tc.toDoubles(), "empty K, beta 0: zeros");
    be.gemm(be.zeros(DType.F64, 0, k), up(be, b, k, n), be.zeros(DType.F64, 0, n), false, false, 0);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void gemmGroupedAccumulatesInGroupOrder(Backend be) {
    // Three segments of 2, 0 and 3 rows of one activation matrix (as an expert bank's): forward products
    // into row segments, and weight gradients where segments 0 and 2 share one expert's gradient.
    int d = 4, f = 3;
    int[] rows = {2, 0, 3};
    double[] x = gaussian(9, 5 * d), dy = gaussian(10, 5 * f), w0 = gaussian(11, f * d), w1 = gaussian(12, f * d);
    Tensor tx = up(be, x, 5, d), tdy = up(be, dy, 5, f), tw0 = up(be, w0, f, d), tw1 = up(be, w1, f, d);
    Tensor[] xs = new Tensor[3], dys = new Tensor[3];
    int r = 0;
    for (int g = 0; g < 3; g++) {
      xs[g] = be.rows(tx, r, r + rows[g]);
      dys[g] = be.rows(tdy, r, r + rows[g]);
      r += rows[g];
    }
    Tensor h = be.zeros(DType.F64, 5, f);
    Tensor[] hs = {be.rows(h, 0, 2), be.rows(h, 2, 2), be.rows(h, 2, 5)};
    be.gemmGrouped(xs, new Tensor[] {tw0, tw1, tw1}, hs, false, true, 0);
    double[] want = new double[5 * f];
    double[] top = gemmRef(Arrays.copyOfRange(x, 0, 2 * d), w0, new double[2 * f], 2, f, d, false, true, 0);
    double[] bottom = gemmRef(Arrays.copyOfRange(x, 2 * d, 5 * d), w1, new double[3 * f], 3, f, d, false, true, 0);
    System.arraycopy(top, 0, want, 0, 2 * f);
    System.arraycopy(bottom, 0, want, 2 * f, 3 * f);
    assertClose("grouped forward", want, h.toDoubles());
    double[] g0 = gaussian(13, f * d);
    Tensor grad = up(be, g0, f, d);
    be.gemmGrouped(dys, xs, new Tensor[] {grad, tw1, grad}, true, false, 1);
    double[] step = gemmRef(Arrays.copyOfRange(dy, 0, 2 * f), Arrays.copyOfRange(x, 0, 2 * d), g0, f, d, 2, true,
        false, 1);
    step = gemmRef(Arrays.copyOfRange(dy, 2 * f, 5 * f), Arrays.copyOfRange(x, 2 * d, 5 * d), step, f, d, 3, true,
        false, 1);
    assertClose("grouped weight gradient over two segments", step, grad.toDoubles());
    assertArrayEquals(w1, tw1.toDoubles(), "an empty group leaves its C alone (beta 1)");
  }

  // ---- fused ops: definitions and finite differences ----

  @ParameterizedTest
  @MethodSource("backends")
  void rmsNorm(Backend be) {
    int n = 5, d = 6;
    double eps = 1e-5;
    double[] x = gaussian(14, n * d), w = gaussian(15, d), r = gaussian(16, n * d);
    Tensor y = be.zeros(DType.F64, n, d), rstd = be.zeros(DType.F64, n);
    be.rmsNormForward(up(be, x, n, d), up(be, w, d), eps, y, rstd);
    double[] want = new double[n * d], wantRstd = new double[n];
    for (int i = 0; i < n; i++) {
      double ms = 0;
      for (int j = 0; j < d; j++) {
        ms += x[i * d + j] * x[i * d + j] / d;
      }
      wantRstd[i] = 1 / Math.sqrt(ms + eps);
      for (int j = 0; j < d; j++) {
        want[i * d + j] = x[i * d + j] * wantRstd[i] * w[j];
      }
    }
    assertClose("rmsnorm y", want, y.toDoubles());
    assertClose("rmsnorm rstd", wantRstd, rstd.toDoubles());
    double[] dx0 = gaussian(17, n * d), dw0 = gaussian(18, d);
    Tensor dx = up(be, dx0, n, d), dw = up(be, dw0, d);
    be.rmsNormBackward(up(be, x, n, d), up(be, w, d), rstd, up(be, r, n, d), dx, dw);
    DoubleSupplier loss = () -> {
      Tensor out = be.zeros(DType.F64, n, d);
      be.rmsNormForward(up(be, x, n, d), up(be, w, d), eps, out, be.zeros(DType.F64, n));
      return dot(out.toDoubles(), r);
    };
    GradCheck.check("rmsnorm dx (accumulated)", x, minus(dx.toDoubles(), dx0), loss, 100);
    GradCheck.check("rmsnorm dw (accumulated)", w, minus(dw.toDoubles(), dw0), loss, 100);
  }

  private static double[] minus(double[] a, double[] b) {
    double[] out = new double[a.length];
    for (int i = 0; i < a.length; i++) {
      out[i] = a[i] - b[i];
    }
    return out;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void ropeLayoutRotatesHalvesAndItsTransposeIsTheBackward(Backend be) {
    int batch = 2, heads = 3, seq = 4, hd = 6, half = hd / 2, d = heads * hd;
    double theta = 100;
    double[] cos = new double[seq * half], sin = new double[seq * half];
    for (int p = 0; p < seq; p++) {
      for (int j = 0; j < half; j++) {
        cos[p * half + j] = Math.cos(p * Math.pow(theta, -(double) j / half));
        sin[p * half + j] = Math.sin(p * Math.pow(theta, -(double) j / half));
      }
    }
    double[] x = gaussian(19, batch * seq * d), y = gaussian(20, batch * heads * seq * hd);
    for (boolean rotate : new boolean[] {true, false}) {
      Tensor tc = rotate ? up(be, cos, seq, half) : null, ts = rotate ? up(be, sin, seq, half) : null;
      Tensor split = be.zeros(DType.F64, batch * heads, seq, hd);
      be.ropeLayout(up(be, x, batch * seq, d), split, batch, heads, tc, ts, false);
      double[] want = new double[y.length];
      for (int b = 0; b < batch; b++) {
        for (int h = 0; h < heads; h++) {
          for (int t = 0; t < seq; t++) {
            int ro = (b * seq + t) * d + h * hd, so = ((b * heads + h) * seq + t) * hd;
            for (int j = 0; j < half; j++) {
              double c = rotate ? cos[t * half + j] : 1, s = rotate ? sin[t * half + j] : 0;
              double x1 = x[ro + j], x2 = x[ro + j + half];
              want[so + j] = x1 * c - x2 * s;
              want[so + j + half] = x1 * s + x2 * c;
            }
          }
        }
      }
      assertClose("rope rotate=" + rotate, want, split.toDoubles());
      Tensor rows = be.zeros(DType.F64, batch * seq, d);
      be.ropeLayout(rows, up(be, y, batch * heads, seq, hd), batch, heads, tc, ts, true);
      // <R x, y> = <x, R^T y>: the rows direction is the transpose.
      assertEquals(dot(want, y), dot(x, rows.toDoubles()), TOL * 100, "transpose, rotate=" + rotate);
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void attention(Backend be) {
    int bh = 3, t = 5, hd = 4;
    double scale = 1 / Math.sqrt(hd);
    double[] q = gaussian(21, bh * t * hd), k = gaussian(22, bh * t * hd), v = gaussian(23, bh * t * hd);
    double[] r = gaussian(24, bh * t * hd);
    Tensor state = be.zeros(DType.F64, be.attentionStateShape(bh, t));
    Tensor out = be.zeros(DType.F64, bh, t, hd);
    be.attentionForward(up(be, q, bh, t, hd), up(be, k, bh, t, hd), up(be, v, bh, t, hd), out, state, scale);
    double[] want = new double[bh * t * hd];
    for (int h = 0; h < bh; h++) {
      for (int i = 0; i < t; i++) {
        double[] s = new double[i + 1];
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) {
          for (int c = 0; c < hd; c++) {
            s[j] += q[(h * t + i) * hd + c] * k[(h * t + j) * hd + c] * scale;
          }
          max = Math.max(max, s[j]);
        }
        for (int j = 0; j <= i; j++) {
          s[j] = Math.exp(s[j] - max);
          sum += s[j];
        }
        for (int j = 0; j <= i; j++) {
          for (int c = 0; c < hd; c++) {
            want[(h * t + i) * hd + c] += s[j] / sum * v[(h * t + j) * hd + c];
          }
        }
      }
    }
    assertClose("causal attention", want, out.toDoubles());
    Tensor dq = be.zeros(DType.F64, bh, t, hd), dk = be.zeros(DType.F64, bh, t, hd), dv = be.zeros(DType.F64, bh, t, hd);
    be.attentionBackward(up(be, q, bh, t, hd), up(be, k, bh, t, hd), up(be, v, bh, t, hd), state,
        up(be, r, bh, t, hd), dq, dk, dv, scale);
    DoubleSupplier loss = () -> {
      Tensor o = be.zeros(DType.F64, bh, t, hd);
      be.attentionForward(up(be, q, bh, t, hd), up(be, k, bh, t, hd), up(be, v, bh, t, hd), o,
          be.zeros(DType.F64, be.attentionStateShape(bh, t)), scale);
      return dot(o.toDoubles(), r);
    };
    GradCheck.check("attention dq", q, dq.toDoubles(), loss, 60);
    GradCheck.check("attention dk", k, dk.toDoubles(), loss, 60);
    GradCheck.check("attention dv", v, dv.toDoubles(), loss, 60);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void activations(Backend be) {
    int n = 4, f = 7;
    double[] h1 = gaussian(25, n * f), h3 = gaussian(26, n * f), r = gaussian(27, n * f);
    for (int i = 0; i < h1.length; i++) {
      h1[i] *= 2;
    }
    double c = Math.sqrt(2 / Math.PI);
    double[] swiglu = new double[n * f], gelu = new double[n * f];
    for (int i = 0; i < h1.length; i++) {
      swiglu[i] = h1[i] / (1 + Math.exp(-h1[i])) * h3[i];
      gelu[i] = 0.5 * h1[i] * (1 + Math.tanh(c * (h1[i] + 0.044715 * Math.pow(h1[i], 3))));
    }
    Tensor a = be.zeros(DType.F64, n, f), saved = be.zeros(DType.F64, n, f);
    be.swigluForward(up(be, h1, n, f), up(be, h3, n, f), a, saved);
    assertClose("swiglu", swiglu, a.toDoubles());
    Tensor dh1 = be.zeros(DType.F64, n, f), dh3 = be.zeros(DType.F64, n, f);
    be.swigluBackward(up(be, h1, n, f), up(be, h3, n, f), saved, up(be, r, n, f), dh1, dh3);
    DoubleSupplier swigluLoss = () -> {
      Tensor o = be.zeros(DType.F64, n, f);
      be.swigluForward(up(be, h1, n, f), up(be, h3, n, f), o, be.zeros(DType.F64, n, f));
      return dot(o.toDoubles(), r);
    };
    GradCheck.check("swiglu dh1", h1, dh1.toDoubles(), swigluLoss, 100);
    GradCheck.check("swiglu dh3", h3, dh3.toDoubles(), swigluLoss, 100);
    Tensor g = be.zeros(DType.F64, n, f);
    be.geluForward(up(be, h1, n, f), g);
    assertClose("gelu (tanh)", gelu, g.toDoubles());
    Tensor dg = be.zeros(DType.F64, n, f);
    be.geluBackward(up(be, h1, n, f), up(be, r, n, f), dg);
    GradCheck.check("gelu dh1", h1, dg.toDoubles(), () -> {
      Tensor o = be.zeros(DType.F64, n, f);
      be.geluForward(up(be, h1, n, f), o);
      return dot(o.toDoubles(), r);
    }, 100);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void crossEntropy(Backend be) {
    int n = 6, v = 5;
    double[] logits = gaussian(28, n * v);
    int[] targets = {0, 4, 2, 2, 1, 3};
    double want = 0;
    for (int i = 0; i < n; i++) {
      double sum = 0;
      for (int j = 0; j < v; j++) {
        sum += Math.exp(logits[i * v + j]);
      }
      want += Math.log(sum) - logits[i * v + targets[i]];
    }
    Tensor sum = be.zeros(DType.F64, 1), tl = up(be, logits, n, v);
    be.crossEntropy(tl, ints(be, targets), 0, sum);
    assertClose("ce sum", new double[] {want}, sum.toDoubles());
    assertArrayEquals(logits, tl.toDoubles(), "count 0 leaves the logits");
    be.crossEntropy(tl, ints(be, targets), 10, sum);
    assertClose("ce sum with gradient", new double[] {want}, sum.toDoubles());
    GradCheck.check("ce dlogits", logits, tl.toDoubles(), () -> {
      Tensor s = be.zeros(DType.F64, 1);
      be.crossEntropy(up(be, logits, n, v), ints(be, targets), 0, s);
      return s.toDoubles()[0] / 10;
    }, 100);
  }

  // ---- rows ----

  @ParameterizedTest
  @MethodSource("backends")
  void rowGathersAndScatters(Backend be) {
    int d = 3;
    double[] src = gaussian(29, 5 * d), dst0 = gaussian(30, 4 * d);
    Tensor s = up(be, src, 5, d);
    Tensor g = be.zeros(DType.F64, 4, d);
    be.gather(s, ints(be, 4, -1, 0, 4, 9), 4, g); // count 4: the fifth index is not read
    double[] want = new double[4 * d];
    int[] from = {4, -1, 0, 4};
    for (int i = 0; i < 4; i++) {
      for (int c = 0; c < d; c++) {
        want[i * d + c] = from[i] < 0 ? 0 : src[from[i] * d + c];
      }
    }
    assertClose("gather", want, g.toDoubles());

    Tensor sc = up(be, dst0, 4, d);
    double[] scale = {0.5, 2, -1};
    be.scatter(s, ints(be, 1, 2, 3), up(be, scale, 3), ints(be, 3, -1, 0), 3, sc);
    want = dst0.clone();
    for (int c = 0; c < d; c++) {
      want[3 * d + c] = 0.5 * src[d + c];
      want[c] = -1 * src[3 * d + c];
    }
    assertClose("scatter", want, sc.toDoubles());

    Tensor sa = up(be, dst0, 4, d);
    be.scatterAdd(s, ints(be, 0, 1, -1, 4), up(be, new double[] {2, 3, 4, 5}, 4), ints(be, 1, 1, 2, -1), 4, sa);
    want = dst0.clone();
    for (int c = 0; c < d; c++) {
      want[d + c] += 2 * src[c];
      want[d + c] += 3 * src[d + c];
    }
    assertClose("scatterAdd (negative rows skipped)", want, sa.toDoubles());
    Tensor id = up(be, dst0, 4, d);
    be.scatterAdd(be.rows(s, 0, 4), null, null, ints(be, 2, 0, 2, 3), 4, id);
    want = dst0.clone();
    int[] to = {2, 0, 2, 3};
    for (int i = 0; i < 4; i++) {
      for (int c = 0; c < d; c++) {
        want[to[i] * d + c] += src[i * d + c];
      }
    }
    assertClose("scatterAdd identity rows, scale 1", want, id.toDoubles());

    Tensor dots = be.zeros(DType.F64, 3);
    be.rowDots(s, ints(be, 0, 4, 2), up(be, dst0, 4, d), ints(be, 3, 0, -1), 3, dots);
    double d0 = 0, d1 = 0;
    for (int c = 0; c < d; c++) {
      d0 += src[c] * dst0[3 * d + c];
      d1 += src[4 * d + c] * dst0[c];
    }
    assertClose("rowDots", new double[] {d0, d1, 0}, dots.toDoubles());
  }

  // ---- routing ----

  private static double[] softmaxRows(double[] l, int t, int e, double[] lse) {
    double[] p = new double[t * e];
    for (int i = 0; i < t; i++) {
      double max = Double.NEGATIVE_INFINITY, sum = 0;
      for (int j = 0; j < e; j++) {
        max = Math.max(max, l[i * e + j]);
      }
      for (int j = 0; j < e; j++) {
        sum += Math.exp(l[i * e + j] - max);
      }
      for (int j = 0; j < e; j++) {
        p[i * e + j] = Math.exp(l[i * e + j] - max) / sum;
      }
      lse[i] = max + Math.log(sum);
    }
    return p;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void routerSoftmaxTopKAndTies(Backend be) {
    int t = 4, e = 5, k = 2;
    double[] l = gaussian(31, t * e);
    l[5] = l[6] = l[7] = l[8] = l[9] = 0.3; // token 1: a five-way tie, the lower experts win
    double[] lse = new double[t];
    double[] p = softmaxRows(l, t, e, lse);
    Tensor probs = be.zeros(DType.F64, t, e), tl = be.zeros(DType.F64, t);
    be.routerSoftmax(up(be, l, t, e), probs, tl);
    assertClose("softmax", p, probs.toDoubles());
    assertClose("lse", lse, tl.toDoubles());
    double[] bias = {0, 0, 0, 0.5, 0};
    for (boolean useBias : new boolean[] {false, true}) {
      for (boolean normalize : new boolean[] {false, true}) {
        Tensor token = be.zeros(DType.I32, t * k), expert = be.zeros(DType.I32, t * k), gate = be.zeros(DType.F64, t * k);
        be.routeTopK(probs, useBias ? up(be, bias, e) : null, k, normalize, token, expert, gate);
        double[] wantToken = new double[t * k], wantExpert = new double[t * k], wantGate = new double[t * k];
        for (int i = 0; i < t; i++) {
          Integer[] order = new Integer[e];
          for (int j = 0; j < e; j++) {
            order[j] = j;
          }
          final int row = i;
          Arrays.sort(order, (x, y) -> Double.compare(score(p, bias, useBias, row, y, e), score(p, bias, useBias, row, x, e)));
          double sum = p[i * e + order[0]] + p[i * e + order[1]];
          for (int s = 0; s < k; s++) {
            wantToken[i * k + s] = i;
            wantExpert[i * k + s] = order[s];
            wantGate[i * k + s] = p[i * e + order[s]] / (normalize ? sum : 1);
          }
        }
        String what = "top-k bias=" + useBias + " normalize=" + normalize;
        assertArrayEquals(wantToken, token.toDoubles(), what + " tokens");
        assertArrayEquals(wantExpert, expert.toDoubles(), what + " experts");
        assertClose(what + " gates", wantGate, gate.toDoubles());
      }
    }
  }

  private static double score(double[] p, double[] bias, boolean useBias, int i, int j, int e) {
    return p[i * e + j] + (useBias ? bias[j] : 0);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void expertChoiceAndHash(Backend be) {
    int t = 6, e = 3, c = 2;
    double[] l = gaussian(32, t * e);
    l[0] = l[3] = 2; // tokens 0 and 1 tie on expert 0: the earlier one wins
    double[] p = softmaxRows(l, t, e, new double[t]);
    Tensor token = be.zeros(DType.I32, c * e), expert = be.zeros(DType.I32, c * e), gate = be.zeros(DType.F64, c * e);
    be.routeExpertChoice(up(be, p, t, e), c, token, expert, gate);
    boolean[] chosen = new boolean[t * e];
    for (int j = 0; j < e; j++) {
      List<Integer> order = new ArrayList<>();
      for (int i = 0; i < t; i++) {
        order.add(i);
      }
      final int col = j;
      order.sort((x, y) -> Double.compare(p[y * e + col], p[x * e + col])); // stable: earlier token first
      for (int s = 0; s < c; s++) {
        chosen[order.get(s) * e + j] = true;
      }
    }
    List<double[]> want = new ArrayList<>();
    for (int i = 0; i < t; i++) {
      for (int j = 0; j < e; j++) {
        if (chosen[i * e + j]) {
          want.add(new double[] {i, j, p[i * e + j]});
        }
      }
    }
    double[] tk = token.toDoubles(), ex = expert.toDoubles(), g = gate.toDoubles();
    for (int a = 0; a < want.size(); a++) {
      assertArrayEquals(want.get(a), new double[] {tk[a], ex[a], g[a]}, "expert choice assignment " + a);
    }
    int[] ids = {0, 1, 77, 1 << 20, -5};
    Tensor ht = be.zeros(DType.I32, 5), he = be.zeros(DType.I32, 5), hg = be.zeros(DType.F64, 5);
    be.routeHash(ints(be, ids), 7, ht, he, hg);
    for (int i = 0; i < ids.length; i++) {
      assertEquals(i, ht.toDoubles()[i]);
      assertEquals(Router.hashExpert(ids[i], 7), he.toDoubles()[i]);
      assertEquals(1.0, hg.toDoubles()[i]);
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void planDispatchKeepsByCapacityAndLaysOutByDestination(Backend be) {
    int t = 6, e = 4, a = 12, capacity = 2;
    int[] token = new int[a], expert = new int[a];
    double[] gate = gaussian(33, a);
    for (int i = 0; i < a; i++) {
      token[i] = i / 2;
      expert[i] = (i * 7 + i / 3) % e;
    }
    double[] l = gaussian(34, t * e), lse = new double[t];
    double[] p = softmaxRows(l, t, e, lse);
    int[] order = {2, 3, 0, 1}; // rank 0 holds experts 2 and 3, rank 1 holds 0 and 1
    for (boolean byGate : new boolean[] {false, true}) {
      Tensor slot = be.zeros(DType.I32, a), send = be.zeros(DType.I32, a), stats = be.zeros(DType.F64, 3 * e + 1);
      be.planDispatch(ints(be, token), ints(be, expert), up(be, gate, a), up(be, p, t, e), up(be, lse, t), capacity,
          byGate, ints(be, order), slot, send, stats);
      Integer[] priority = new Integer[a];
      for (int i = 0; i < a; i++) {
        priority[i] = i;
      }
      if (byGate) {
        Arrays.sort(priority, (x, y) -> Double.compare(gate[y], gate[x]));
      }
      boolean[] keep = new boolean[a];
      double[] want = new double[3 * e + 1];
      for (int i = 0; i < a; i++) {
        want[expert[i]]++;
        int as = priority[i];
        if (want[e + expert[as]] < capacity) {
          keep[as] = true;
          want[e + expert[as]]++;
        }
      }
      for (int i = 0; i < t; i++) {
        for (int j = 0; j < e; j++) {
          want[2 * e + j] += p[i * e + j];
        }
        want[3 * e] += lse[i] * lse[i];
      }
      assertClose("stats byGate=" + byGate, want, stats.toDoubles());
      double[] wantSlot = new double[a];
      List<Double> wantSend = new ArrayList<>();
      for (int x : order) {
        for (int i = 0; i < a; i++) {
          if (expert[i] == x && keep[i]) {
            wantSlot[i] = wantSend.size();
            wantSend.add((double) token[i]);
          }
        }
      }
      for (int i = 0; i < a; i++) {
        if (!keep[i]) {
          wantSlot[i] = -1;
        }
      }
      assertArrayEquals(wantSlot, slot.toDoubles(), "slots byGate=" + byGate);
      double[] gotSend = Arrays.copyOf(send.toDoubles(), wantSend.size());
      assertArrayEquals(wantSend.stream().mapToDouble(Double::doubleValue).toArray(), gotSend, "send tokens");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void routerBackwardMatchesFiniteDifferences(Backend be) {
    int t = 5, e = 4, k = 2;
    double zScale = 0.3;
    double[] w = gaussian(35, t * k), aux = gaussian(36, e);
    for (String mode : new String[] {"top-k normalised", "top-k raw", "expert choice"}) {
      double[] l = gaussian(37, t * e);
      boolean ec = mode.equals("expert choice"), normalize = mode.equals("top-k normalised");
      int assignments = ec ? 2 * e : t * k;
      double[] dGate = Arrays.copyOf(gaussian(38, assignments), assignments);
      // The loss through the routing as a function of the logits: selection is constant near l (no ties).
      java.util.function.Function<double[], Tensor[]> route = logits -> {
        Tensor probs = be.zeros(DType.F64, t, e), lse = be.zeros(DType.F64, t);
        be.routerSoftmax(up(be, logits, t, e), probs, lse);
        Tensor token = be.zeros(DType.I32, assignments), expert = be.zeros(DType.I32, assignments);
        Tensor gate = be.zeros(DType.F64, assignments);
        if (ec) {
          be.routeExpertChoice(probs, 2, token, expert, gate);
        } else {
          be.routeTopK(probs, null, k, normalize, token, expert, gate);
        }
        return new Tensor[] {token, expert, gate, probs, lse};
      };
      DoubleSupplier loss = () -> {
        Tensor[] r = route.apply(l);
        double[] p = r[3].toDoubles(), lse = r[4].toDoubles();
        double s = dot(r[2].toDoubles(), dGate);
        for (int i = 0; i < t; i++) {
          for (int j = 0; j < e; j++) {
            s += aux[j] * p[i * e + j];
          }
          s += zScale * lse[i] * lse[i];
        }
        return s;
      };
      Tensor[] r = route.apply(l);
      Tensor dLogits = be.zeros(DType.F64, t, e);
      be.routerBackward(r[0], r[1], r[2], up(be, dGate, assignments), r[3], r[4], up(be, aux, e), zScale,
          normalize ? k : 0, dLogits);
      GradCheck.check("router backward, " + mode, l, dLogits.toDoubles(), loss, 100);
    }
  }

  // ---- optimizer ----

  @ParameterizedTest
  @MethodSource("backends")
  void adamwFollowsPyTorchsOrder(Backend be) {
    int n = 9;
    double b1 = 0.9, b2 = 0.95, eps = 1e-8, lr = 1e-2, wd = 0.1;
    double[] w = gaussian(39, n), m = new double[n], v = new double[n];
    Tensor tw = up(be, w, n), tm = be.zeros(DType.F64, n), tv = be.zeros(DType.F64, n);
    for (int step = 1; step <= 3; step++) {
      double[] g = gaussian(40 + step, n);
      double bc1 = 1 - Math.pow(b1, step), bc2Sqrt = Math.sqrt(1 - Math.pow(b2, step));
      be.adamw(tw, up(be, g, n), tm, tv, b1, b2, eps, 1 - lr * wd, lr / bc1, bc2Sqrt);
      for (int i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] = w[i] * (1 - lr * wd) - lr / bc1 * m[i] / (Math.sqrt(v[i]) / bc2Sqrt + eps);
      }
    }
    assertClose("adamw w", w, tw.toDoubles());
    assertClose("adamw m", m, tm.toDoubles());
    assertClose("adamw v", v, tv.toDoubles());
  }
}

package io.moespark.ops.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The CUDA kernels' own sources (moe_kernels.cu), compiled for the host and launched through {@link
 * CudaKernels} on the {@link HostDeviceLayer}, against the CPU backend on the same inputs: forward and
 * backward, shapes that are not multiples of the block (and wider than one block), one row, empty inputs.
 *
 * <p>Tolerances, from the arithmetic: both sides compute these in double from F32 inputs and round once to
 * F32, so they may differ by one F32 rounding (1 ulp of the result) where a reduction's order differs
 * (a block tree against a loop: the double sums differ by about d 2^-53 relative, far below an F32 ulp,
 * except at a rounding tie); SwiGLU's sigmoid is F32 on both sides with different libraries (glibc's expf,
 * ND4J's), a few ulp each through three products: 8 ulp. F64 results (rstd, the loss sum): 1e-12 relative.
 */
class CudaKernelsTest {
  private final Backend cpu = CpuBackend.create();
  private final HostDeviceLayer device = new HostDeviceLayer();
  private final CudaKernels kernels = new CudaKernels(device);
  private final Random random = new Random(7);

  @AfterEach
  void close() {
    device.close();
  }

  @ParameterizedTest(name = "rows={0} d={1}")
  @CsvSource({"0,8", "1,1", "3,7", "5,300", "2,513"})
  void rmsNormMatchesTheCpuBackend(int rows, int d) {
    double eps = 1e-5;
    Tensor x = gaussian(rows, d), w = gaussian(d), dy = gaussian(rows, d), dx0 = gaussian(rows, d), dw0 = gaussian(d);
    long xd = upload(x), wd = upload(w), dyd = upload(dy), dxd = upload(dx0), dwd = upload(dw0);
    long yd = device.alloc(4L * rows * d), rstdd = device.alloc(8L * rows);

    Tensor y = cpu.zeros(DType.F32, rows, d), rstd = cpu.zeros(DType.F64, rows);
    cpu.rmsNormForward(x, w, eps, y, rstd);
    kernels.rmsNormForward(xd, wd, yd, rstdd, rows, d, eps);
    assertUlps("y", cpu.toDoubles(y), download(yd, DType.F32, rows * d), 1);
    assertRelative("rstd", cpu.toDoubles(rstd), download(rstdd, DType.F64, rows), 1e-12);

    cpu.rmsNormBackward(x, w, rstd, dy, dx0, dw0); // accumulates into dx0, dw0
    kernels.rmsNormBackward(xd, wd, rstdd, dyd, dxd, dwd, rows, d);
    assertUlps("dx", cpu.toDoubles(dx0), download(dxd, DType.F32, rows * d), 1);
    // dw: the same F32 accumulation in the same row order on both sides, one rounding per row.
    assertUlps("dw", cpu.toDoubles(dw0), download(dwd, DType.F32, d), Math.max(1, rows));
  }

  @ParameterizedTest(name = "n={0}")
  @CsvSource({"0", "1", "255", "257", "1000"})
  void swigluMatchesTheCpuBackend(int n) {
    Tensor h1 = gaussian(n), h3 = gaussian(n), da = gaussian(n);
    long h1d = upload(h1), h3d = upload(h3), dad = upload(da);
    long ad = device.alloc(4L * n), savedd = device.alloc(4L * n), dh1d = device.alloc(4L * n), dh3d = device.alloc(4L * n);
    Tensor a = cpu.zeros(DType.F32, n), saved = cpu.zeros(DType.F32, n), dh1 = cpu.zeros(DType.F32, n),
        dh3 = cpu.zeros(DType.F32, n);
    cpu.swigluForward(h1, h3, a, saved);
    kernels.swigluForward(h1d, h3d, ad, savedd, n);
    assertUlps("a", cpu.toDoubles(a), download(ad, DType.F32, n), 8);
    assertUlps("sigmoid", cpu.toDoubles(saved), download(savedd, DType.F32, n), 8);
    cpu.swigluBackward(h1, h3, saved, da, dh1, dh3);
    kernels.swigluBackward(h1d, h3d, savedd, dad, dh1d, dh3d, n);
    assertUlps("dh1", cpu.toDoubles(dh1), download(dh1d, DType.F32, n), 8);
    assertUlps("dh3", cpu.toDoubles(dh3), download(dh3d, DType.F32, n), 8);
  }

  @ParameterizedTest(name = "rows={0} vocab={1} count={2}")
  @CsvSource({"0,5,0", "1,1,1", "4,300,0", "4,300,9", "3,1031,3"})
  void crossEntropyMatchesTheCpuBackend(int rows, int vocab, long count) {
    Tensor logits = gaussian(rows, vocab);
    int[] t = new int[rows];
    for (int r = 0; r < rows; r++) {
      t[r] = random.nextInt(vocab);
    }
    Tensor targets = ints(t);
    long zd = upload(logits), td = upload(targets), rowLoss = device.alloc(8L * rows), sum = device.alloc(8);
    Tensor lossSum = cpu.zeros(DType.F64, 1);
    cpu.crossEntropy(logits, targets, count, lossSum);
    kernels.crossEntropy(zd, td, rowLoss, rows, vocab, count, sum);
    assertRelative("loss sum", cpu.toDoubles(lossSum), download(sum, DType.F64, 1), 1e-12);
    assertUlps(count > 0 ? "dlogits" : "logits (unchanged)", cpu.toDoubles(logits), download(zd, DType.F32, rows * vocab),
        count > 0 ? 1 : 0);
  }

  @ParameterizedTest(name = "n={0}")
  @CsvSource({"0", "1", "300"})
  void adamwMatchesTheCpuBackend(int n) {
    Tensor w = gaussian(n), g = gaussian(n), m = gaussian(n), v = cpu.zeros(DType.F32, n);
    double[] vv = new double[n];
    for (int i = 0; i < n; i++) {
      vv[i] = random.nextDouble();
    }
    cpu.fromDoubles(vv, v);
    long wd = upload(w), gd = upload(g), md = upload(m), vd = upload(v);
    cpu.adamw(w, g, m, v, 0.9, 0.95, 1e-8, 1 - 3e-4 * 0.1, 3e-4 / (1 - 0.9), Math.sqrt(1 - 0.95));
    kernels.adamw(wd, gd, md, vd, n, 0.9, 0.95, 1e-8, 1 - 3e-4 * 0.1, 3e-4 / (1 - 0.9), Math.sqrt(1 - 0.95));
    // The same double arithmetic on the same F32 inputs, one rounding to F32 each: equal.
    assertUlps("w", cpu.toDoubles(w), download(wd, DType.F32, n), 0);
    assertUlps("m", cpu.toDoubles(m), download(md, DType.F32, n), 0);
    assertUlps("v", cpu.toDoubles(v), download(vd, DType.F32, n), 0);
  }

  @ParameterizedTest(name = "n={0}")
  @CsvSource({"0", "1", "300"})
  void geluAndElementwiseOpsMatchTheCpuBackend(int n) {
    Tensor h1 = gaussian(n), da = gaussian(n), x = gaussian(n);
    long h1d = upload(h1), dad = upload(da), xd = upload(x), ad = device.alloc(4L * n), dh1d = device.alloc(4L * n);
    Tensor a = cpu.zeros(DType.F32, n), dh1 = cpu.zeros(DType.F32, n);
    cpu.geluForward(h1, a);
    kernels.geluForward(h1d, ad, n);
    // Double inside on both sides; tanh from glibc against Java's (within an ulp of a double): 1 F32 ulp.
    assertUlps("gelu", cpu.toDoubles(a), download(ad, DType.F32, n), 1);
    cpu.geluBackward(h1, da, dh1);
    kernels.geluBackward(h1d, dad, dh1d, n);
    assertUlps("gelu backward", cpu.toDoubles(dh1), download(dh1d, DType.F32, n), 1);

    cpu.add(h1, x);
    kernels.add(h1d, xd, n);
    assertUlps("add", cpu.toDoubles(h1), download(h1d, DType.F32, n), 0);
    cpu.scale(h1, -0.37);
    kernels.scale(h1d, -0.37f, n);
    assertUlps("scale", cpu.toDoubles(h1), download(h1d, DType.F32, n), 1);
    cpu.fill(h1, 2.5);
    kernels.fill(h1d, 2.5f, n);
    assertUlps("fill", cpu.toDoubles(h1), download(h1d, DType.F32, n), 0);
  }

  @ParameterizedTest(name = "count={0} d={1}")
  @CsvSource({"0,4", "1,1", "9,7", "6,300"})
  void rowOpsMatchTheCpuBackend(int count, int d) {
    int rows = 5;
    Tensor src = gaussian(rows, d), other = gaussian(rows, d);
    int[] from = new int[count], to = new int[count], perm = new int[count];
    double[] g = new double[count];
    for (int i = 0; i < count; i++) {
      from[i] = i % 4 == 3 ? -1 : random.nextInt(rows); // negative rows: dropped assignments
      to[i] = i % 5 == 4 ? -1 : random.nextInt(rows);   // repeated destinations add in index order
      perm[i] = i % 3 == 2 ? -1 : i;
      g[i] = random.nextGaussian();
    }
    Tensor fromT = ints(from), toT = ints(to), permT = ints(perm), gT = cpu.zeros(DType.F64, count);
    cpu.fromDoubles(g, gT);
    long srcd = upload(src), otherd = upload(other), fromd = upload(fromT), tod = upload(toT), permd = upload(permT),
        gd = upload(gT);

    Tensor gathered = cpu.zeros(DType.F32, count, d);
    long gatheredd = device.alloc(4L * count * d);
    cpu.gather(src, fromT, count, gathered);
    kernels.gather(srcd, fromd, count, d, gatheredd);
    assertUlps("gather", cpu.toDoubles(gathered), download(gatheredd, DType.F32, count * d), 0);

    // scatter: the gathered rows to their own slots (each destination once), scaled, and unscaled.
    Tensor scattered = cpu.zeros(DType.F32, count, d);
    long scatteredd = device.alloc(4L * count * d);
    device.zero(scatteredd, 4L * count * d); // rows no index names keep what was there
    cpu.scatter(gathered, permT, gT, permT, count, scattered);
    kernels.scatter(gatheredd, permd, gd, permd, count, d, scatteredd);
    assertUlps("scatter", cpu.toDoubles(scattered), download(scatteredd, DType.F32, count * d), 0);
    cpu.scatter(gathered, permT, null, permT, count, scattered);
    kernels.scatter(gatheredd, permd, 0, permd, count, d, scatteredd);
    assertUlps("scatter unscaled", cpu.toDoubles(scattered), download(scatteredd, DType.F32, count * d), 0);

    // scatterAdd: the same F32 additions in the same index order on both sides.
    cpu.scatterAdd(src, fromT, gT, toT, count, other);
    kernels.scatterAdd(srcd, fromd, gd, tod, count, d, otherd);
    assertUlps("scatterAdd", cpu.toDoubles(other), download(otherd, DType.F32, rows * d), 0);
    Tensor identity = gaussian(count, d);
    long identityd = upload(identity);
    cpu.scatterAdd(identity, null, null, toT, count, other);
    kernels.scatterAdd(identityd, 0, 0, tod, count, d, otherd);
    assertUlps("scatterAdd, identity rows, unscaled", cpu.toDoubles(other), download(otherd, DType.F32, rows * d), 0);

    // rowDots: double sums in another order; bounded by d 2^-52 times the sum of |products|.
    Tensor dots = cpu.zeros(DType.F64, count);
    long dotsd = device.alloc(8L * count);
    cpu.rowDots(src, ints(perm(count, rows)), other, toT, count, dots);
    kernels.rowDots(srcd, upload(ints(perm(count, rows))), otherd, tod, count, d, dotsd);
    double[] expected = cpu.toDoubles(dots), actual = download(dotsd, DType.F64, count);
    double[] a = cpu.toDoubles(src), b = cpu.toDoubles(other);
    int[] ar = perm(count, rows);
    for (int i = 0; i < count; i++) {
      double bound = 0;
      for (int c = 0; to[i] >= 0 && c < d; c++) {
        bound += Math.abs(a[ar[i] * d + c] * b[to[i] * d + c]);
      }
      assertTrue(Math.abs(expected[i] - actual[i]) <= d * 0x1p-52 * bound, "rowDots[" + i + "]: " + expected[i] + " vs " + actual[i]);
    }
  }

  @Test
  void sumOfSquaresOverPartsMatchesTheCpuBackend() {
    long[] lengths = {0, 1, 300, 70_000};
    Tensor[] parts = new Tensor[lengths.length];
    long[] addresses = new long[lengths.length];
    int partials = 0;
    for (int p = 0; p < lengths.length; p++) {
      parts[p] = gaussian(lengths[p]);
      addresses[p] = upload(parts[p]);
      partials += CudaKernels.sumSquaresBlocks(lengths[p]);
    }
    Tensor out = cpu.zeros(DType.F64, 2);
    long outd = device.alloc(16), partialsd = device.alloc(8L * partials);
    device.zero(outd, 16);
    cpu.sumSquares(parts, out, 1);
    kernels.sumSquares(addresses, lengths, partialsd, outd, 1);
    double exact = 0;
    long n = 0;
    for (Tensor p : parts) {
      for (double v : cpu.toDoubles(p)) {
        exact += v * v;
      }
      n += p.length();
    }
    double[] actual = download(outd, DType.F64, 2);
    assertEquals(0.0, actual[0], "only out[index] is written");
    // The kernels add in double: positive terms in any order are within n 2^-53 of the exact sum.
    assertRelative("sum of squares against the double sum", new double[] {exact}, new double[] {actual[1]}, n * 0x1p-53);
    // The CPU backend sums in double in element order: within n 2^-53 relative as well.
    assertRelative("sum of squares against the CPU backend", new double[] {cpu.toDoubles(out)[1]},
        new double[] {actual[1]}, n * 0x1p-53);
  }

  @ParameterizedTest(name = "batchHeads={0} t={1}")
  @CsvSource({"1,1", "3,5", "1,260"})
  void causalSoftmaxMatchesTheCpuBackendsAttention(int bh, int t) {
    int hd = 4;
    double scale = 1 / Math.sqrt(hd);
    Tensor q = gaussian(bh, t, hd), k = gaussian(bh, t, hd), v = gaussian(bh, t, hd), dOut = gaussian(bh, t, hd);
    Tensor state = cpu.zeros(DType.F32, cpu.attentionStateShape(bh, t)), out = cpu.zeros(DType.F32, bh, t, hd);
    // The scores and the probabilities' gradient as the CPU backend's attention makes them: a GEMM per head.
    Tensor scores = cpu.zeros(DType.F32, bh, t, t), dProbs = cpu.zeros(DType.F32, bh, t, t);
    for (int i = 0; i < bh; i++) {
      cpu.gemm(cpu.slice(q, i), cpu.slice(k, i), cpu.slice(scores, i), false, true, 0);
      cpu.gemm(cpu.slice(dOut, i), cpu.slice(v, i), cpu.slice(dProbs, i), false, true, 0);
    }
    long s = upload(scores), ds = upload(dProbs);
    cpu.attentionForward(q, k, v, out, state, scale);
    kernels.causalSoftmaxForward(s, bh, t, scale);
    // One F32 rounding of each exp on both sides, the double sums in another order: 2 ulp.
    assertUlps("probabilities", cpu.toDoubles(cpu.slice(state, 0)), download(s, DType.F32, bh * t * t), 2);
    Tensor dq = cpu.zeros(DType.F32, bh, t, hd), dk = cpu.zeros(DType.F32, bh, t, hd), dv = cpu.zeros(DType.F32, bh, t, hd);
    cpu.attentionBackward(q, k, v, state, dOut, dq, dk, dv, scale); // leaves d(scores) in the state's second half
    kernels.causalSoftmaxBackward(s, ds, bh, t, scale);
    double[] expected = cpu.toDoubles(cpu.slice(state, 1)), actual = download(ds, DType.F32, bh * t * t);
    // d = scale p (d - dot): the dot in double in another order, relative to the row's sum |d p|; then 2 ulp.
    double[] p = cpu.toDoubles(cpu.slice(state, 0)), d0 = cpu.toDoubles(dProbs);
    for (int r = 0; r < bh * t; r++) {
      double bound = 0;
      for (int j = 0; j < t; j++) {
        bound += Math.abs(d0[r * t + j] * p[r * t + j]);
      }
      for (int j = 0; j < t; j++) {
        int e = r * t + j;
        double tol = 2 * Math.ulp((float) expected[e]) + scale * p[e] * t * 0x1p-52 * bound;
        assertTrue(Math.abs(expected[e] - actual[e]) <= tol, "d(scores)[" + e + "]: " + expected[e] + " vs " + actual[e]);
      }
    }
  }

  @ParameterizedTest(name = "rotate={0} toRows={1}")
  @CsvSource({"false,false", "false,true", "true,false", "true,true"})
  void ropeLayoutMatchesTheCpuBackend(boolean rotate, boolean toRows) {
    int batch = 2, heads = 3, seq = 5, hd = 6, half = hd / 2;
    Tensor rows = gaussian(batch * seq, heads * hd), split = gaussian(batch * heads, seq, hd);
    Tensor cos = cpu.zeros(DType.F64, seq, half), sin = cpu.zeros(DType.F64, seq, half);
    double[] c = new double[seq * half], sn = new double[seq * half];
    for (int i = 0; i < c.length; i++) {
      double angle = (i / half) / Math.pow(10000, 2.0 * (i % half) / hd);
      c[i] = Math.cos(angle);
      sn[i] = Math.sin(angle);
    }
    cpu.fromDoubles(c, cos);
    cpu.fromDoubles(sn, sin);
    long rowsd = upload(rows), splitd = upload(split), cosd = upload(cos), sind = upload(sin);
    cpu.ropeLayout(rows, split, batch, heads, rotate ? cos : null, rotate ? sin : null, toRows);
    kernels.ropeLayout(rowsd, splitd, batch, heads, seq, hd, rotate ? cosd : 0, rotate ? sind : 0, toRows);
    // The same double products, one rounding to F32 (1 ulp for a fused multiply-add on a GPU).
    assertUlps("rows", cpu.toDoubles(rows), download(rowsd, DType.F32, batch * seq * heads * hd), 1);
    assertUlps("heads", cpu.toDoubles(split), download(splitd, DType.F32, batch * heads * seq * hd), 1);
  }

  @ParameterizedTest(name = "t={0} e={1} k={2} normalize={3} bias={4}")
  @CsvSource({"0,4,2,true,false", "1,3,1,false,false", "37,8,2,true,true", "37,8,3,false,false", "50,5,5,true,true"})
  void topKRoutingPlanAndBackwardMatchTheCpuBackend(int t, int e, int k, boolean normalize, boolean withBias) {
    Tensor logits = tiedLogits(t, e);
    Tensor probs = cpu.zeros(DType.F64, t, e), lse = cpu.zeros(DType.F64, t);
    long logitsd = upload(logits), probsd = device.alloc(8L * t * e), lsed = device.alloc(8L * t);
    cpu.routerSoftmax(logits, probs, lse);
    kernels.routerSoftmax(logitsd, probsd, lsed, t, e);
    // exp and log of glibc against Java's (each within an ulp): a few ulp of a double.
    assertRelative("probs", cpu.toDoubles(probs), download(probsd, DType.F64, t * e), 1e-15);
    assertRelative("lse", cpu.toDoubles(lse), download(lsed, DType.F64, t), 1e-15);

    // From here on both sides read the same probabilities: choices, gates and sums must be equal.
    probsd = upload(probs);
    lsed = upload(lse);
    Tensor bias = null;
    long biasd = 0;
    if (withBias) {
      bias = cpu.zeros(DType.F64, e);
      double[] b = new double[e];
      b[e / 2] = 0.25; // enough to move choices
      b[0] = -0.1;
      cpu.fromDoubles(b, bias);
      biasd = upload(bias);
    }
    int a = t * k;
    Tensor token = cpu.zeros(DType.I32, a), expert = cpu.zeros(DType.I32, a), gate = cpu.zeros(DType.F64, a);
    long tokend = device.alloc(4L * a), expertd = device.alloc(4L * a), gated = device.alloc(8L * a);
    cpu.routeTopK(probs, bias, k, normalize, token, expert, gate);
    kernels.routeTopK(probsd, biasd, t, e, k, normalize, tokend, expertd, gated);
    assertIntsEqual("token", token, tokend, a);
    assertIntsEqual("expert", expert, expertd, a);
    assertUlps("gate", cpu.toDoubles(gate), download(gated, DType.F64, a), 0);

    checkPlanAndBackward(t, e, a, token, expert, gate, probs, lse, normalize ? k : 0,
        tokend, expertd, gated, probsd, lsed);
  }

  @ParameterizedTest(name = "t={0} e={1} capacity={2}")
  @CsvSource({"1,2,1", "30,6,5", "30,6,30"})
  void expertChoiceRoutingPlanAndBackwardMatchTheCpuBackend(int t, int e, int capacity) {
    Tensor logits = tiedLogits(t, e);
    Tensor probs = cpu.zeros(DType.F64, t, e), lse = cpu.zeros(DType.F64, t);
    cpu.routerSoftmax(logits, probs, lse);
    long probsd = upload(probs), lsed = upload(lse);
    int a = capacity * e;
    Tensor token = cpu.zeros(DType.I32, a), expert = cpu.zeros(DType.I32, a), gate = cpu.zeros(DType.F64, a);
    long tokend = device.alloc(4L * a), expertd = device.alloc(4L * a), gated = device.alloc(8L * a),
        chosen = device.alloc(4L * t * e);
    cpu.routeExpertChoice(probs, capacity, token, expert, gate);
    kernels.routeExpertChoice(probsd, t, e, capacity, chosen, tokend, expertd, gated);
    assertIntsEqual("token", token, tokend, a);
    assertIntsEqual("expert", expert, expertd, a);
    assertUlps("gate", cpu.toDoubles(gate), download(gated, DType.F64, a), 0);
    checkPlanAndBackward(t, e, a, token, expert, gate, probs, lse, 0, tokend, expertd, gated, probsd, lsed);
  }

  @Test
  void hashRoutingMatchesTheCpuBackend() {
    int t = 300, e = 7;
    int[] ids = new int[t];
    for (int i = 0; i < t; i++) {
      ids[i] = i < 3 ? new int[] {0, -1, Integer.MIN_VALUE}[i] : random.nextInt(50_000);
    }
    Tensor idsT = ints(ids), token = cpu.zeros(DType.I32, t), expert = cpu.zeros(DType.I32, t),
        gate = cpu.zeros(DType.F64, t);
    long tokend = device.alloc(4L * t), expertd = device.alloc(4L * t), gated = device.alloc(8L * t);
    cpu.routeHash(idsT, e, token, expert, gate);
    kernels.routeHash(upload(idsT), t, e, tokend, expertd, gated);
    assertIntsEqual("token", token, tokend, t);
    assertIntsEqual("expert", expert, expertd, t);
    assertUlps("gate", cpu.toDoubles(gate), download(gated, DType.F64, t), 0);
  }

  /** planDispatch (by position and by gate, with dropping, experts in a shuffled order) and routerBackward. */
  private void checkPlanAndBackward(int t, int e, int a, Tensor token, Tensor expert, Tensor gate, Tensor probs,
      Tensor lse, int normalizedTopK, long tokend, long expertd, long gated, long probsd, long lsed) {
    int[] order = new int[e];
    for (int j = 0; j < e; j++) {
      order[j] = e - 1 - j; // the destination-major order: here the experts reversed
    }
    Tensor orderT = ints(order);
    long orderd = upload(orderT);
    for (boolean byGate : new boolean[] {false, true}) {
      int capacity = Math.max(1, a / e - 1); // some drop
      Tensor slot = cpu.zeros(DType.I32, a), send = cpu.zeros(DType.I32, Math.max(1, a)),
          stats = cpu.zeros(DType.F64, 3 * e + 1);
      long slotd = device.alloc(4L * a), sendd = device.alloc(4L * Math.max(1, a)), statsd = device.alloc(8L * (3 * e + 1)),
          rank = device.alloc(4L * a), work = device.alloc(4L * (a + 3 * e));
      cpu.fill(send, 0);
      cpu.planDispatch(token, expert, gate, probs, lse, capacity, byGate, orderT, slot, send, stats);
      kernels.planDispatch(tokend, expertd, gated, probsd, lsed, t, a, e, capacity, byGate, orderd, slotd, sendd, statsd,
          rank, work);
      assertIntsEqual("slot (byGate " + byGate + ")", slot, slotd, a);
      int rows = (int) java.util.Arrays.stream(cpu.toDoubles(slot)).filter(x -> x >= 0).count();
      assertIntsEqual("send rows (byGate " + byGate + ")", cpu.view(send, 0, rows), sendd, rows);
      assertUlps("stats (byGate " + byGate + ")", cpu.toDoubles(stats), download(statsd, DType.F64, 3 * e + 1), 0);
    }
    Tensor dGate = cpu.zeros(DType.F64, a), aux = cpu.zeros(DType.F64, e), dLogits = cpu.zeros(DType.F32, t, e);
    double[] dg = new double[a], ax = new double[e];
    for (int i = 0; i < a; i++) {
      dg[i] = random.nextGaussian();
    }
    for (int j = 0; j < e; j++) {
      ax[j] = random.nextGaussian() * 0.01;
    }
    cpu.fromDoubles(dg, dGate);
    cpu.fromDoubles(ax, aux);
    long dLogitsd = device.alloc(4L * t * e), dp = device.alloc(8L * t * e);
    cpu.routerBackward(token, expert, gate, dGate, probs, lse, aux, 1e-3, normalizedTopK, dLogits);
    kernels.routerBackward(tokend, expertd, gated, upload(dGate), probsd, lsed, upload(aux), 1e-3, normalizedTopK, t, e, a,
        dp, dLogitsd);
    // The same double arithmetic in the same order per token, one rounding to F32.
    assertUlps("dLogits", cpu.toDoubles(dLogits), download(dLogitsd, DType.F32, t * e), 0);
  }

  /** Router logits with many exact ties (whole numbers): the choices' tie rules are exercised. */
  private Tensor tiedLogits(int t, int e) {
    double[] v = new double[t * e];
    for (int i = 0; i < v.length; i++) {
      v[i] = Math.round(random.nextGaussian() * 1.5);
    }
    Tensor l = cpu.zeros(DType.F32, t, e);
    cpu.fromDoubles(v, l);
    return l;
  }

  private void assertIntsEqual(String what, Tensor expected, long actual, int n) {
    ByteBuffer b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
    device.copyToHost(actual, b);
    double[] e = cpu.toDoubles(expected);
    for (int i = 0; i < n; i++) {
      assertEquals((int) e[i], b.getInt(4 * i), what + "[" + i + "]");
    }
  }

  @ParameterizedTest(name = "m={0} n={1} k={2} transA={3} transB={4} beta={5}")
  @CsvSource({"3,5,7,false,false,0", "3,5,7,true,false,1", "3,5,7,false,true,0", "3,5,7,true,true,1",
      "1,1,1,false,true,0", "17,9,33,true,false,1", "4,6,0,false,false,1", "4,6,0,true,true,0", "0,6,3,false,false,0"})
  void gemmMatchesTheCpuBackend(int m, int n, int k, boolean transA, boolean transB, double beta) {
    Tensor a = transA ? gaussian(k, m) : gaussian(m, k), b = transB ? gaussian(n, k) : gaussian(k, n), c = gaussian(m, n);
    long ad = upload(a), bd = upload(b), cd = upload(c);
    double[] c0 = cpu.toDoubles(c), av = cpu.toDoubles(a), bv = cpu.toDoubles(b);
    cpu.gemm(a, b, c, transA, transB, beta);
    kernels.gemm(RunConfig.Precision.FP32, ad, (int) a.size(0), (int) a.size(1), bd, (int) b.size(0), (int) b.size(1), cd,
        transA, transB, beta, 1);
    double[] expected = cpu.toDoubles(c), actual = download(cd, DType.F32, m * n);
    // F32 products summed in some order (OpenBLAS) against double sums: within k 2^-24 of sum |a b| + |beta c|.
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double bound = Math.abs(beta * c0[i * n + j]);
        for (int l = 0; l < k; l++) {
          bound += Math.abs((transA ? av[l * m + i] : av[i * k + l]) * (transB ? bv[j * k + l] : bv[l * n + j]));
        }
        int e = i * n + j;
        assertTrue(Math.abs(expected[e] - actual[e]) <= (k + 2) * 0x1p-24 * bound,
            "C[" + i + "," + j + "]: " + expected[e] + " vs " + actual[e]);
      }
    }
  }

  /**
   * TF32 and bf16 GEMMs multiply the operands rounded to their formats (to nearest even) and accumulate
   * in F32 or wider: they equal the CPU backend's F32 GEMM of the rounded operands within its summation
   * bound, and differ from the unrounded product by more than that somewhere (the mode takes effect).
   */
  @ParameterizedTest(name = "{0} transA={1}")
  @CsvSource({"TF32,false", "TF32,true", "BF16,false", "BF16,true"})
  void reducedPrecisionGemmsMultiplyTheRoundedOperands(RunConfig.Precision precision, boolean transA) {
    int m = 17, n = 9, k = 33;
    Tensor a = transA ? gaussian(k, m) : gaussian(m, k), b = gaussian(k, n);
    Tensor ar = rounded(a, precision), br = rounded(b, precision), c = cpu.zeros(DType.F32, m, n);
    Tensor exact = cpu.zeros(DType.F32, m, n);
    cpu.gemm(ar, br, c, transA, false, 0);
    cpu.gemm(a, b, exact, transA, false, 0);
    long ad, bd;
    if (precision == RunConfig.Precision.BF16) { // the operands travel as bf16 values
      ad = upload(converted(a, DType.BF16));
      bd = upload(converted(b, DType.BF16));
    } else {
      ad = upload(a);
      bd = upload(b);
    }
    long cd = device.alloc(4L * m * n);
    kernels.gemm(precision, ad, (int) a.size(0), (int) a.size(1), bd, k, n, cd, transA, false, 0, 1);
    double[] expected = cpu.toDoubles(c), unrounded = cpu.toDoubles(exact), actual = download(cd, DType.F32, m * n);
    double[] av = cpu.toDoubles(ar), bv = cpu.toDoubles(br);
    boolean differs = false;
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double bound = 0;
        for (int l = 0; l < k; l++) {
          bound += Math.abs((transA ? av[l * m + i] : av[i * k + l]) * bv[l * n + j]);
        }
        int e = i * n + j;
        double tol = (k + 2) * 0x1p-24 * bound;
        assertTrue(Math.abs(expected[e] - actual[e]) <= tol, "C[" + i + "," + j + "]: " + expected[e] + " vs " + actual[e]);
        differs |= Math.abs(unrounded[e] - actual[e]) > tol;
      }
    }
    assertTrue(differs, precision + ": no element differs from the F32 product of the unrounded operands");
  }

  /** t's values in another type (the CPU backend's conversion: round to nearest even). */
  private Tensor converted(Tensor t, DType type) {
    Tensor r = cpu.empty(type, t.shape());
    cpu.copy(t, r);
    return r;
  }

  /** t's values rounded to TF32 (10 mantissa bits, to nearest even) or bf16 (the CPU backend's conversion), as F32. */
  private Tensor rounded(Tensor t, RunConfig.Precision precision) {
    if (precision == RunConfig.Precision.BF16) {
      return converted(converted(t, DType.BF16), DType.F32);
    }
    double[] v = cpu.toDoubles(t);
    for (int i = 0; i < v.length; i++) {
      int bits = Float.floatToRawIntBits((float) v[i]);
      v[i] = Float.intBitsToFloat((bits + 0xfff + ((bits >>> 13) & 1)) & ~0x1fff);
    }
    Tensor r = cpu.empty(DType.F32, t.shape());
    cpu.fromDoubles(v, r);
    return r;
  }

  @Test
  void aWrongLeadingDimensionIsRefusedAsCublasWould() {
    long a = device.alloc(4 * 12), b = device.alloc(4 * 12), c = device.alloc(4 * 9);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> device.gemm(RunConfig.Precision.FP32, false, false, 3, 3, 4, 1f, a, 2, 0, b, 4, 0, 0f, c, 3, 0, 1));
    assertTrue(e.getMessage().contains("parameter 8"), e.getMessage()); // lda < m, as the reference BLAS numbers it
    assertThrows(IllegalArgumentException.class, () -> device.gemm(RunConfig.Precision.FP32, false, false, 3, 3, 4, 1f, a, 3, 0, b, 5, 0, 0f, c, 3, 0, 1),
        "ldb 5 reads past B");
  }

  @Test
  void bf16RoundingIsTheCpuBackendsBitForBit() {
    // Ties (round to even either way), the largest finite, infinities, a NaN, subnormals, random values.
    float[] special = {1.0f, Float.intBitsToFloat(0x3f808000), Float.intBitsToFloat(0x3f818000), -2.5f,
        3.3895314e38f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE, -Float.MIN_NORMAL, 0f, -0f};
    int n = special.length + 500;
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = i < special.length ? special[i] : (float) (random.nextGaussian() * Math.pow(10, random.nextInt(20) - 10));
    }
    Tensor src = cpu.zeros(DType.F32, n), bf = cpu.zeros(DType.BF16, n);
    cpu.fromDoubles(v, src);
    cpu.copy(src, bf);
    long srcd = upload(src), bfd = device.alloc(2L * n), back = device.alloc(4L * n);
    kernels.toBf16(srcd, bfd, n);
    ByteBuffer expected = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
    cpu.toHost(bf, expected);
    ByteBuffer actual = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
    device.copyToHost(bfd, actual);
    for (int i = 0; i < n; i++) {
      assertEquals(expected.getShort(2 * i), actual.getShort(2 * i), "bf16 bits of " + v[i]);
    }
    kernels.fromBf16(bfd, back, n);
    assertUlps("bf16 back to F32", cpu.toDoubles(bf), download(back, DType.F32, n), 0);
  }

  @Test
  void theHostLayerRefusesWhatAGpuWouldFaultOn() {
    long a = device.alloc(16);
    assertThrows(IllegalArgumentException.class, () -> device.copyToDevice(ByteBuffer.allocate(20), a),
        "a copy past the allocation");
    device.free(a);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> kernels.swigluForward(a, a, a, a, 1), "a freed buffer as an argument");
    assertTrue(e.getMessage().contains("moe_swiglu_forward argument 0"), e.getMessage());
    long b = device.alloc(8);
    IllegalStateException unknown = assertThrows(IllegalStateException.class,
        () -> device.launch("moe_no_such_kernel", 1, 1, KernelArgs.of().ptr(b)));
    assertTrue(unknown.getMessage().contains("no such kernel"), unknown.getMessage());
  }

  private Tensor gaussian(long... shape) {
    long n = 1;
    for (long s : shape) {
      n *= s;
    }
    double[] v = new double[(int) n];
    for (int i = 0; i < n; i++) {
      v[i] = random.nextGaussian();
    }
    Tensor t = cpu.zeros(DType.F32, shape);
    cpu.fromDoubles(v, t);
    return t;
  }

  private Tensor ints(int[] v) {
    Tensor t = cpu.zeros(DType.I32, v.length);
    cpu.fromInts(v, t);
    return t;
  }

  /** Row i of count rows taken from rows rows in turn (the a side of rowDots). */
  private static int[] perm(int count, int rows) {
    int[] p = new int[count];
    for (int i = 0; i < count; i++) {
      p[i] = (i * 3) % rows;
    }
    return p;
  }

  private long upload(Tensor t) {
    ByteBuffer b = ByteBuffer.allocate((int) (t.length() * t.dtype().width())).order(ByteOrder.LITTLE_ENDIAN);
    cpu.toHost(t, b);
    b.flip();
    long address = device.alloc(b.remaining());
    device.copyToDevice(b, address);
    return address;
  }

  private double[] download(long address, DType type, int n) {
    ByteBuffer b = ByteBuffer.allocate(n * type.width()).order(ByteOrder.LITTLE_ENDIAN);
    device.copyToHost(address, b);
    double[] out = new double[n];
    for (int i = 0; i < n; i++) {
      out[i] = switch (type) {
        case F32 -> b.getFloat(4 * i);
        case F64 -> b.getDouble(8 * i);
        default -> throw new IllegalArgumentException(type.toString());
      };
    }
    return out;
  }

  private static void assertUlps(String what, double[] expected, double[] actual, int ulps) {
    assertEquals(expected.length, actual.length, what + ": length");
    for (int i = 0; i < expected.length; i++) {
      double tol = ulps * Math.ulp((float) expected[i]);
      boolean same = Double.compare(expected[i], actual[i]) == 0;
      assertTrue(same || Math.abs(expected[i] - actual[i]) <= tol, what + "[" + i + "]: expected " + expected[i]
          + ", got " + actual[i] + " (" + ulps + " ulp allowed)");
    }
  }

  private static void assertRelative(String what, double[] expected, double[] actual, double rel) {
    assertEquals(expected.length, actual.length, what + ": length");
    for (int i = 0; i < expected.length; i++) {
      assertTrue(Math.abs(expected[i] - actual[i]) <= rel * Math.abs(expected[i]) + Double.MIN_NORMAL,
          what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
    }
  }
}

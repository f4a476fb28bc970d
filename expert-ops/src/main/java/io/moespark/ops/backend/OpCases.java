package io.moespark.ops.backend;

import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Every {@link Backend} operation of a training step on seeded inputs of odd sizes, through the interface
 * only: run on one backend and {@link #write recorded}, run on another and {@link #compare compared}. The
 * GPU check records them with the CPU backend where the bundle is built and replays them on the GPU
 * (CudaKernelsTest compares the kernels op by op in CI; this is the same comparison on the device itself).
 *
 * <p>Tolerances, per output, relative to the output's largest magnitude: F32 results 1e-5 (the two sides
 * differ by F32 roundings in another order, fused multiply-adds and the device's exp/log/tanh, each within a
 * few ulp, 1e-7, summed over the longest reduction's terms), F64 routing arithmetic 1e-12, indices exactly.
 */
public final class OpCases {
  /** One output of a case: its values in c order and the tolerance relative to its largest magnitude. */
  public record Output(String name, double[] values, double tol) {}

  private static final double F32 = 1e-5, F64 = 1e-12, EXACT = 0;

  private OpCases() {}

  /** The case names, in order. */
  public static List<String> names() {
    return List.of("gemm", "rmsnorm", "swiglu", "gelu", "cross_entropy", "attention", "rope", "rows", "routing_topk",
        "routing_expert_choice", "routing_hash", "adamw", "sum_squares", "elementwise");
  }

  /** Runs case {@code name} on {@code be} (inputs from the case's own seed); tensors go back to its arena. */
  public static List<Output> run(String name, Backend be) {
    Run r = new Run(be, name.hashCode());
    try {
      switch (name) {
        case "gemm" -> r.gemm();
        case "rmsnorm" -> r.rmsNorm();
        case "swiglu" -> r.swiglu();
        case "gelu" -> r.gelu();
        case "cross_entropy" -> r.crossEntropy();
        case "attention" -> r.attention();
        case "rope" -> r.rope();
        case "rows" -> r.rows();
        case "routing_topk" -> r.routing(false, false);
        case "routing_expert_choice" -> r.routing(true, false);
        case "routing_hash" -> r.routing(false, true);
        case "adamw" -> r.adamw();
        case "sum_squares" -> r.sumSquares();
        case "elementwise" -> r.elementwise();
        default -> throw new IllegalArgumentException("no op case '" + name + "' (known: " + names() + ")");
      }
    } finally {
      r.tensors.forEach(be::free);
    }
    return r.out;
  }

  /** Every case on {@code be}, by name. */
  public static Map<String, List<Output>> runAll(Backend be) {
    Map<String, List<Output>> all = new LinkedHashMap<>();
    for (String n : names()) {
      all.put(n, run(n, be));
    }
    return all;
  }

  /**
   * The outputs that differ from the recorded ones by more than their tolerance, one line each with the
   * worst element (empty when all agree); {@code summary} receives one line per case.
   */
  public static List<String> compare(Map<String, List<Output>> expected, Map<String, List<Output>> actual,
      java.util.function.Consumer<String> summary) {
    List<String> bad = new ArrayList<>();
    for (var e : expected.entrySet()) {
      List<Output> got = actual.get(e.getKey());
      double caseWorst = 0;
      for (int o = 0; o < e.getValue().size(); o++) {
        Output want = e.getValue().get(o), have = got.get(o);
        if (want.values().length != have.values().length) {
          bad.add(e.getKey() + "/" + want.name() + ": " + have.values().length + " values, recorded "
              + want.values().length);
          continue;
        }
        double scale = 0;
        for (double v : want.values()) {
          scale = Math.max(scale, Math.abs(v));
        }
        double worst = 0;
        int at = -1;
        for (int i = 0; i < want.values().length; i++) {
          double d = Math.abs(want.values()[i] - have.values()[i]);
          boolean nanBoth = Double.isNaN(want.values()[i]) && Double.isNaN(have.values()[i]);
          if (!nanBoth && !(d <= worst)) {
            worst = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
            at = i;
          }
        }
        double rel = scale == 0 ? worst : worst / scale;
        caseWorst = Math.max(caseWorst, rel);
        if (rel > want.tol()) {
          bad.add(String.format(java.util.Locale.ROOT, "%s/%s: element %d is %s, recorded %s (%.2e of the largest "
              + "magnitude, allowed %.0e)", e.getKey(), want.name(), at, have.values()[at], want.values()[at], rel,
              want.tol()));
        }
      }
      summary.accept(String.format(java.util.Locale.ROOT, "%-22s %d outputs, worst %.2e of the largest magnitude",
          e.getKey(), e.getValue().size(), caseWorst));
    }
    return bad;
  }

  public static void write(Map<String, List<Output>> cases, DataOutputStream out) throws IOException {
    out.writeInt(cases.size());
    for (var e : cases.entrySet()) {
      out.writeUTF(e.getKey());
      out.writeInt(e.getValue().size());
      for (Output o : e.getValue()) {
        out.writeUTF(o.name());
        out.writeDouble(o.tol());
        out.writeInt(o.values().length);
        for (double v : o.values()) {
          out.writeDouble(v);
        }
      }
    }
  }

  public static Map<String, List<Output>> read(DataInputStream in) throws IOException {
    Map<String, List<Output>> cases = new LinkedHashMap<>();
    int n = in.readInt();
    for (int c = 0; c < n; c++) {
      String name = in.readUTF();
      int outputs = in.readInt();
      List<Output> list = new ArrayList<>();
      for (int o = 0; o < outputs; o++) {
        String on = in.readUTF();
        double tol = in.readDouble();
        double[] v = new double[in.readInt()];
        for (int i = 0; i < v.length; i++) {
          v[i] = in.readDouble();
        }
        list.add(new Output(on, v, tol));
      }
      cases.put(name, list);
    }
    return cases;
  }

  /** One case's run: its inputs from a seeded generator, its tensors (freed after), its outputs. */
  private static final class Run {
    final Backend be;
    final SplittableRandom random;
    final List<Tensor> tensors = new ArrayList<>();
    final List<Output> out = new ArrayList<>();

    Run(Backend be, long seed) {
      this.be = be;
      this.random = new SplittableRandom(seed);
    }

    Tensor gaussian(DType type, long... shape) {
      Tensor t = be.empty(type, shape);
      double[] v = new double[(int) t.length()];
      for (int i = 0; i < v.length; i++) {
        v[i] = gauss();
      }
      be.fromDoubles(v, t);
      return keep(t);
    }

    double gauss() {
      double u = 1 - random.nextDouble(), w = random.nextDouble();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * w);
    }

    Tensor zeros(DType type, long... shape) {
      return keep(be.zeros(type, shape));
    }

    Tensor ints(int... v) {
      Tensor t = be.empty(DType.I32, v.length);
      be.fromInts(v, t);
      return keep(t);
    }

    Tensor doubles(DType type, double[] v, long... shape) {
      Tensor t = be.empty(type, shape);
      be.fromDoubles(v, t);
      return keep(t);
    }

    Tensor keep(Tensor t) {
      tensors.add(t);
      return t;
    }

    void emit(String name, Tensor t, double tol) {
      out.add(new Output(name, be.toDoubles(t), tol));
    }

    void gemm() {
      Tensor a = gaussian(DType.F32, 37, 45), b = gaussian(DType.F32, 45, 29), bt = gaussian(DType.F32, 29, 45);
      Tensor at = gaussian(DType.F32, 45, 37), c = gaussian(DType.F32, 37, 29);
      Tensor nn = zeros(DType.F32, 37, 29), nt = zeros(DType.F32, 37, 29), tn = zeros(DType.F32, 37, 29);
      be.gemm(a, b, nn, false, false, 0);
      be.gemm(a, bt, nt, false, true, 0);
      be.gemm(at, b, tn, true, false, 0);
      be.gemm(a, b, c, false, false, 1);
      emit("nn", nn, F32);
      emit("nt", nt, F32);
      emit("tn", tn, F32);
      emit("nn_beta1", c, F32);
      Tensor[] ga = {be.rows(a, 0, 10), be.rows(a, 10, 10), be.rows(a, 10, 37)};
      Tensor[] gb = {b, b, b};
      Tensor g = zeros(DType.F32, 37, 29);
      Tensor[] gc = {be.rows(g, 0, 10), be.rows(g, 10, 10), be.rows(g, 10, 37)};
      be.gemmGrouped(ga, gb, gc, false, false, 0);
      emit("grouped", g, F32);
    }

    void rmsNorm() {
      Tensor x = gaussian(DType.F32, 70, 300), w = gaussian(DType.F32, 300), dy = gaussian(DType.F32, 70, 300);
      Tensor y = zeros(DType.F32, 70, 300), rstd = zeros(DType.F64, 70), dx = gaussian(DType.F32, 70, 300);
      Tensor dw = gaussian(DType.F32, 300);
      be.rmsNormForward(x, w, 1e-5, y, rstd);
      be.rmsNormBackward(x, w, rstd, dy, dx, dw);
      emit("y", y, F32);
      emit("rstd", rstd, F32); // from F32 inputs, in double on both sides
      emit("dx", dx, F32);
      emit("dw", dw, F32);
    }

    void swiglu() {
      Tensor h1 = gaussian(DType.F32, 5000), h3 = gaussian(DType.F32, 5000), da = gaussian(DType.F32, 5000);
      Tensor a = zeros(DType.F32, 5000), s = zeros(DType.F32, 5000), dh1 = zeros(DType.F32, 5000);
      Tensor dh3 = zeros(DType.F32, 5000);
      be.swigluForward(h1, h3, a, s);
      be.swigluBackward(h1, h3, s, da, dh1, dh3);
      emit("a", a, F32);
      emit("dh1", dh1, F32);
      emit("dh3", dh3, F32);
    }

    void gelu() {
      Tensor h = gaussian(DType.F32, 5000), da = gaussian(DType.F32, 5000);
      Tensor a = zeros(DType.F32, 5000), dh = zeros(DType.F32, 5000);
      be.geluForward(h, a);
      be.geluBackward(h, da, dh);
      emit("a", a, F32);
      emit("dh", dh, F32);
    }

    void crossEntropy() {
      int rows = 64, vocab = 1031;
      Tensor logits = gaussian(DType.F32, rows, vocab), loss = zeros(DType.F64, 1);
      int[] t = new int[rows];
      for (int i = 0; i < rows; i++) {
        t[i] = random.nextInt(vocab);
      }
      be.crossEntropy(logits, ints(t), rows, loss);
      emit("loss_sum", loss, F32);
      emit("dlogits", logits, F32);
    }

    void attention() {
      long bh = 6, t = 33, hd = 16;
      Tensor q = gaussian(DType.F32, bh, t, hd), k = gaussian(DType.F32, bh, t, hd), v = gaussian(DType.F32, bh, t, hd);
      Tensor o = zeros(DType.F32, bh, t, hd), state = zeros(DType.F32, be.attentionStateShape(bh, t));
      Tensor dOut = gaussian(DType.F32, bh, t, hd), dq = zeros(DType.F32, bh, t, hd), dk = zeros(DType.F32, bh, t, hd);
      Tensor dv = zeros(DType.F32, bh, t, hd);
      double scale = 1 / Math.sqrt(hd);
      be.attentionForward(q, k, v, o, state, scale);
      be.attentionBackward(q, k, v, state, dOut, dq, dk, dv, scale);
      emit("out", o, F32);
      emit("dq", dq, F32);
      emit("dk", dk, F32);
      emit("dv", dv, F32);
    }

    void rope() {
      int batch = 2, heads = 3, seq = 11, hd = 8;
      double[] cs = new double[seq * hd / 2], sn = new double[seq * hd / 2];
      for (int i = 0; i < cs.length; i++) {
        double angle = (i / (hd / 2)) * Math.pow(10000, -2.0 * (i % (hd / 2)) / hd);
        cs[i] = Math.cos(angle);
        sn[i] = Math.sin(angle);
      }
      Tensor cos = doubles(DType.F64, cs, seq, hd / 2), sin = doubles(DType.F64, sn, seq, hd / 2);
      Tensor rows = gaussian(DType.F32, batch * seq, heads * hd), split = zeros(DType.F32, batch * heads, seq, hd);
      Tensor back = zeros(DType.F32, batch * seq, heads * hd);
      be.ropeLayout(rows, split, batch, heads, cos, sin, false);
      be.ropeLayout(back, split, batch, heads, cos, sin, true);
      emit("heads", split, F32);
      emit("rows", back, F32);
    }

    void rows() {
      int n = 40, d = 70;
      Tensor src = gaussian(DType.F32, n, d);
      int[] from = new int[n], perm = new int[n];
      double[] scale = new double[n];
      for (int i = 0; i < n; i++) {
        from[i] = i % 7 == 3 ? -1 : random.nextInt(n);
        perm[i] = i;
        scale[i] = gauss();
      }
      for (int i = n - 1; i > 0; i--) {
        int j = random.nextInt(i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
      }
      Tensor fromT = ints(from), permT = ints(perm), scaleT = doubles(DType.F64, scale, n);
      Tensor gathered = zeros(DType.F32, n, d), scattered = zeros(DType.F32, n, d), summed = gaussian(DType.F32, n, d);
      Tensor dots = zeros(DType.F64, n);
      be.gather(src, fromT, n, gathered);
      be.scatter(src, permT, scaleT, permT, n, scattered);
      be.scatterAdd(src, fromT, scaleT, permT, n, summed);
      be.rowDots(src, permT, gathered, fromT, n, dots);
      emit("gather", gathered, EXACT);
      emit("scatter", scattered, F32);
      emit("scatter_add", summed, F32);
      emit("row_dots", dots, F32);
    }

    void routing(boolean expertChoice, boolean hash) {
      int t = 100, e = 8, k = 2;
      Tensor logits = gaussian(DType.F32, t, e), probs = zeros(DType.F64, t, e), lse = zeros(DType.F64, t);
      be.routerSoftmax(logits, probs, lse);
      int a = expertChoice ? e * 25 : hash ? t : t * k;
      Tensor token = zeros(DType.I32, a), expert = zeros(DType.I32, a), gate = zeros(DType.F64, a);
      if (expertChoice) {
        be.routeExpertChoice(probs, 25, token, expert, gate);
      } else if (hash) {
        int[] ids = new int[t];
        for (int i = 0; i < t; i++) {
          ids[i] = random.nextInt(5000);
        }
        be.routeHash(ints(ids), e, token, expert, gate);
      } else {
        double[] bias = new double[e];
        for (int i = 0; i < e; i++) {
          bias[i] = 0.01 * gauss();
        }
        be.routeTopK(probs, doubles(DType.F64, bias, e), k, true, token, expert, gate);
      }
      int[] order = {3, 1, 7, 0, 5, 2, 6, 4};
      Tensor slot = zeros(DType.I32, a), sendToken = zeros(DType.I32, a), stats = zeros(DType.F64, 3L * e + 1);
      be.planDispatch(token, expert, gate, hash ? null : probs, hash ? null : lse, 22, !hash, ints(order), slot,
          sendToken, stats);
      emit("probs", probs, F32);
      emit("lse", lse, F32);
      emit("token", token, EXACT);
      emit("expert", expert, EXACT);
      emit("gate", gate, F32);
      emit("slot", slot, EXACT);
      emit("send_token", sendToken, EXACT);
      emit("stats", stats, F32);
      if (!hash) {
        double[] aux = new double[e];
        for (int i = 0; i < e; i++) {
          aux[i] = 0.1 * gauss();
        }
        Tensor dGate = gaussian(DType.F64, a), dLogits = zeros(DType.F32, t, e);
        be.routerBackward(token, expert, gate, dGate, probs, lse, doubles(DType.F64, aux, e), 1e-3,
            expertChoice ? 0 : k, dLogits);
        emit("dlogits", dLogits, F32);
      }
    }

    void adamw() {
      Tensor w = gaussian(DType.F32, 3000), g = gaussian(DType.F32, 3000), m = gaussian(DType.F32, 3000);
      double[] vv = new double[3000];
      for (int i = 0; i < vv.length; i++) {
        vv[i] = random.nextDouble();
      }
      Tensor v = doubles(DType.F32, vv, 3000);
      be.adamw(w, g, m, v, 0.9, 0.95, 1e-8, 1 - 3e-4 * 0.1, 3e-4 / (1 - 0.9), Math.sqrt(1 - 0.95));
      emit("w", w, F32);
      emit("m", m, F32);
      emit("v", v, F32);
    }

    void sumSquares() {
      Tensor[] parts = {gaussian(DType.F32, 1), gaussian(DType.F32, 300000), gaussian(DType.F32, 257)};
      Tensor out = zeros(DType.F64, 2);
      be.sumSquares(parts, out, 1);
      emit("sum", out, F64 * 1e3); // in double on both sides, in other orders: 300258 terms, n 2^-53 = 3e-11
    }

    void elementwise() {
      Tensor x = gaussian(DType.F32, 1000), y = gaussian(DType.F32, 1000), bf = zeros(DType.BF16, 1000);
      Tensor wide = zeros(DType.F64, 1000), filled = zeros(DType.F32, 33);
      be.add(y, x);
      be.scale(y, 0.37);
      be.copy(x, bf);
      be.copy(x, wide);
      be.fill(filled, -1.25);
      emit("add_scale", y, F32);
      emit("to_bf16", bf, EXACT); // of the inputs, the same F32 values on both sides
      emit("to_f64", wide, EXACT);
      emit("fill", filled, EXACT);
    }
  }
}

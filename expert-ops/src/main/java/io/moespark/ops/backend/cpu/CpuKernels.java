package io.moespark.ops.backend.cpu;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarReverseSubtraction;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Sigmoid;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The fused loops of the CPU backend: one pass per row where ND4J would make several passes with
 * temporaries. Rows are independent and split over {@link Parallel}'s threads; sums across rows (the
 * RMSNorm gain gradient) run on one thread in row order, so results do not depend on the split.
 * The math of each op is documented on {@link io.moespark.ops.backend.Backend}.
 */
final class CpuKernels {
  private static final double GELU_C = Math.sqrt(2 / Math.PI);
  private static final double GELU_A = 0.044715;

  private CpuKernels() {}

  static void rmsNormForward(INDArray x, INDArray w, double eps, INDArray y, INDArray rstdOut) {
    int n = (int) x.size(0), d = (int) x.size(1);
    Raw in = Raw.of(x), gain = Raw.of(w), out = Raw.of(y), rstd = Raw.of(rstdOut);
    Parallel.rows(n, (from, to) -> {
      for (int r = from; r < to; r++) {
        int o = r * d;
        double ss = 0;
        for (int c = 0; c < d; c++) {
          double v = in.get(o + c);
          ss += v * v;
        }
        double s = 1 / Math.sqrt(ss / d + eps);
        rstd.set(r, s);
        for (int c = 0; c < d; c++) {
          out.set(o + c, in.get(o + c) * s * gain.get(c));
        }
      }
    });
  }

  static void rmsNormBackward(INDArray x, INDArray w, INDArray rstdIn, INDArray dy, INDArray dx, INDArray dw) {
    int n = (int) x.size(0), d = (int) x.size(1);
    Raw in = Raw.of(x), gain = Raw.of(w), dOut = Raw.of(dy), dIn = Raw.of(dx), dGain = Raw.of(dw);
    Raw rstd = Raw.of(rstdIn);
    Parallel.rows(n, (from, to) -> {
      for (int r = from; r < to; r++) {
        int o = r * d;
        double s = rstd.get(r), dot = 0;
        for (int c = 0; c < d; c++) {
          dot += dOut.get(o + c) * gain.get(c) * in.get(o + c) * s;
        }
        double mean = dot / d;
        for (int c = 0; c < d; c++) {
          double xhat = in.get(o + c) * s;
          dIn.add(o + c, s * (dOut.get(o + c) * gain.get(c) - xhat * mean));
        }
      }
    });
    // The gain gradient sums over rows: one thread, row order, so it is bit-reproducible.
    for (int r = 0; r < n; r++) {
      int o = r * d;
      double s = rstd.get(r);
      for (int c = 0; c < d; c++) {
        dGain.add(c, dOut.get(o + c) * in.get(o + c) * s);
      }
    }
  }

  static void ropeLayout(INDArray rows, INDArray split, int batch, int heads, INDArray cosT, INDArray sinT,
      boolean toRows) {
    int seq = (int) split.size(1), hd = (int) split.size(2), half = hd / 2, d = heads * hd;
    boolean rotate = cosT != null;
    Raw r = Raw.of(rows), s = Raw.of(split);
    Raw cos = rotate ? Raw.of(cosT) : null, sin = rotate ? Raw.of(sinT) : null;
    Parallel.rows(batch * heads * seq, (from, to) -> {
      for (int i = from; i < to; i++) {
        int t = i % seq, h = (i / seq) % heads, b = i / (seq * heads);
        int ro = (b * seq + t) * d + h * hd, so = i * hd;
        if (!rotate) {
          for (int c = 0; c < hd; c++) {
            if (toRows) {
              r.set(ro + c, s.get(so + c));
            } else {
              s.set(so + c, r.get(ro + c));
            }
          }
          continue;
        }
        for (int j = 0; j < half; j++) {
          double c = cos.get(t * half + j), sn = sin.get(t * half + j);
          if (toRows) {
            double d1 = s.get(so + j), d2 = s.get(so + j + half);
            r.set(ro + j, d1 * c + d2 * sn);
            r.set(ro + j + half, d2 * c - d1 * sn);
          } else {
            double x1 = r.get(ro + j), x2 = r.get(ro + j + half);
            s.set(so + j, x1 * c - x2 * sn);
            s.set(so + j + half, x1 * sn + x2 * c);
          }
        }
      }
    });
  }

  static void causalSoftmax(INDArray scores, double scale) {
    int t = (int) scores.size(1);
    Raw s = Raw.of(scores);
    Parallel.rows((int) scores.size(0) * t, (from, to) -> {
      for (int r = from; r < to; r++) {
        int i = r % t, o = r * t;
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= i; j++) {
          max = Math.max(max, s.get(o + j) * scale);
        }
        double sum = 0;
        for (int j = 0; j <= i; j++) {
          double e = Math.exp(s.get(o + j) * scale - max);
          s.set(o + j, e);
          sum += e;
        }
        for (int j = 0; j <= i; j++) {
          s.set(o + j, s.get(o + j) / sum);
        }
        for (int j = i + 1; j < t; j++) {
          s.set(o + j, 0.0);
        }
      }
    });
  }

  static void causalSoftmaxBackward(INDArray probs, INDArray dProbs, double scale) {
    int t = (int) probs.size(1);
    Raw p = Raw.of(probs), d = Raw.of(dProbs);
    Parallel.rows((int) probs.size(0) * t, (from, to) -> {
      for (int r = from; r < to; r++) {
        int i = r % t, o = r * t;
        double dot = 0;
        for (int j = 0; j <= i; j++) {
          dot += d.get(o + j) * p.get(o + j);
        }
        for (int j = 0; j <= i; j++) {
          d.set(o + j, scale * p.get(o + j) * (d.get(o + j) - dot));
        }
        for (int j = i + 1; j < t; j++) {
          d.set(o + j, 0.0);
        }
      }
    });
  }

  static void swigluForward(INDArray h1, INDArray h3, INDArray a, INDArray saved) {
    if (h1.isEmpty()) {
      return; // ND4J's ops refuse empty arrays (an expert that received no tokens)
    }
    // In place with native ops: at expert sizes these arrays are the largest of the step.
    Nd4j.exec(new Sigmoid(h1, saved));
    Nd4j.exec(new MulOp(h1, saved, a));
    a.muli(h3);
  }

  static void geluForward(INDArray h1, INDArray a) {
    Raw x = Raw.of(h1), out = Raw.of(a);
    Parallel.rows((int) h1.length(), (from, to) -> {
      for (int i = from; i < to; i++) {
        double h = x.get(i);
        out.set(i, 0.5 * h * (1 + Math.tanh(GELU_C * (h + GELU_A * h * h * h))));
      }
    });
  }

  static void swigluBackward(INDArray h1, INDArray h3, INDArray saved, INDArray da, INDArray dh1, INDArray dh3) {
    if (h1.isEmpty()) {
      return;
    }
    // dh3 = da * silu(h1) = da * h1 * s;  dh1 = da * h3 * s * (1 + h1 * (1 - s)).
    Nd4j.exec(new MulOp(da, h1, dh3));
    dh3.muli(saved);
    Nd4j.exec(new ScalarReverseSubtraction(saved, dh1, 1.0));
    dh1.muli(h1).addi(1.0).muli(saved).muli(h3).muli(da);
  }

  static void geluBackward(INDArray h1, INDArray da, INDArray dh1) {
    Raw x = Raw.of(h1), dA = Raw.of(da), d1 = Raw.of(dh1);
    Parallel.rows((int) h1.length(), (from, to) -> {
      for (int i = from; i < to; i++) {
        double h = x.get(i), t = Math.tanh(GELU_C * (h + GELU_A * h * h * h));
        d1.set(i, dA.get(i) * (0.5 * (1 + t) + 0.5 * h * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * h * h)));
      }
    });
  }

  static double crossEntropy(INDArray logits, INDArray targetIds, long globalCount) {
    int n = (int) logits.size(0), v = (int) logits.size(1);
    double[] rowLoss = new double[n];
    Raw z = Raw.of(logits), targets = Raw.of(targetIds);
    Parallel.rows(n, (from, to) -> {
      for (int r = from; r < to; r++) {
        int o = r * v;
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < v; c++) {
          max = Math.max(max, z.get(o + c));
        }
        int y = targets.index(r);
        double target = z.get(o + y);
        double sum = 0;
        if (globalCount > 0) {
          for (int c = 0; c < v; c++) {
            double e = Math.exp(z.get(o + c) - max);
            z.set(o + c, e);
            sum += e;
          }
          double norm = 1.0 / (sum * globalCount);
          for (int c = 0; c < v; c++) {
            z.set(o + c, z.get(o + c) * norm);
          }
          z.add(o + y, -1.0 / globalCount);
        } else {
          for (int c = 0; c < v; c++) {
            sum += Math.exp(z.get(o + c) - max);
          }
        }
        rowLoss[r] = max + Math.log(sum) - target;
      }
    });
    double loss = 0;
    for (double l : rowLoss) {
      loss += l;
    }
    return loss;
  }

  static void adamw(INDArray param, INDArray grad, INDArray m, INDArray v, double beta1, double beta2, double eps,
      double decay, double stepSize, double bc2Sqrt) {
    Raw w = Raw.of(param), g = Raw.of(grad), m1 = Raw.of(m), m2 = Raw.of(v);
    Parallel.rows((int) param.length(), (from, to) -> {
      for (int i = from; i < to; i++) {
        double gi = g.get(i);
        double mi = beta1 * m1.get(i) + (1 - beta1) * gi;
        double vi = beta2 * m2.get(i) + (1 - beta2) * gi * gi;
        m1.set(i, mi);
        m2.set(i, vi);
        w.set(i, w.get(i) * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps));
      }
    });
  }
}

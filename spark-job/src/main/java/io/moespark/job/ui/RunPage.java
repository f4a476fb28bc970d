package io.moespark.job.ui;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.moe.MoeStats;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.IntFunction;

/**
 * The run's page, as HTML with inline SVG (no scripts): summary, loss and validation, learning rate,
 * gradient norm, aux and z losses, tokens/s, exchange time and bytes, a heatmap per MoE layer of expert
 * load over the run (experts × windows, with ids and a colour scale), load and dropping per layer, the
 * placement of experts on ranks, executors and hosts, restarts, the configuration, and the latest
 * windows with links to their Spark jobs. One renderer for the Spark UI's MoE tab and {@code report.html}.
 */
public final class RunPage {
  /** What the page shows; {@code jobs}: the Spark jobs of each window, by its first step. */
  public record Model(MoeEvents.RunStarted run, List<MoeEvents.Window> windows, List<MoeEvents.Validation> validations,
      List<MoeEvents.Placement> placements, List<MoeEvents.Restart> restarts, Map<Integer, List<Integer>> jobs) {}

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int W = 640;
  private static final int H = 200;
  private static final int LEFT = 64;
  private static final int BOTTOM = 36;
  private static final String[] COLOURS = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  /** Rows of the latest-windows table. */
  static final int RECENT = 30;

  private RunPage() {}

  /** A whole page (report.html). */
  public static String document(String title, Model m) {
    return "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + escape(title) + "</title><style>"
        + "body{font-family:sans-serif;margin:2em;color:#222}" + STYLE + "</style></head><body><h1>" + escape(title)
        + "</h1>" + body(m, null) + "</body></html>";
  }

  static final String STYLE = ".moe td,.moe th{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}"
      + ".moe svg{background:#fcfcfc;border:1px solid #ddd;margin:4px}.moe .charts{display:flex;flex-wrap:wrap}"
      + ".moe h3{margin-top:1.2em}";

  /** The page's content; {@code jobLink} makes the address of a Spark job's page (null: no links). */
  public static String body(Model m, IntFunction<String> jobLink) {
    StringBuilder b = new StringBuilder("<div class=\"moe\">");
    List<MoeEvents.Window> ws = m.windows();
    if (ws.isEmpty()) {
      return b.append("<p>No steps yet.</p></div>").toString();
    }
    MoeEvents.Window last = ws.get(ws.size() - 1);
    MoeEvents.Validation lastVal = m.validations().isEmpty() ? null : m.validations().get(m.validations().size() - 1);
    b.append("<h3>Run</h3><table><tr><th>steps</th><th>loss (last window)</th><th>validation loss</th><th>tokens/s</th>"
        + "<th>max/mean load</th><th>exchange share</th><th>restarts</th><th>steps per window</th></tr><tr>")
        .append(td("steps", (last.last() + 1) + " / " + m.run().totalSteps()))
        .append(td("last-loss", fmt(last.loss())))
        .append(td("last-val-loss", lastVal == null ? "–" : fmt(lastVal.loss())))
        .append(td("tokens-per-s", String.format(Locale.ROOT, "%,.0f", last.tokensPerS())))
        .append(td("max-over-mean", fmt(last.maxOverMeanLoad())))
        .append(td("exchange-share", pct(last.seconds() > 0 ? last.exchangeSeconds() / last.seconds() : 0)))
        .append(td("restarts", Integer.toString(m.restarts().size())))
        .append(td("window", Integer.toString(m.run().window()))).append("</tr></table>");

    double[] x = new double[ws.size()];
    for (int i = 0; i < x.length; i++) {
      x[i] = ws.get(i).last() + 1;
    }
    double[] vx = new double[m.validations().size()], vy = new double[vx.length];
    for (int i = 0; i < vx.length; i++) {
      vx[i] = m.validations().get(i).step();
      vy[i] = m.validations().get(i).loss();
    }
    b.append("<h3>Training</h3><div class=\"charts\">");
    b.append(chart("loss", "Loss", "loss (nats)", List.of(new Series("training", x, values(ws, MoeEvents.Window::loss), false),
        new Series("validation", vx, vy, true))));
    b.append(chart("lr", "Learning rate", "lr", List.of(new Series("lr", x, values(ws, MoeEvents.Window::lr), false))));
    b.append(chart("grad-norm", "Gradient norm (before clipping)", "norm",
        List.of(new Series("grad norm", x, values(ws, MoeEvents.Window::gradNorm), false))));
    b.append(chart("aux-z", "Router losses", "loss", List.of(new Series("aux", x, values(ws, MoeEvents.Window::aux), false),
        new Series("z", x, values(ws, MoeEvents.Window::z), false))));
    b.append(chart("tokens", "Throughput", "tokens/s",
        List.of(new Series("tokens/s", x, values(ws, MoeEvents.Window::tokensPerS), false))));
    b.append(chart("exchange", "Exchange time per step", "seconds", List.of(
        new Series("exchange", x, values(ws, w -> w.exchangeSeconds() / w.steps()), false),
        new Series("whole step", x, values(ws, w -> w.seconds() / w.steps()), false))));
    b.append(chart("bytes", "Bytes exchanged per step", "MB", List.of(
        new Series("all ranks", x, values(ws, w -> w.bytes() / 1e6 / w.steps()), false))));
    b.append("</div>");

    int layers = last.assigned().length;
    b.append("<h3>Expert load</h3>");
    if (layers == 0) {
      b.append("<p>No MoE layer.</p>");
    } else {
      b.append("<p>Each MoE layer's tokens per expert (before capacity dropping) over the run, one column per window of ")
          .append(m.run().window()).append(" step(s); colour: the expert's share relative to a uniform share "
              + "(1 = uniform). Hover a cell for its numbers.</p>");
      b.append("<table><tr><th>MoE layer</th><th>max/mean load (last window)</th><th>dropped (last window)</th>"
          + "<th>dropped (run)</th></tr>");
      for (int l = 0; l < layers; l++) {
        long[] a = new long[last.assigned()[l].length], k = new long[a.length];
        for (MoeEvents.Window w : ws) {
          for (int e = 0; e < a.length; e++) {
            a[e] += w.assigned()[l][e];
            k[e] += w.kept()[l][e];
          }
        }
        b.append("<tr class=\"layer\" data-layer=\"").append(l).append("\">").append(td(null, Integer.toString(l)))
            .append(td(null, fmt(last.layer(l).maxOverMeanLoad()))).append(td(null, pct(last.layer(l).droppedFraction())))
            .append(td(null, pct(new MoeStats(a, k, 0, 0).droppedFraction()))).append("</tr>");
      }
      b.append("</table><div class=\"charts\">");
      for (int l = 0; l < layers; l++) {
        b.append(heatmap(l, ws));
      }
      b.append("</div>").append(scale());
    }

    b.append("<h3>Placement</h3>");
    if (!m.placements().isEmpty()) {
      MoeEvents.Placement p = m.placements().get(m.placements().size() - 1);
      b.append("<p>Since step ").append(p.fromStep()).append(".</p><table><tr><th>rank</th><th>executor</th><th>host</th>"
          + "<th>GPU</th><th>experts (per MoE layer)</th><th>arena (backend, memory)</th></tr>");
      for (MoeEvents.Rank r : p.ranks()) {
        b.append("<tr class=\"placement\" data-rank=\"").append(r.rank()).append("\">")
            .append(td(null, Integer.toString(r.rank()))).append(td(null, escape(r.executor())))
            .append(td(null, escape(r.host()))).append(td(null, r.gpu() == null ? "–" : escape(r.gpu())))
            .append(td(null, experts(r.experts())))
            .append(td(null, r.arena() == null ? "–" : escape(r.arena()))).append("</tr>");
      }
      b.append("</table>");
    }
    placementsOverTime(b, m.placements());
    MoeEvents.Validation sampled = null;
    for (MoeEvents.Validation v : m.validations()) {
      sampled = v.samples().isEmpty() ? sampled : v;
    }
    if (sampled != null) {
      b.append("<h3>Samples after step ").append(sampled.step()).append("</h3><table><tr><th style=\"text-align:left\">"
          + "prompt</th><th style=\"text-align:left\">greedy continuation</th></tr>");
      for (MoeEvents.Sample s : sampled.samples()) {
        b.append("<tr class=\"sample\"><td style=\"text-align:left\">").append(escape(s.prompt()))
            .append("</td><td style=\"text-align:left;white-space:pre-wrap\">").append(escape(s.text()))
            .append("</td></tr>");
      }
      b.append("</table>");
    }
    if (!m.restarts().isEmpty()) {
      b.append("<h3>Restarts</h3><table><tr><th>failed at step</th><th>resumed from</th><th style=\"text-align:left\">"
          + "what happened</th></tr>");
      for (MoeEvents.Restart r : m.restarts()) {
        b.append("<tr class=\"restart\">").append(td(null, Integer.toString(r.step())))
            .append(td(null, Integer.toString(r.fromStep()))).append("<td style=\"text-align:left\">")
            .append(escape(r.message())).append("</td></tr>");
      }
      b.append("</table>");
    }

    b.append("<h3>Latest windows</h3><table><tr><th>steps</th><th>loss</th><th>lr</th><th>grad norm</th><th>tokens/s</th>"
        + "<th>exchange s/step</th><th>MB/step</th><th>max/mean load</th>").append(jobLink == null ? "" : "<th>Spark jobs</th>")
        .append("</tr>");
    for (int i = ws.size() - 1; i >= Math.max(0, ws.size() - RECENT); i--) {
      MoeEvents.Window w = ws.get(i);
      b.append("<tr class=\"window\" data-first=\"").append(w.first()).append("\">")
          .append(td(null, w.first() == w.last() ? Integer.toString(w.first() + 1) : (w.first() + 1) + "–" + (w.last() + 1)))
          .append(td(null, fmt(w.loss()))).append(td(null, fmt(w.lr()))).append(td(null, fmt(w.gradNorm())))
          .append(td(null, String.format(Locale.ROOT, "%,.0f", w.tokensPerS())))
          .append(td(null, fmt(w.exchangeSeconds() / w.steps()))).append(td(null, fmt(w.bytes() / 1e6 / w.steps())))
          .append(td(null, fmt(w.maxOverMeanLoad())));
      if (jobLink != null) {
        StringBuilder links = new StringBuilder();
        for (int job : m.jobs().getOrDefault(w.first(), List.of())) {
          links.append("<a class=\"job\" href=\"").append(jobLink.apply(job)).append("\">").append(job).append("</a> ");
        }
        b.append("<td>").append(links.toString().trim()).append("</td>");
      }
      b.append("</tr>");
    }
    b.append("</table>");

    b.append("<h3>Configuration</h3><table>");
    try {
      JsonNode cfg = JSON.readTree(m.run().config());
      for (Iterator<Map.Entry<String, JsonNode>> sections = cfg.fields(); sections.hasNext(); ) {
        Map.Entry<String, JsonNode> s = sections.next();
        for (Iterator<Map.Entry<String, JsonNode>> keys = s.getValue().fields(); keys.hasNext(); ) {
          Map.Entry<String, JsonNode> k = keys.next();
          b.append("<tr><th style=\"text-align:left\">").append(escape(s.getKey() + "." + k.getKey()))
              .append("</th><td style=\"text-align:left\">").append(escape(k.getValue().asText())).append("</td></tr>");
        }
      }
    } catch (Exception e) {
      b.append("<tr><td>").append(escape(m.run().config())).append("</td></tr>");
    }
    return b.append("</table></div>").toString();
  }

  private record Series(String name, double[] x, double[] y, boolean dots) {}

  private static double[] values(List<MoeEvents.Window> ws, java.util.function.ToDoubleFunction<MoeEvents.Window> f) {
    double[] v = new double[ws.size()];
    for (int i = 0; i < v.length; i++) {
      v[i] = f.applyAsDouble(ws.get(i));
    }
    return v;
  }

  /** A line chart with labelled axes, ticks and a legend. */
  private static String chart(String id, String title, String yLabel, List<Series> series) {
    double x0 = Double.MAX_VALUE, x1 = -Double.MAX_VALUE, y0 = Double.MAX_VALUE, y1 = -Double.MAX_VALUE;
    for (Series s : series) {
      for (int i = 0; i < s.x().length; i++) {
        if (Double.isFinite(s.y()[i])) {
          x0 = Math.min(x0, s.x()[i]);
          x1 = Math.max(x1, s.x()[i]);
          y0 = Math.min(y0, s.y()[i]);
          y1 = Math.max(y1, s.y()[i]);
        }
      }
    }
    if (x0 > x1) {
      return "";
    }
    x0 = Math.min(x0, 0);
    if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y1))) {
      y0 -= Math.max(1e-6, Math.abs(y0) * 0.05);
      y1 += Math.max(1e-6, Math.abs(y1) * 0.05);
    }
    double fx0 = x0, fx1 = Math.max(x1, x0 + 1), fy0 = y0, fy1 = y1;
    java.util.function.DoubleUnaryOperator px = v -> LEFT + (W - LEFT - 12) * (v - fx0) / (fx1 - fx0);
    java.util.function.DoubleUnaryOperator py = v -> 24 + (H - BOTTOM - 24) * (1 - (v - fy0) / (fy1 - fy0));
    StringBuilder b = new StringBuilder(String.format(Locale.ROOT,
        "<svg id=\"chart-%s\" width=\"%d\" height=\"%d\"><text x=\"%d\" y=\"14\" font-size=\"12\" font-weight=\"bold\">%s"
            + "</text>", id, W, H, LEFT, escape(title)));
    b.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>"
        + "<line x1=\"%d\" y1=\"24\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>", LEFT, H - BOTTOM, W - 12, H - BOTTOM, LEFT, LEFT,
        H - BOTTOM));
    for (int t = 0; t <= 4; t++) {
      double xv = fx0 + (fx1 - fx0) * t / 4, yv = fy0 + (fy1 - fy0) * t / 4;
      b.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%d</text>",
          px.applyAsDouble(xv), H - BOTTOM + 13, Math.round(xv)));
      b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%s</text>"
          + "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>", LEFT - 4, py.applyAsDouble(yv) + 3,
          fmt(yv), LEFT + 1, py.applyAsDouble(yv), W - 12, py.applyAsDouble(yv)));
    }
    b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">step</text>"
        + "<text x=\"12\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 %d)\">%s</text>",
        (LEFT + W) / 2, H - 6, (H - BOTTOM + 24) / 2, (H - BOTTOM + 24) / 2, escape(yLabel)));
    int legend = 0;
    for (int k = 0; k < series.size(); k++) {
      Series s = series.get(k);
      if (s.x().length == 0) {
        continue;
      }
      String colour = COLOURS[k % COLOURS.length];
      StringBuilder pts = new StringBuilder();
      for (int i = 0; i < s.x().length; i++) {
        if (!Double.isFinite(s.y()[i])) {
          continue;
        }
        if (s.dots()) {
          b.append(String.format(Locale.ROOT, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>"
              + "step %d: %s</title></circle>", cls(s.name()), px.applyAsDouble(s.x()[i]), py.applyAsDouble(s.y()[i]),
              colour, Math.round(s.x()[i]), fmt(s.y()[i])));
        } else {
          pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.applyAsDouble(s.x()[i]), py.applyAsDouble(s.y()[i])));
        }
      }
      if (!s.dots()) {
        b.append("<polyline class=\"").append(cls(s.name())).append("\" fill=\"none\" stroke=\"").append(colour)
            .append("\" points=\"").append(pts.toString().trim()).append("\"/>");
      }
      b.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"6\" width=\"10\" height=\"10\" fill=\"%s\"/>"
          + "<text x=\"%d\" y=\"15\" font-size=\"11\">%s</text>", W - 250 + 110 * legend, colour, W - 236 + 110 * legend,
          escape(s.name())));
      legend++;
    }
    return b.append("</svg>").toString();
  }

  /** Experts × windows of one layer; colour from the expert's share relative to uniform. */
  private static String heatmap(int layer, List<MoeEvents.Window> ws) {
    int experts = ws.get(ws.size() - 1).assigned()[layer].length;
    int cw = Math.max(2, Math.min(24, (W - LEFT - 12) / ws.size()));
    int ch = Math.max(10, Math.min(24, 320 / Math.max(1, experts)));
    int width = LEFT + cw * ws.size() + 12, height = 24 + ch * experts + BOTTOM;
    StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "<svg class=\"heatmap\" data-layer=\"%d\" width=\"%d\" "
        + "height=\"%d\"><text x=\"%d\" y=\"14\" font-size=\"12\" font-weight=\"bold\">MoE layer %d</text>", layer,
        Math.max(width, 220), height, LEFT, layer));
    for (int e = 0; e < experts; e++) {
      if (experts <= 32 || e % (experts / 16) == 0) {
        b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">expert %d</text>",
            LEFT - 4, 24 + ch * e + ch / 2 + 3, e));
      }
    }
    for (int i = 0; i < ws.size(); i++) {
      MoeEvents.Window w = ws.get(i);
      long total = 0;
      for (long v : w.assigned()[layer]) {
        total += v;
      }
      for (int e = 0; e < experts; e++) {
        long tokens = w.assigned()[layer][e];
        double rel = total == 0 ? 0 : (double) tokens * experts / total;
        b.append(String.format(Locale.ROOT, "<rect class=\"load\" data-layer=\"%d\" data-expert=\"%d\" data-first=\"%d\" "
            + "data-last=\"%d\" data-tokens=\"%d\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>layer %d, "
            + "expert %d, steps %d–%d: %d tokens, %.2f × uniform, %d kept</title></rect>", layer, e, w.first(), w.last(),
            tokens, LEFT + cw * i, 24 + ch * e, cw, ch, colour(rel), layer, e, w.first() + 1, w.last() + 1, tokens, rel,
            w.kept()[layer][e]));
      }
    }
    int y = 24 + ch * experts;
    for (int t = 0; t <= 4; t++) {
      int i = Math.min(ws.size() - 1, (ws.size() - 1) * t / 4);
      b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%d</text>",
          LEFT + cw * i + cw / 2, y + 13, ws.get(i).last() + 1));
    }
    b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">step</text>",
        LEFT + cw * ws.size() / 2, y + 28));
    return b.append("</svg>").toString();
  }

  /** The heatmap's colour scale: 0 × uniform blue, 1 × white, 2 × or more red. */
  private static String scale() {
    StringBuilder b = new StringBuilder("<svg id=\"load-scale\" width=\"300\" height=\"44\"><text x=\"0\" y=\"12\" "
        + "font-size=\"11\">share of the layer's tokens relative to uniform</text>");
    for (int i = 0; i < 100; i++) {
      b.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"16\" width=\"3\" height=\"12\" fill=\"%s\"/>", 10 + 2 * i,
          colour(i / 50.0)));
    }
    return b.append("<text x=\"10\" y=\"40\" font-size=\"10\" text-anchor=\"middle\">0</text><text x=\"110\" y=\"40\" "
        + "font-size=\"10\" text-anchor=\"middle\">1 (uniform)</text><text x=\"210\" y=\"40\" font-size=\"10\" "
        + "text-anchor=\"middle\">≥ 2</text></svg>").toString();
  }

  static String colour(double rel) {
    double dev = Math.max(-1, Math.min(1, rel - 1));
    int r = dev < 0 ? (int) Math.round(255 * (1 + dev)) : 255;
    int g = (int) Math.round(255 * (1 - Math.abs(dev)));
    int bl = dev > 0 ? (int) Math.round(255 * (1 - dev)) : 255;
    return String.format(Locale.ROOT, "rgb(%d,%d,%d)", r, g, bl);
  }

  /**
   * When experts moved during the run: one row per placement (from its step), per MoE layer the rank of
   * each expert (a replicated expert's ranks joined by |, in italics), those that changed from the row
   * before in bold.
   */
  private static void placementsOverTime(StringBuilder b, List<MoeEvents.Placement> placements) {
    List<MoeEvents.Placement> changes = new ArrayList<>();
    List<String[][]> holders = new ArrayList<>();
    for (MoeEvents.Placement p : placements) {
      String[][] h = holders(p);
      if (holders.isEmpty() || !java.util.Arrays.deepEquals(h, holders.get(holders.size() - 1))) {
        changes.add(p);
        holders.add(h);
      }
    }
    if (changes.size() < 2) {
      return;
    }
    b.append("<h3>Placement over time</h3><p>The rank of each expert, per MoE layer; <i>a|b</i>: replicas on ranks "
        + "a and b; bold: changed.</p><table><tr><th>from step</th>");
    for (int l = 0; l < holders.get(0).length; l++) {
      b.append("<th>MoE layer ").append(l).append("</th>");
    }
    b.append("</tr>");
    for (int i = 0; i < changes.size(); i++) {
      b.append("<tr class=\"placement-change\">").append(td(null, Integer.toString(changes.get(i).fromStep())));
      for (int l = 0; l < holders.get(i).length; l++) {
        StringBuilder cell = new StringBuilder();
        for (int e = 0; e < holders.get(i)[l].length; e++) {
          String h = holders.get(i)[l][e];
          boolean moved = i > 0 && !holders.get(i - 1)[l][e].equals(h);
          boolean replicated = h.contains("|");
          cell.append(e == 0 ? "" : " ").append(moved ? "<b>" : "").append(replicated ? "<i class=\"replica\">" : "")
              .append(h).append(replicated ? "</i>" : "").append(moved ? "</b>" : "");
        }
        b.append(td(null, cell.toString()));
      }
      b.append("</tr>");
    }
    b.append("</table>");
  }

  /** [MoE layer][expert] → its ranks joined by |, from a placement event's per-rank expert lists. */
  private static String[][] holders(MoeEvents.Placement p) {
    int layers = p.ranks().isEmpty() ? 0 : p.ranks().get(0).experts().size();
    String[][] h = new String[layers][];
    for (int l = 0; l < layers; l++) {
      int experts = 0;
      for (MoeEvents.Rank r : p.ranks()) {
        for (int e : r.experts().get(l)) {
          experts = Math.max(experts, e + 1);
        }
      }
      h[l] = new String[experts];
      for (MoeEvents.Rank r : p.ranks()) { // ranks in order, so each expert's ranks ascend
        for (int e : r.experts().get(l)) {
          h[l][e] = h[l][e] == null ? Integer.toString(r.rank()) : h[l][e] + "|" + r.rank();
        }
      }
    }
    return h;
  }

  private static String experts(List<List<Integer>> perLayer) {
    List<String> parts = new ArrayList<>();
    for (int l = 0; l < perLayer.size(); l++) {
      parts.add("L" + l + ": " + perLayer.get(l).toString().replaceAll("[\\[\\] ]", ""));
    }
    return escape(String.join("; ", parts));
  }

  private static String td(String id, String v) {
    return (id == null ? "<td>" : "<td id=\"" + id + "\">") + v + "</td>";
  }

  private static String cls(String name) {
    return name.replaceAll("[^a-z0-9]+", "-");
  }

  static String fmt(double v) {
    return String.format(Locale.ROOT, "%.4g", v);
  }

  private static String pct(double v) {
    return String.format(Locale.ROOT, "%.2f%%", 100 * v);
  }

  static String escape(String s) {
    return s == null ? "" : s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
  }
}

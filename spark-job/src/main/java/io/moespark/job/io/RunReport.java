package io.moespark.job.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * {@code RUN/report.html}: a static page with the run's plots, made from {@code metrics.jsonl} alone (so it
 * can be remade for any run directory): the training loss per step with the validation losses, tokens/s,
 * and a heatmap of each MoE layer's expert load (share of the layer's token assignments per expert over
 * the last steps). Inline SVG, no scripts, no network.
 */
public final class RunReport {
  public static final String FILE = "report.html";
  /** Steps the load heatmap averages over (the end of the run). */
  static final int LOAD_WINDOW = 100;
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int W = 640;
  private static final int H = 220;

  private RunReport() {}

  /** Writes the report of the run in {@code runDir} from its metrics file; returns its path. */
  public static Path write(FileSystem fs, Path runDir, Path metrics, String title) throws IOException {
    List<JsonNode> lines = new ArrayList<>();
    try (BufferedReader in = new BufferedReader(new InputStreamReader(fs.open(metrics), StandardCharsets.UTF_8))) {
      for (String l; (l = in.readLine()) != null; ) {
        if (!l.isBlank()) {
          lines.add(JSON.readTree(l));
        }
      }
    }
    String html = html(title, lines);
    Path file = new Path(runDir, FILE);
    RunFiles.replace(fs, file, out -> out.write(html.getBytes(StandardCharsets.UTF_8)));
    return file;
  }

  static String html(String title, List<JsonNode> lines) {
    StringBuilder b = new StringBuilder();
    b.append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").append(escape(title))
        .append("</title><style>body{font-family:sans-serif;margin:2em;color:#222}td,th{padding:2px 8px;"
            + "text-align:right}svg{background:#fafafa;border:1px solid #ddd}</style></head><body>");
    b.append("<h1>").append(escape(title)).append("</h1>");
    if (lines.isEmpty()) {
      return b.append("<p>No steps yet.</p></body></html>").toString();
    }
    JsonNode last = lines.get(lines.size() - 1);
    b.append("<table><tr><th>steps</th><th>last loss</th><th>last validation loss</th><th>tokens/s (last)</th>"
        + "<th>max/mean load (last)</th><th>dropped (last)</th></tr><tr>");
    b.append(td(last.path("step").asInt() + 1)).append(td(fmt(last.path("loss").asDouble())));
    JsonNode lastVal = null;
    for (JsonNode l : lines) {
      if (l.has("val_loss")) {
        lastVal = l;
      }
    }
    b.append(td(lastVal == null ? "–" : fmt(lastVal.get("val_loss").asDouble())));
    b.append(td(String.format(Locale.ROOT, "%,.0f", last.path("tokens_per_s").asDouble())));
    b.append(td(fmt(last.path("max_over_mean_load").asDouble())));
    b.append(td(String.format(Locale.ROOT, "%.2f%%", 100 * last.path("dropped_fraction").asDouble())));
    b.append("</tr></table>");
    b.append("<h2>Loss</h2>").append(lineChart(lines, "loss", "val_loss"));
    b.append("<h2>Tokens per second</h2>").append(lineChart(lines, "tokens_per_s", null));
    b.append("<h2>Expert load</h2><p>Share of each MoE layer's token assignments per expert over the last ")
        .append(Math.min(LOAD_WINDOW, lines.size())).append(" steps (uniform: ")
        .append(last.path("expert_tokens").size() == 0 ? "–"
            : String.format(Locale.ROOT, "%.1f%%", 100.0 / last.path("expert_tokens").get(0).size()))
        .append(").</p>").append(heatmap(lines));
    return b.append("</body></html>").toString();
  }

  /** A polyline of {@code key} per step, with {@code points} (if any) as dots. */
  private static String lineChart(List<JsonNode> lines, String key, String points) {
    double lo = Double.MAX_VALUE, hi = -Double.MAX_VALUE;
    int maxStep = Math.max(1, lines.get(lines.size() - 1).path("step").asInt());
    for (JsonNode l : lines) {
      for (String k : points == null ? new String[] {key} : new String[] {key, points}) {
        if (l.has(k)) {
          lo = Math.min(lo, l.get(k).asDouble());
          hi = Math.max(hi, l.get(k).asDouble());
        }
      }
    }
    double span = hi > lo ? hi - lo : 1;
    StringBuilder poly = new StringBuilder(), dots = new StringBuilder();
    for (JsonNode l : lines) {
      double x = 40 + (W - 50) * l.path("step").asDouble() / maxStep;
      poly.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y(l.path(key).asDouble(), lo, span)));
      if (points != null && l.has(points)) {
        dots.append(String.format(Locale.ROOT, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>",
            points, x, y(l.get(points).asDouble(), lo, span)));
      }
    }
    return String.format(Locale.ROOT, "<svg width=\"%d\" height=\"%d\"><text x=\"2\" y=\"14\" font-size=\"11\">%s</text>"
        + "<text x=\"2\" y=\"%d\" font-size=\"11\">%s</text><polyline class=\"%s\" fill=\"none\" stroke=\"#1f77b4\" "
        + "points=\"%s\"/>%s<text x=\"%d\" y=\"%d\" font-size=\"11\">step %d</text></svg>", W, H, fmt(hi), H - 12, fmt(lo),
        key, poly.toString().trim(), dots, W - 80, H - 2, maxStep + 1);
  }

  private static double y(double v, double lo, double span) {
    return 10 + (H - 30) * (1 - (v - lo) / span);
  }

  /** Rows: MoE layers; columns: experts; colour: share of the layer's assignments over the window. */
  private static String heatmap(List<JsonNode> lines) {
    JsonNode first = lines.get(lines.size() - 1).path("expert_tokens");
    int layers = first.size();
    if (layers == 0) {
      return "<p>No MoE layer.</p>";
    }
    int experts = first.get(0).size();
    double[][] sum = new double[layers][experts];
    for (JsonNode l : lines.subList(Math.max(0, lines.size() - LOAD_WINDOW), lines.size())) {
      for (int i = 0; i < layers; i++) {
        for (int e = 0; e < experts; e++) {
          sum[i][e] += l.path("expert_tokens").path(i).path(e).asDouble();
        }
      }
    }
    int cell = Math.max(18, Math.min(60, (W - 60) / experts));
    StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "<svg width=\"%d\" height=\"%d\">",
        60 + cell * experts, 20 + cell * layers));
    for (int i = 0; i < layers; i++) {
      double total = 0;
      for (double v : sum[i]) {
        total += v;
      }
      b.append(String.format(Locale.ROOT, "<text x=\"2\" y=\"%d\" font-size=\"11\">MoE %d</text>",
          20 + cell * i + cell / 2, i));
      for (int e = 0; e < experts; e++) {
        double share = total == 0 ? 0 : sum[i][e] / total;
        // White at a uniform share, deeper red above it, deeper blue below.
        double dev = Math.max(-1, Math.min(1, (share * experts - 1)));
        int r = dev < 0 ? (int) (255 * (1 + dev)) : 255, g = (int) (255 * (1 - Math.abs(dev))),
            bl = dev > 0 ? (int) (255 * (1 - dev)) : 255;
        b.append(String.format(Locale.ROOT, "<rect class=\"load\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
            + "fill=\"rgb(%d,%d,%d)\"><title>MoE layer %d, expert %d: %.1f%%</title></rect>", 60 + cell * e,
            10 + cell * i, cell - 1, cell - 1, r, g, bl, i, e, 100 * share));
      }
    }
    return b.append("</svg>").toString();
  }

  private static String td(Object v) {
    return "<td>" + v + "</td>";
  }

  private static String fmt(double v) {
    return String.format(Locale.ROOT, "%.4g", v);
  }

  private static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
  }
}

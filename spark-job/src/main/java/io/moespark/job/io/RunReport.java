package io.moespark.job.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.job.ui.MoeEvents;
import io.moespark.job.ui.RunPage;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * {@code RUN/report.html}: the MoE tab's page ({@link RunPage}) as a static file, made from the run
 * directory alone ({@code metrics.jsonl} and {@code config.json}), so it can be remade for any run: the
 * curves, the load heatmaps over the run, load and dropping per layer, the configuration. Placement and
 * Spark job links are in the live tab and the History Server only. Inline SVG, no scripts, no network.
 */
public final class RunReport {
  public static final String FILE = "report.html";
  private static final ObjectMapper JSON = new ObjectMapper();

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
    Path configFile = new Path(runDir, "config.json");
    String config = "{}";
    if (fs.exists(configFile)) {
      try (InputStream in = fs.open(configFile)) {
        config = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      }
    }
    String html = RunPage.document(title, model(title, config, lines));
    Path file = new Path(runDir, FILE);
    RunFiles.replace(fs, file, out -> out.write(html.getBytes(StandardCharsets.UTF_8)));
    return file;
  }

  /** The page's model from metrics lines: steps in the windows the run's events use. */
  static RunPage.Model model(String title, String config, List<JsonNode> lines) throws IOException {
    int lastStep = lines.isEmpty() ? 0 : lines.get(lines.size() - 1).path("step").asInt();
    int total = Math.max(lastStep, JSON.readTree(config).path("train").path("steps").asInt(0));
    MoeEvents.WindowBuilder b = new MoeEvents.WindowBuilder(total);
    List<MoeEvents.Window> windows = new ArrayList<>();
    List<MoeEvents.Validation> vals = new ArrayList<>();
    for (JsonNode l : lines) {
      if (l.has("event")) { // not a step: an event's row (placement_move)
        continue;
      }
      int step = l.path("step").asInt() - 1; // the windows count steps from 0, metrics.jsonl from 1
      MoeEvents.Window closed = b.add(step, l.path("loss").asDouble(), l.path("ce").asDouble(), l.path("aux").asDouble(), l.path("z").asDouble(),
          l.path("lr").asDouble(), l.path("grad_norm").asDouble(), l.path("seconds").asDouble(),
          l.path("tokens_per_s").asDouble(), l.path("exchange_seconds").asDouble(), l.path("bytes_exchanged").asLong(),
          l.path("max_over_mean_load").asDouble(), counts(l.path("expert_tokens")), counts(l.path("expert_tokens_kept")));
      if (closed != null) {
        windows.add(closed);
      }
      if (l.has("val_loss")) {
        List<MoeEvents.Sample> samples = new ArrayList<>();
        l.path("samples").forEach(s -> samples.add(new MoeEvents.Sample(s.path("prompt").asText(),
            s.path("text").asText())));
        vals.add(new MoeEvents.Validation(step + 1, l.get("val_loss").asDouble(), samples));
      }
    }
    if (!b.isEmpty()) {
      windows.add(b.take());
    }
    return new RunPage.Model(new MoeEvents.RunStarted(title, config, total, b.window(), 0), windows, vals,
        placements(lines), List.of(), Map.of());
  }

  /**
   * The placements of a run whose experts moved, from its placement_move rows: each row's placement from its
   * step, and before the first, that placement with the first row's moves undone.
   */
  private static List<MoeEvents.Placement> placements(List<JsonNode> lines) {
    List<JsonNode> moves = lines.stream().filter(l -> "placement_move".equals(l.path("event").asText())).toList();
    List<MoeEvents.Placement> out = new ArrayList<>();
    if (moves.isEmpty()) {
      return out;
    }
    List<int[][]> start = holders(moves.get(0).get("placement"));
    for (JsonNode m : moves.get(0).path("moved")) {
      start.get(m.path("layer").asInt())[m.path("expert").asInt()] = ranks(m.path("from"));
    }
    out.add(placement(0, start));
    for (JsonNode m : moves) {
      out.add(placement(m.path("step").asInt(), holders(m.get("placement"))));
    }
    return out;
  }

  /** [layer][expert] → its ranks, from a placement as metrics.jsonl writes it (a rank, or an array of them). */
  private static List<int[][]> holders(JsonNode placement) {
    List<int[][]> rows = new ArrayList<>();
    for (JsonNode layer : placement) {
      int[][] row = new int[layer.size()][];
      for (int e = 0; e < row.length; e++) {
        row[e] = ranks(layer.get(e));
      }
      rows.add(row);
    }
    return rows;
  }

  private static int[] ranks(JsonNode holders) {
    if (!holders.isArray()) {
      return new int[] {holders.asInt()};
    }
    int[] r = new int[holders.size()];
    for (int i = 0; i < r.length; i++) {
      r[i] = holders.get(i).asInt();
    }
    return r;
  }

  /** A placement event as the report has it: ranks with their experts per MoE layer, no executors. */
  private static MoeEvents.Placement placement(int fromStep, List<int[][]> holders) {
    int ranks = 0;
    for (int[][] layer : holders) {
      for (int[] h : layer) {
        for (int r : h) {
          ranks = Math.max(ranks, r + 1);
        }
      }
    }
    List<MoeEvents.Rank> out = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      int rank = r;
      List<List<Integer>> experts = new ArrayList<>();
      for (int[][] layer : holders) {
        if (layer.length > 0) { // dense layers have no experts
          List<Integer> mine = new ArrayList<>();
          for (int e = 0; e < layer.length; e++) {
            if (java.util.Arrays.stream(layer[e]).anyMatch(x -> x == rank)) {
              mine.add(e);
            }
          }
          experts.add(mine);
        }
      }
      out.add(new MoeEvents.Rank(r, "–", "–", null, null, experts));
    }
    return new MoeEvents.Placement(fromStep, out);
  }

  private static long[][] counts(JsonNode layers) {
    long[][] c = new long[layers.size()][];
    for (int l = 0; l < c.length; l++) {
      c[l] = new long[layers.get(l).size()];
      for (int e = 0; e < c[l].length; e++) {
        c[l][e] = layers.get(l).get(e).asLong();
      }
    }
    return c;
  }
}

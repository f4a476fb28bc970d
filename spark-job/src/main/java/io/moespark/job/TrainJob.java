package io.moespark.job;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.job.data.PreparedData;
import io.moespark.job.data.RunData;
import io.moespark.job.io.CheckpointStore;
import io.moespark.job.io.HfInit;
import io.moespark.job.io.RunFiles;
import io.moespark.job.io.RunReport;
import io.moespark.job.ui.MoeEvents;
import io.moespark.ops.backend.Backends;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.MoeStats;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.text.HfTokenizer;
import io.moespark.ops.train.StepReport;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * The driver's step loop of one run: opens the ranks (fresh, or from the run's last checkpoint with
 * {@code resume}), runs stages of {@code parallel.steps_per_stage} steps cut at evaluation and
 * checkpoint boundaries, and for every step writes a line to {@code RUN/metrics.jsonl} and (every
 * {@code train.log_every}) a progress line; validation every {@code train.eval_every} steps; atomic
 * checkpoints every {@code checkpoint.every} steps and at the end; the final model exported to
 * {@code RUN/model/} with the data's tokenizer, and {@code RUN/report.html} with the plots. All jobs of the
 * run share one job group; each job's description says which steps it runs and the last loss and load seen. A
 * non-finite loss stops the run with a message; nothing written before it is touched.
 */
public final class TrainJob {
  public static final String MODEL = "model";
  private static final ObjectMapper JSON = new ObjectMapper();

  /**
   * How a run ended: steps done, last training loss, last validation loss (NaN if none), the exported
   * model's directory (null when stopped early).
   */
  public record Outcome(int steps, double loss, double valLoss, String modelDir) {}

  private final JavaSparkContext sc;
  private final RunConfig cfg;
  private final Path runDir;
  private final FileSystem fs;
  private final PrintStream console;
  private final String configJson;
  private final HfInit init;
  /** train.sample_prompts' sampler, or null. */
  private final RunSamples samples;
  private final PlacementPolicy policy;
  /** The experts' moves so far (metrics.jsonl's placement_move rows), recorded in every checkpoint. */
  private ArrayNode moves;
  private FSDataOutputStream metrics;
  private StepResult last;
  private ObjectNode held; // the metrics line of a step whose validation loss is still to come
  private RunEvents events;
  private double valLoss = Double.NaN;
  private double lastLoss = Double.NaN; // the last loss in metrics.jsonl before this attempt
  private long afterFirstStep;
  private int loopFirstStep;

  private TrainJob(JavaSparkContext sc, RunConfig cfg, Path runDir, FileSystem fs, PrintStream console,
      HfInit init, RunSamples samples) {
    this.init = init;
    this.samples = samples;
    this.policy = PlacementPolicy.of(cfg);
    this.sc = sc;
    this.cfg = cfg;
    this.runDir = runDir;
    this.fs = fs;
    this.console = console;
    this.configJson = ConfigLoader.toTree(cfg).toPrettyString();
  }

  /**
   * Asks the running loop to stop after its current stage, with a checkpoint, the report and a line saying
   * how to resume (moe-train calls it on SIGINT/SIGTERM, the same on both paths).
   */
  public static void requestStop() {
    stopRequested = true;
  }

  /** Whether a stop was requested (tests pause a run until their signal has arrived). */
  static boolean stopRequested() {
    return stopRequested;
  }

  private static volatile boolean stopRequested;

  /**
   * Runs (or with {@code resume}, continues) the run in {@code runDir}, any Hadoop path. With
   * {@code stopAt} > 0 the run stops after that step with a checkpoint (and no export), to be continued
   * later with {@code resume}: the result is bit-identical to an uninterrupted run.
   */
  public static Outcome run(JavaSparkContext sc, RunConfig cfg, String runDir, boolean resume, int stopAt,
      PrintStream console) throws IOException {
    return run(sc, cfg, runDir, resume, stopAt, null, console);
  }

  /**
   * Refuses, before anything starts or is written, a device or transport that this build or this Spark
   * configuration cannot give the ranks (the cuda profile's classes, a GPU per task on a cluster).
   */
  public static void checkBuild(org.apache.spark.SparkConf conf, RunConfig cfg) {
    RankStages.checkBuild(conf, cfg.parallel());
  }

  /**
   * Refuses, before Spark starts, what the run's inputs cannot give it: train.sample_prompts without a
   * tokenizer (neither prepared data nor an --init-from directory with one).
   */
  public static void checkInputs(RunConfig cfg, String initFrom, Configuration conf) throws IOException {
    String initTokenizer = null;
    if (initFrom != null) {
      Path t = new Path(initFrom, HfTokenizer.FILE);
      initTokenizer = t.getFileSystem(conf).exists(t) ? t.toString() : null;
    }
    RunSamples.requireTokenizer(cfg, tokenizer(cfg, initTokenizer, conf));
  }

  /** As above; a new run starts from the Hugging Face model directory {@code initFrom} when it is set. */
  public static Outcome run(JavaSparkContext sc, RunConfig cfg, String runDir, boolean resume, int stopAt,
      String initFrom, PrintStream console) throws IOException {
    Configuration conf = sc.hadoopConfiguration();
    if (initFrom != null && resume) {
      throw new ConfigException("--init-from starts a new run; --resume continues one from its checkpoint "
          + "(which already holds the imported weights)");
    }
    checkBuild(sc.getConf(), cfg);
    RunData.check(RunData.withAbsolutePath(cfg), conf);
    HfInit init = initFrom == null ? null : HfInit.open(initFrom, cfg, conf);
    Path dir = new Path(runDir);
    FileSystem fs = RunFiles.fs(dir, conf);
    Path qualified = fs.makeQualified(dir); // executors write checkpoint shards here: no relative paths
    try (RunSamples samples = RunSamples.open(cfg, tokenizer(cfg, init == null ? null : init.tokenizer(), conf), conf)) {
      TrainJob job = new TrainJob(sc, cfg, qualified, fs, console, init, samples);
      return job.run(resume, stopAt > 0 ? Math.min(stopAt, cfg.train().steps()) : cfg.train().steps());
    }
  }

  private Outcome run(boolean resume, int stopAt) throws IOException {
    CheckpointStore store = new CheckpointStore(runDir.toString(), cfg.checkpoint().keep(), fs.getConf());
    RunDirectory.Start start = RunDirectory.prepare(cfg, runDir, fs, store, configJson, sc.master(), resume, console);
    CheckpointStore.Stored from = start.from();
    ExpertPlacement placement = start.placement();
    moves = movesOf(from);
    policy.restore(policyStateOf(from));
    openMetrics(from == null ? 0 : from.step());
    sc.setJobGroup("moe-spark-" + runDir.getName() + "-" + System.currentTimeMillis(),
        "moe-spark train " + runDir.getName(), false);
    if (init != null) {
      console.println(init.describe());
    }
    events = new RunEvents(sc, cfg.train().steps());
    events.started(runDir.getName(), configJson, from == null ? 0 : from.step());
    ExecutorLosses losses = new ExecutorLosses();
    sc.sc().addSparkListener(losses);
    RestartSupervisor supervisor = new RestartSupervisor(sc, cfg, store, events, losses, console);
    try {
      for (int restarts = 0; ; restarts++) {
        RankGroup ranks = null;
        try {
          ranks = RankGroup.open(sc, cfg, placement, from, from == null ? init : null, runDir.toString());
          console.printf(Locale.ROOT, "%d rank(s) on executors %s; %,d validation tokens; arenas %s%n",
              placement.ranks(), ranks.executors(), ranks.valTokens(), ranks.arenas());
          events.placement(ranks, placement);
          loop(ranks, StepRunners.of(ranks), store, stopAt);
          String model = null;
          if (ranks.nextStep() == cfg.train().steps()) {
            model = export(ranks.gather());
            console.println("model exported to " + model);
          } else {
            events.flush();
            console.printf(Locale.ROOT, "stopped after step %d of %d%s; continue with: bin/moe-train --resume "
                + "--run-dir %s%n", ranks.nextStep(), cfg.train().steps(), stopRequested ? " (stop requested)" : "",
                runDir);
          }
          int done = ranks.nextStep();
          ranks.close();
          ranks = null;
          return new Outcome(done, last == null ? lastLoss : last.loss(), valLoss, model);
        } catch (RuntimeException e) {
          from = supervisor.recover(e, ranks, restarts, stopRequested);
          placement = RunDirectory.placementFor(cfg, from);
          moves = movesOf(from);
          policy.restore(policyStateOf(from));
          metrics.close();
          held = null;
          openMetrics(from == null ? 0 : from.step());
        } finally {
          if (ranks != null) {
            ranks.abandon();
          }
        }
      }
    } finally {
      sc.sc().removeSparkListener(losses);
      metrics.close();
      sc.clearJobGroup();
      writeReport();
    }
  }

  private void loop(RankGroup ranks, StepRunner runner, CheckpointStore store, int stopAt) throws IOException {
    RunConfig.Train t = cfg.train();
    int total = t.steps();
    loopFirstStep = ranks.nextStep();
    while (ranks.nextStep() < stopAt && !stopRequested) {
      int next = ranks.nextStep();
      int count = Math.min(cfg.parallel().stepsPerStage(), stopAt - next);
      count = Math.min(count, untilBoundary(next, t.evalEvery()));
      count = Math.min(count, untilBoundary(next, cfg.checkpoint().every()));
      count = (int) Math.min(count, (long) policy.nextDecision(next) - next);
      runner.steps(count, this::onStep, description(next, count, total));
      int done = ranks.nextStep();
      if (held != null) {
        if (ranks.valTokens() > 0) {
          valLoss = runner.evaluate();
          held.put("val_loss", valLoss);
          console.printf(Locale.ROOT, "step %d/%d · validation loss %.4f%n", done, total, valLoss);
          List<MoeEvents.Sample> sampled = samples == null ? List.of() : samples.sample(hostModel(ranks.gather()));
          ArrayNode rows = JSON.createArrayNode();
          for (MoeEvents.Sample s : sampled) {
            console.printf(Locale.ROOT, "step %d/%d · sample: %s → %s%n", done, total, s.prompt(),
                s.text().replace("\n", "⏎"));
            rows.addObject().put("prompt", s.prompt()).put("text", s.text());
          }
          if (!sampled.isEmpty()) {
            held.set("samples", rows);
          }
          events.validation(done, valLoss, sampled);
        }
        writeMetrics(held);
        held = null;
      }
      PlacementPolicy.Decision move = done < total ? policy.decide(done, ranks.placement()) : null;
      if (move != null) { // before the checkpoint of this step, which then records where the experts are
        move(ranks, runner, move, done);
      }
      boolean every = cfg.checkpoint().every() > 0 && done % cfg.checkpoint().every() == 0;
      if (every || done == stopAt || stopRequested) {
        checkpoint(ranks, store);
      }
    }
  }

  private static int untilBoundary(int next, int every) {
    return every <= 0 ? Integer.MAX_VALUE : every - next % every;
  }

  private String description(int next, int count, int total) {
    String steps = count == 1 ? "step " + (next + 1) : "steps " + (next + 1) + "–" + (next + count);
    if (last == null) {
      return steps + "/" + total;
    }
    return String.format(Locale.ROOT, "%s/%d · loss %.4f · max/mean load %.2f", steps, total, last.loss(),
        last.report().maxOverMeanLoad());
  }

  private void onStep(StepResult s) {
    last = s;
    policy.observe(s);
    StepFeedPlugin.record(s);
    events.step(s);
    StepReport r = s.report();
    int total = cfg.train().steps();
    ObjectNode line = metricsLine(s);
    boolean evalAfter = cfg.train().evalEvery() > 0
        && ((r.step() + 1) % cfg.train().evalEvery() == 0 || r.step() + 1 == total);
    try {
      if (evalAfter) {
        held = line;
      } else {
        writeMetrics(line);
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot write " + new Path(runDir, RunDirectory.METRICS) + ": " + e.getMessage(), e);
    }
    if (r.step() == loopFirstStep) {
      afterFirstStep = System.nanoTime(); // the first step includes warm-up: the ETA counts from its end
    }
    if ((r.step() + 1) % cfg.train().logEvery() == 0 || r.step() + 1 == total || r.step() == loopFirstStep) {
      String eta = "–";
      if (r.step() > loopFirstStep) {
        long left = Math.round((System.nanoTime() - afterFirstStep) / 1e9 / (r.step() - loopFirstStep)
            * (total - r.step() - 1));
        eta = String.format(Locale.ROOT, "%dm%02ds", left / 60, left % 60);
      }
      console.printf(Locale.ROOT, "step %d/%d · loss %.4f (ce %.4f, aux %.4f) · %,.0f tok/s · max/mean load %.2f · "
          + "dropped %.1f%% · exchange %.0f%% · ETA %s%n", r.step() + 1, total, r.loss().total(), r.loss().ce(),
          r.loss().aux(), r.tokensPerSecond(), r.maxOverMeanLoad(), 100 * r.droppedFraction(),
          100 * s.exchangeSeconds() / r.seconds(), eta);
    }
  }

  /** One metrics.jsonl object. */
  static ObjectNode metricsLine(StepResult s) {
    StepReport r = s.report();
    ObjectNode n = JSON.createObjectNode();
    n.put("step", r.step() + 1); // 1-based, as the console counts: the line of the n-th step says n
    n.put("loss", r.loss().total());
    n.put("ce", r.loss().ce());
    n.put("aux", r.loss().aux());
    n.put("z", r.loss().z());
    n.put("lr", r.lr());
    n.put("grad_norm", r.gradNorm());
    n.put("seconds", r.seconds());
    n.put("tokens_per_s", r.tokensPerSecond());
    n.put("max_over_mean_load", r.maxOverMeanLoad());
    n.put("dropped_fraction", r.droppedFraction());
    n.put("exchange_seconds", s.exchangeSeconds());
    n.put("bytes_exchanged", s.bytesExchanged());
    var assigned = n.putArray("expert_tokens");
    var kept = n.putArray("expert_tokens_kept");
    for (MoeStats l : r.layers()) {
      var a = assigned.addArray();
      var k = kept.addArray();
      for (int e = 0; e < l.assignedPerExpert().length; e++) {
        a.add(l.assignedPerExpert()[e]);
        k.add(l.keptPerExpert()[e]);
      }
    }
    return n;
  }

  /**
   * Moves the experts as {@code d} says after {@code step} steps: one metrics.jsonl row, one console line,
   * the new placement in the MoE tab.
   */
  private void move(RankGroup ranks, StepRunner runner, PlacementPolicy.Decision d, int step) throws IOException {
    ExpertPlacement before = ranks.placement();
    RankGroup.MoveCost cost = runner.move(d.next());
    ObjectNode row = JSON.createObjectNode().put("step", step).put("event", "placement_move").put("why", d.why());
    ArrayNode layers = row.putArray("moved");
    List<String> said = new ArrayList<>();
    int replicas = 0;
    for (int l = 0; l < cfg.model().nLayers(); l++) {
      int[][] was = before.holders(l), now = d.next().holders(l);
      List<String> experts = new ArrayList<>();
      for (int e = 0; e < was.length; e++) {
        replicas += now[e].length - 1;
        if (!Arrays.equals(was[e], now[e])) {
          ObjectNode m = layers.addObject().put("layer", l).put("expert", e);
          m.set("from", ranksJson(was[e]));
          m.set("to", ranksJson(now[e]));
          experts.add(e + " " + ranksText(was[e]) + "→" + ranksText(now[e]));
        }
      }
      if (!experts.isEmpty()) {
        said.add("layer " + l + " experts " + String.join(", ", experts));
      }
    }
    row.put("replicas", replicas).put("bytes", cost.bytes()).put("tensors", cost.tensors())
        .put("seconds", cost.seconds());
    row.set("placement", d.next().toJson(JSON));
    writeMetrics(row);
    moves.add(row);
    console.printf(Locale.ROOT, "step %d/%d · experts moved, %s: %s (ranks, | between replicas); %d replicas; "
        + "%.2f MB in %.3f s%n", step, cfg.train().steps(), d.why(), String.join("; ", said), replicas,
        cost.bytes() / 1e6, cost.seconds());
    events.placement(ranks, d.next());
  }

  /** An expert's holders as metrics.jsonl writes them: a rank, or an array of ranks when replicated. */
  private static JsonNode ranksJson(int[] holders) {
    if (holders.length == 1) {
      return JSON.getNodeFactory().numberNode(holders[0]);
    }
    ArrayNode a = JSON.createArrayNode();
    Arrays.stream(holders).forEach(a::add);
    return a;
  }

  private static String ranksText(int[] holders) {
    return Arrays.stream(holders).mapToObj(Integer::toString).collect(java.util.stream.Collectors.joining("|"));
  }

  /** The moves a checkpoint recorded (none for the start or a checkpoint written before moves existed). */
  private static ArrayNode movesOf(CheckpointStore.Stored from) throws IOException {
    JsonNode m = from == null ? null : JSON.readTree(from.stateJson()).get("placement_moves");
    return m instanceof ArrayNode a ? a : JSON.createArrayNode();
  }

  /** The placement policy's state a checkpoint recorded, or null. */
  private static JsonNode policyStateOf(CheckpointStore.Stored from) throws IOException {
    return from == null ? null : JSON.readTree(from.stateJson()).get("placement_policy");
  }

  private void checkpoint(RankGroup ranks, CheckpointStore store) throws IOException {
    ExpertPlacement placement = ranks.placement();
    int step = ranks.nextStep();
    String tmp = store.begin(step);
    try {
      RankGroup.Saved saved = ranks.save(tmp);
      ObjectNode state = (ObjectNode) JSON.readTree(saved.stateJson());
      state.put("ranks", placement.ranks());
      state.set("placement", placement.toJson(JSON));
      state.set("placement_moves", moves);
      ObjectNode policyState = policy.state(JSON);
      if (policyState != null) {
        state.set("placement_policy", policyState);
      }
      String dir = store.commit(tmp, step, state, configJson, saved.shards());
      console.println("checkpoint " + dir);
    } catch (IOException | RuntimeException e) {
      store.abort(tmp);
      throw e;
    }
  }

  /** The run's tokenizer.json: the imported model's ({@code initTokenizer}), else the prepared data's; null for raw data. */
  private static String tokenizer(RunConfig cfg, String initTokenizer, Configuration conf) {
    return initTokenizer != null ? initTokenizer
        : PreparedData.isPrepared(cfg.data().path(), conf)
            ? PreparedData.open(cfg.data().path(), conf, "data.path").tokenizer().toString() : null;
  }

  /** The model of the ranks' gathered parameters on the driver's host (it copies values, computes nothing). */
  private TransformerLM hostModel(Map<String, float[]> params) {
    TransformerLM model = TransformerLM.singleRank(cfg.model(), cfg.moe(), Backends.host(), DType.F32);
    for (Param p : model.params().all()) {
      float[] v = params.get(p.name());
      if (v == null) {
        throw new IllegalStateException("no rank returned parameter " + p.name());
      }
      ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
      b.asFloatBuffer().put(v);
      p.value().backend().fromHost(b, p.value());
    }
    return model;
  }

  private String export(Map<String, float[]> params) throws IOException {
    TransformerLM model = hostModel(params);
    Path target = new Path(runDir, MODEL);
    String tokenizer = tokenizer(cfg, init == null ? null : init.tokenizer(), fs.getConf());
    RunFiles.writeDir(fs, target, tmp -> {
      List<RunFiles.Written> files = new ArrayList<>();
      files.add(RunFiles.write(fs, new Path(tmp, ModelFiles.WEIGHTS), out -> ModelFiles.writeWeights(model, out)));
      RunFiles.write(fs, new Path(tmp, ModelFiles.CONFIG), out -> ModelFiles.writeConfig(model, out));
      if (tokenizer != null) {
        // With its tokenizer_config.json when it has one: the end-of-text token of moe-generate and export.
        Path src = new Path(tokenizer);
        FileSystem srcFs = src.getFileSystem(fs.getConf());
        for (Path f : new Path[] {src, new Path(src.getParent(), HfTokenizer.CONFIG_FILE)}) {
          if (f == src || srcFs.exists(f)) {
            files.add(RunFiles.write(fs, new Path(tmp, f.getName()), out -> {
              try (InputStream in = srcFs.open(f)) {
                in.transferTo(out);
              }
            }));
          }
        }
      }
      Map<String, String> sums = new java.util.LinkedHashMap<>();
      files.forEach(w -> sums.put(w.name(), w.sha256()));
      RunFiles.write(fs, new Path(tmp, ModelFiles.MANIFEST), out -> ModelFiles.writeManifest(sums, out));
    });
    return target.toString();
  }

  /** RUN/report.html from metrics.jsonl, also after a failure (a report is never a reason to fail a run). */
  private void writeReport() {
    try {
      Path report = RunReport.write(fs, runDir, new Path(runDir, RunDirectory.METRICS), "moe-spark run " + runDir.getName());
      console.println("report " + report);
    } catch (IOException | RuntimeException e) {
      console.println("no report: " + e.getMessage());
    }
  }

  /** metrics.jsonl: kept up to {@code fromStep} (a resumed run rewrites the steps after its checkpoint). */
  private void openMetrics(int fromStep) throws IOException {
    Path file = new Path(runDir, RunDirectory.METRICS);
    if (fromStep == 0 || !fs.exists(file)) {
      metrics = fs.create(file, true);
      return;
    }
    List<String> kept = new ArrayList<>();
    List<String> lines;
    try (BufferedReader in = new BufferedReader(new InputStreamReader(fs.open(file), StandardCharsets.UTF_8))) {
      lines = in.lines().toList();
    }
    for (int i = 0; i < lines.size(); i++) {
      String l = lines.get(i);
      if (l.isBlank()) {
        continue;
      }
      JsonNode line;
      try {
        line = JSON.readTree(l);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        if (i == lines.size() - 1) {
          // The last line of a driver killed mid-write: drop it (its step runs again from the checkpoint).
          console.println("warning: " + file + " line " + (i + 1) + " was cut off mid-write; dropped");
          continue;
        }
        throw new IOException(file + " line " + (i + 1) + " is not a JSON metrics line: " + e.getOriginalMessage(), e);
      }
      if (line.path("step").asInt() <= fromStep) {
        kept.add(l);
        if (line.has("loss")) { // a step's line, not an event's (placement_move)
          lastLoss = line.get("loss").asDouble();
        }
      }
    }
    RunDirectory.write(fs, file, kept.isEmpty() ? "" : String.join("\n", kept) + "\n");
    metrics = fs.append(file);
  }

  private void writeMetrics(ObjectNode line) throws IOException {
    metrics.write((JSON.writeValueAsString(line) + "\n").getBytes(StandardCharsets.UTF_8));
    metrics.hflush();
  }

}

package io.moespark.job.cli;

import io.moespark.job.StepFeedPlugin;
import io.moespark.job.RunDirectory;
import io.moespark.job.TrainJob;
import io.moespark.job.data.RunData;
import io.moespark.job.io.RunFiles;
import io.moespark.ops.cli.Args;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import java.io.IOException;
import java.io.InputStream;
import java.util.Set;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * {@code moe-train --config FILE [--set key=value]... [--master URL] [--conf spark.key=value]... [--run-dir DIR]
 * [--resume] [--stop-at STEP] [--init-from HF_DIR]}: the training job; prints the Spark UI's address (with
 * the MoE tab) and writes Spark's event log into DIR/events unless told otherwise. In-process on {@code local[*]} unless a master is given here or by spark-submit;
 * {@code --resume} continues the run in DIR from its last checkpoint (the config defaults to DIR's
 * config.json, and {@code --set} may change e.g. {@code parallel.ranks} or {@code train.steps});
 * {@code --stop-at} ends the run after that step with a checkpoint (for time-sliced clusters);
 * {@code --init-from} starts from a Hugging Face Mixtral model, or upcycles a dense Llama one.
 */
public final class TrainMain {
  private static final String USAGE = "moe-train --config FILE [--set key=value]... [--master URL] [--conf spark.key=value]... [--run-dir DIR] [--resume] [--stop-at STEP] [--init-from HF_DIR]";

  private TrainMain() {}

  public static void main(String[] argv) {
    Args.run("moe-train", USAGE, argv, () -> {
      Args a = new Args(argv, 0, Set.of("--config", "--set", "--master", "--run-dir", "--stop-at", "--init-from",
          "--conf"), Set.of("--resume"));
      boolean resume = a.flag("--resume");
      String config = a.optional("--config", null);
      String runDir = a.optional("--run-dir", null);
      if (config == null && !(resume && runDir != null)) {
        throw new ConfigException("option --config is required (or --resume with --run-dir)");
      }
      if (runDir == null) {
        runDir = "runs/" + java.nio.file.Path.of(config).getFileName().toString().replaceFirst("\\.ya?ml$", "");
      }
      String master = a.optional("--master", null);
      Configuration hadoop = RunFiles.hadoopConf(sparkConf(master, "moe-spark train " + runDir, a.all("--conf")));
      if (resume && master == null && System.getProperty("spark.master") == null) {
        // Not under spark-submit and no --master: continue where the run started, and say so.
        master = recordedMaster(runDir, hadoop).orElse(null);
        System.out.println(master != null
            ? "--resume: on the master the run started with, " + master + " (--master chooses another)"
            : "--resume: the run directory does not record its master; in-process on local[*] (--master chooses)");
      }
      SparkConf conf = sparkConf(master, "moe-spark train " + runDir, a.all("--conf"));
      // Configuration and data errors before Spark starts: one line, exit 2, nothing started or written.
      RunConfig cfg = config != null ? ConfigLoader.load(java.nio.file.Path.of(config), a.all("--set"))
          : ConfigLoader.fromTree(readRunConfig(runDir, hadoop), runDir + "/" + RunDirectory.CONFIG, a.all("--set"));
      RunData.check(RunData.withAbsolutePath(cfg), hadoop);
      TrainJob.checkBuild(conf, cfg);
      TrainJob.checkInputs(cfg, a.optional("--init-from", null), hadoop);
      String eventLog = eventLogByDefault(conf, runDir);
      JavaSparkContext sc = new JavaSparkContext(conf);
      sc.setLogLevel("WARN");
      if (sc.sc().uiWebUrl().isDefined()) {
        System.out.println("Spark UI: " + sc.sc().uiWebUrl().get() + " (the MoE tab: " + sc.sc().uiWebUrl().get()
            + "/" + io.moespark.job.ui.MoeTab.PREFIX + "/)");
      }
      if (eventLog != null) {
        System.out.println("event log: " + eventLog + " (after the run: bin/moe-history " + runDir + ")");
      }
      java.util.concurrent.CountDownLatch finished = new java.util.concurrent.CountDownLatch(1);
      // Ctrl-C / SIGTERM: stop after the current stage with a checkpoint and the report, while the
      // SparkContext (stopped by a later shutdown hook of lower priority) still runs.
      org.apache.spark.util.ShutdownHookManager.addShutdownHook(STOP_PRIORITY, new scala.runtime.AbstractFunction0<>() {
        @Override
        public scala.runtime.BoxedUnit apply() {
          if (finished.getCount() > 0) {
            System.out.println("stop requested: finishing the current stage, then a checkpoint and the report "
                + "(kill -9 stops at once; the last checkpoint is kept)");
            TrainJob.requestStop();
            try {
              finished.await(STOP_WAIT_S, java.util.concurrent.TimeUnit.SECONDS);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          }
          return scala.runtime.BoxedUnit.UNIT;
        }
      });
      try {
        TrainJob.Outcome o = TrainJob.run(sc, cfg, runDir, resume, a.integer("--stop-at", 0),
            a.optional("--init-from", null), System.out);
        System.out.printf(java.util.Locale.ROOT, "done: %d steps, final loss %.4f%s%n", o.steps(), o.loss(),
            Double.isNaN(o.valLoss()) ? "" : String.format(java.util.Locale.ROOT, ", validation loss %.4f", o.valLoss()));
      } finally {
        finished.countDown();
        sc.stop();
      }
    });
  }

  /** Above every Spark hook (SparkContext 50, a local executor's thread pool 100): runs first, while Spark is up. */
  private static final int STOP_PRIORITY = 1000;
  private static final long STOP_WAIT_S = 300;

  /**
   * The application's Spark configuration: spark-submit's settings when present, else the given master
   * or local[*]; the step-statistics plugin is always added to {@code spark.plugins}. Shared with the
   * benchmark launcher.
   */
  public static SparkConf sparkConf(String master, String appName) {
    return sparkConf(master, appName, java.util.List.of());
  }

  /** As above, with {@code --conf key=value} settings applied first (they win over every default here). */
  public static SparkConf sparkConf(String master, String appName, java.util.List<String> settings) {
    SparkConf conf = new SparkConf();
    for (String kv : settings) {
      int eq = kv.indexOf('=');
      if (eq <= 0 || !kv.startsWith("spark.")) {
        throw new ConfigException("--conf " + kv + ": expected key=value with a Spark setting (spark.*)");
      }
      conf.set(kv.substring(0, eq), kv.substring(eq + 1));
    }
    conf.setIfMissing("spark.app.name", appName);
    if (master != null) {
      conf.setMaster(master);
    } else {
      conf.setIfMissing("spark.master", "local[*]");
    }
    // A retried barrier stage cannot repair resident rank state (it fails again, naming the rank): fail fast.
    conf.setIfMissing("spark.stage.maxConsecutiveAttempts", "1");
    // After a lost executor the ranks reopen as soon as a replacement registers: a barrier stage short of
    // slots checks again every 2 s (Spark's default is 15 s), for up to 10 minutes.
    conf.setIfMissing("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "2s");
    conf.setIfMissing("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "300");
    // The shuffle path's records are float blocks, which LZ4 barely shrinks: save the CPU.
    conf.setIfMissing("spark.shuffle.compress", "false");
    String plugins = conf.get("spark.plugins", "");
    if (!plugins.contains(StepFeedPlugin.CLASS)) {
      conf.set("spark.plugins", plugins.isEmpty() ? StepFeedPlugin.CLASS : plugins + "," + StepFeedPlugin.CLASS);
    }
    secureByDefault(conf);
    // Executors started by this launcher (local-cluster) load the job from the jar this class came from.
    String self = TrainMain.class.getProtectionDomain().getCodeSource().getLocation().getPath();
    if (self.endsWith(".jar") && conf.get("spark.jars", "").isEmpty()) {
      conf.setJars(new String[] {self});
    }
    return conf;
  }

  /**
   * Authentication on by default wherever ranks listen on a network (DESIGN §4: nothing listens
   * unauthenticated): any master but in-process {@code local[...]}, unless the application already says
   * {@code spark.authenticate} (a cluster's own settings win). local-cluster gets a fresh random secret
   * for this run (kept in memory: never on a command line, never logged; executors receive it through
   * their environment); YARN and Kubernetes generate and distribute their own. A standalone cluster
   * needs its own shared secret (README, "Running on a cluster"), so there it stays the cluster's
   * choice. Network encryption follows authentication; the UIs' kill links are off.
   */
  static void secureByDefault(SparkConf conf) {
    conf.setIfMissing("spark.ui.killEnabled", "false");
    String master = conf.get("spark.master", "local[*]");
    boolean inProcess = master.startsWith("local") && !master.startsWith("local-cluster");
    if (inProcess || conf.contains("spark.authenticate") || master.startsWith("spark://")) {
      return;
    }
    conf.set("spark.authenticate", "true");
    conf.setIfMissing("spark.network.crypto.enabled", "true");
    if (master.startsWith("local-cluster")) {
      byte[] secret = new byte[32];
      new java.security.SecureRandom().nextBytes(secret);
      conf.set("spark.authenticate.secret", java.util.HexFormat.of().formatHex(secret));
    }
  }

  /**
   * Spark's event log on by default, into RUN_DIR/events (so that {@code bin/moe-history RUN_DIR} shows the
   * run, the MoE tab included); {@code spark.eventLog.enabled} or {@code spark.eventLog.dir} set by the user
   * or the cluster win. Returns the directory written to, null when the event log is off.
   */
  static String eventLogByDefault(SparkConf conf, String runDir) throws IOException {
    if (!conf.getBoolean("spark.eventLog.enabled", !conf.contains("spark.eventLog.enabled"))) {
      return null;
    }
    conf.set("spark.eventLog.enabled", "true");
    if (!conf.contains("spark.eventLog.dir")) {
      Path dir = new Path(runDir, EVENTS);
      FileSystem fs = dir.getFileSystem(org.apache.spark.deploy.SparkHadoopUtil.get().newConfiguration(conf));
      fs.mkdirs(dir);
      conf.set("spark.eventLog.dir", fs.makeQualified(dir).toString());
    }
    return conf.get("spark.eventLog.dir");
  }

  /** The event log's folder in a run directory (by default). */
  public static final String EVENTS = "events";

  /** The master a run directory records ({@link RunDirectory#LAUNCH}), if it does. */
  public static java.util.Optional<String> recordedMaster(String runDir, Configuration conf) throws IOException {
    Path file = new Path(runDir, RunDirectory.LAUNCH);
    FileSystem fs = file.getFileSystem(conf);
    if (!fs.exists(file)) {
      return java.util.Optional.empty();
    }
    try (InputStream in = fs.open(file)) {
      String m = new com.fasterxml.jackson.databind.ObjectMapper().readTree(in).path("master").asText("");
      return m.isEmpty() ? java.util.Optional.empty() : java.util.Optional.of(m);
    }
  }

  private static com.fasterxml.jackson.databind.JsonNode readRunConfig(String runDir, Configuration conf)
      throws IOException {
    Path file = new Path(runDir, RunDirectory.CONFIG);
    FileSystem fs = file.getFileSystem(conf);
    if (!fs.exists(file)) {
      throw new ConfigException("--resume: " + file + " does not exist (not a run directory); pass --config");
    }
    try (InputStream in = fs.open(file)) {
      return new com.fasterxml.jackson.databind.ObjectMapper().readTree(in);
    }
  }
}

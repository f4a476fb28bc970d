package io.moespark.job.cli;

import io.moespark.ops.cli.Args;
import io.moespark.ops.config.ConfigException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * {@code moe-history RUN_DIR... [--port N]}: Spark's History Server over the event logs of one or more
 * runs (each RUN_DIR/events, as moe-train writes them by default), with the MoE tab (its plugin is in this
 * jar, on the server's class path). The logs are linked into one folder (the History Server reads one);
 * prints the address and runs until stopped (Ctrl-C).
 */
public final class HistoryMain {
  private static final String USAGE = "moe-history RUN_DIR... [--port N]";

  private HistoryMain() {}

  public static void main(String[] argv) {
    Args.run("moe-history", USAGE, argv, () -> {
      List<String> runs = new ArrayList<>();
      int port = 18080;
      for (int i = 0; i < argv.length; i++) {
        if (argv[i].equals("--port") && i + 1 < argv.length) {
          port = Integer.parseInt(argv[++i]);
        } else if (argv[i].startsWith("--")) {
          throw new ConfigException("unknown option '" + argv[i] + "' (known: --port N)");
        } else {
          runs.add(argv[i]);
        }
      }
      if (runs.isEmpty()) {
        throw new ConfigException("usage: moe-history RUN_DIR... [--port N] (run directories whose events/ folder "
            + "holds Spark event logs)");
      }
      Path logs = Files.createTempDirectory("moe-history-");
      for (String run : runs) {
        Path events = Path.of(run, TrainMain.EVENTS).toAbsolutePath();
        if (!Files.isDirectory(events)) {
          throw new ConfigException(run + ": no " + TrainMain.EVENTS + "/ folder (runs write it by default; on a "
              + "cluster, point a History Server's spark.history.fs.logDirectory at the runs' spark.eventLog.dir)");
        }
        try (Stream<Path> s = Files.list(events)) {
          for (Path log : s.toList()) {
            Files.createSymbolicLink(logs.resolve(log.getFileName()), log);
          }
        }
      }
      System.setProperty("spark.history.fs.logDirectory", logs.toUri().toString());
      System.setProperty("spark.history.ui.port", Integer.toString(port));
      System.setProperty("spark.history.fs.update.interval", "2s");
      System.out.println("History Server: http://localhost:" + port + " (" + runs.size() + " run(s), each "
          + "application's MoE tab at /history/APP_ID/moe/; Ctrl-C stops it)");
      // Binds, then waits until the process is stopped.
      org.apache.spark.deploy.history.HistoryServer.main(new String[0]);
    });
  }
}

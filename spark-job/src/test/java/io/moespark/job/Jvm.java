package io.moespark.job;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The start of a command line for a child JVM that runs the project's classes as the tests see them. */
final class Jvm {
  private Jvm() {}

  /**
   * {@code java -Xmx1g -cp <this JVM's class path> <Spark's --add-opens>} with the launchers' logging
   * ({@code conf/log4j2.properties}, as {@code bin/} sets it); the caller adds options and a main class.
   */
  static List<String> command() {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx1g", "-cp", System.getProperty("java.class.path"),
        "-Dlog4j2.configurationFile=" + Path.of("..", "conf", "log4j2.properties").toAbsolutePath().normalize()));
    for (String opt : System.getProperty("moe.addOpens", "").split("\\s+")) {
      if (!opt.isEmpty()) {
        cmd.add(opt);
      }
    }
    return cmd;
  }
}

package io.moespark.ops.cli;

import io.moespark.ops.config.ConfigException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** GNU-style {@code --name value} / {@code --flag} options; unknown options are errors naming them. */
public final class Args {
  private final Map<String, List<String>> values = new HashMap<>();

  public Args(String[] argv, int from, Set<String> withValue, Set<String> flags) {
    for (int i = from; i < argv.length; i++) {
      String a = argv[i];
      if (withValue.contains(a)) {
        if (i + 1 >= argv.length) {
          throw new ConfigException("option " + a + " needs a value");
        }
        values.computeIfAbsent(a, k -> new ArrayList<>()).add(argv[++i]);
      } else if (flags.contains(a)) {
        values.computeIfAbsent(a, k -> new ArrayList<>()).add("true");
      } else {
        List<String> known = new ArrayList<>(withValue);
        known.addAll(flags);
        known.sort(null);
        throw new ConfigException("unknown option '" + a + "' (known: " + String.join(", ", known) + ")");
      }
    }
  }

  public String required(String name) {
    String v = optional(name, null);
    if (v == null) {
      throw new ConfigException("option " + name + " is required");
    }
    return v;
  }

  public String optional(String name, String dflt) {
    List<String> v = values.get(name);
    return v == null ? dflt : v.get(v.size() - 1);
  }

  public List<String> all(String name) {
    return values.getOrDefault(name, List.of());
  }

  public boolean flag(String name) {
    return values.containsKey(name);
  }

  public int integer(String name, int dflt) {
    String v = optional(name, null);
    if (v == null) {
      return dflt;
    }
    try {
      int n = Integer.parseInt(v);
      if (n <= 0) {
        throw new NumberFormatException();
      }
      return n;
    } catch (NumberFormatException e) {
      throw new ConfigException("option " + name + " expects a positive integer, got '" + v + "'");
    }
  }

  /** A number (any finite double), or {@code dflt} when absent. */
  public double number(String name, double dflt) {
    String v = optional(name, null);
    try {
      double x = v == null ? dflt : Double.parseDouble(v);
      if (!Double.isFinite(x)) {
        throw new NumberFormatException();
      }
      return x;
    } catch (NumberFormatException e) {
      throw new ConfigException("option " + name + " expects a number, got '" + v + "'");
    }
  }

  /** A whole number (any long), or {@code dflt} when absent. */
  public long whole(String name, long dflt) {
    String v = optional(name, null);
    try {
      return v == null ? dflt : Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new ConfigException("option " + name + " expects a whole number, got '" + v + "'");
    }
  }

  /**
   * Runs a command body. {@code --help} or {@code -h} anywhere print "usage: " and {@code usage} and exit 0
   * without running it; known failures print one line to stderr and exit 2 (usage, configuration and input
   * problems) or 1 (anything else).
   */
  public static void run(String command, String usage, String[] argv, Body body) {
    if (wantsHelp(argv)) {
      System.out.println("usage: " + usage);
      return;
    }
    try {
      body.run();
    } catch (ConfigException e) {
      System.err.println(command + ": " + e.getMessage());
      System.exit(2);
    } catch (Exception e) {
      System.err.println(command + ": " + (e.getMessage() == null ? e.toString() : e.getMessage()));
      System.exit(1);
    }
  }

  /** Whether the arguments ask for the usage ({@code --help} or {@code -h}). */
  public static boolean wantsHelp(String[] argv) {
    for (String a : argv) {
      if (a.equals("--help") || a.equals("-h")) {
        return true;
      }
    }
    return false;
  }

  public interface Body {
    void run() throws Exception;
  }
}

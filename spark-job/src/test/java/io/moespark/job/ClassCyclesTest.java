package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * No two top-level classes of the project depend on each other, directly or through others: read from
 * the compiled classes (every class name in each class file's constant pool, nested classes and lambdas
 * counted as their top-level class). The one allowed pair is the compute seam's handle and interface,
 * {@code Tensor} and {@code Backend}, which are one idea in two types.
 */
class ClassCyclesTest {
  private static final Pattern REF = Pattern.compile("io/moespark/[A-Za-z0-9_/$]+");
  private static final Set<Set<String>> ALLOWED = Set.of(
      Set.of("io/moespark/ops/tensor/Tensor", "io/moespark/ops/backend/Backend"));

  @Test
  void noCyclesBetweenClasses() throws IOException {
    Map<String, Set<String>> deps = new TreeMap<>();
    for (Path dir : List.of(Path.of("target/classes"), Path.of("../expert-ops/target/classes"),
        Path.of("../data-prep/target/classes"))) {
      if (!Files.isDirectory(dir)) {
        continue;
      }
      try (Stream<Path> s = Files.walk(dir)) {
        for (Path p : s.filter(x -> x.toString().endsWith(".class")).toList()) {
          String me = topLevel(dir.relativize(p).toString().replace('\\', '/').replace(".class", ""));
          Set<String> d = deps.computeIfAbsent(me, k -> new TreeSet<>());
          for (String text : utf8Constants(p)) {
            Matcher m = REF.matcher(text);
            while (m.find()) {
              String other = topLevel(m.group());
              if (!other.equals(me)) {
                d.add(other);
              }
            }
          }
        }
      }
    }
    assertTrue(deps.size() > 60, "expected the project's compiled classes, found " + deps.size());
    for (Set<String> pair : ALLOWED) {
      List<String> ab = new ArrayList<>(pair);
      deps.getOrDefault(ab.get(0), new TreeSet<>()).remove(ab.get(1));
    }
    assertEquals(List.of(), cycles(deps), "groups of classes that depend on each other");
  }

  private static String topLevel(String name) {
    int i = name.indexOf('$');
    return i < 0 ? name : name.substring(0, i);
  }

  /** Strongly connected components of more than one class (Tarjan). */
  private static List<List<String>> cycles(Map<String, Set<String>> g) {
    Map<String, Integer> index = new HashMap<>(), low = new HashMap<>();
    Deque<String> stack = new ArrayDeque<>();
    Set<String> onStack = new HashSet<>();
    List<List<String>> out = new ArrayList<>();
    for (String v : g.keySet()) {
      if (!index.containsKey(v)) {
        connect(v, g, index, low, stack, onStack, out);
      }
    }
    return out;
  }

  private static void connect(String v, Map<String, Set<String>> g, Map<String, Integer> index,
      Map<String, Integer> low, Deque<String> stack, Set<String> onStack, List<List<String>> out) {
    index.put(v, index.size());
    low.put(v, index.get(v));
    stack.push(v);
    onStack.add(v);
    for (String w : g.getOrDefault(v, Set.of())) {
      if (!g.containsKey(w)) {
        continue;
      }
      if (!index.containsKey(w)) {
        connect(w, g, index, low, stack, onStack, out);
        low.put(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.contains(w)) {
        low.put(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v).equals(index.get(v))) {
      List<String> component = new ArrayList<>();
      String w;
      do {
        w = stack.pop();
        onStack.remove(w);
        component.add(w);
      } while (!w.equals(v));
      if (component.size() > 1) {
        out.add(component);
      }
    }
  }

  /** The UTF-8 constants of a class file (they hold every class name it refers to, descriptors included). */
  private static List<String> utf8Constants(Path classFile) throws IOException {
    DataInputStream in = new DataInputStream(new ByteArrayInputStream(Files.readAllBytes(classFile)));
    in.readInt(); // magic
    in.readUnsignedShort(); // minor
    in.readUnsignedShort(); // major
    int count = in.readUnsignedShort();
    List<String> out = new ArrayList<>();
    for (int i = 1; i < count; i++) {
      int tag = in.readUnsignedByte();
      switch (tag) {
        case 1 -> out.add(in.readUTF());
        case 3, 4, 9, 10, 11, 12, 17, 18 -> in.readInt();
        case 5, 6 -> {
          in.readLong();
          i++; // eight-byte constants take two slots
        }
        case 7, 8, 16, 19, 20 -> in.readUnsignedShort();
        case 15 -> {
          in.readUnsignedByte();
          in.readUnsignedShort();
        }
        default -> throw new IOException(classFile + ": unknown constant pool tag " + tag);
      }
    }
    return out;
  }
}

package io.moespark.ops.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Reads a {@link RunConfig}: built-in defaults, overlaid by a YAML file, overlaid by {@code key=value}
 * overrides. Unknown keys, wrong types and out-of-range values are errors that name the key.
 */
public final class ConfigLoader {
  private static final ObjectMapper YAML = JsonMapper.builder(new YAMLFactory())
      .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
      .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
      .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
      .enable(DeserializationFeature.READ_UNKNOWN_ENUM_VALUES_AS_NULL)
      .enable(MapperFeature.ACCEPT_CASE_INSENSITIVE_ENUMS)
      .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
      .build();

  private ConfigLoader() {}

  /** Loads {@code file} (null: defaults only) and applies the overrides in order. */
  public static RunConfig load(Path file, List<String> overrides) {
    ObjectNode tree = defaults();
    if (file != null) {
      JsonNode user;
      try {
        user = YAML.readTree(Files.readString(file));
      } catch (NoSuchFileException e) {
        throw new ConfigException("config file " + file + " does not exist");
      } catch (IOException e) {
        throw new ConfigException(file + ": not valid YAML: " + e.getMessage(), e);
      }
      if (user != null && !user.isMissingNode() && !user.isNull()) {
        if (!user.isObject()) {
          throw new ConfigException(file + ": expected a mapping of sections (model, moe, train, ...)");
        }
        merge(tree, (ObjectNode) user, "", file.toString());
      }
    }
    return bind(tree, file == null ? "config" : file.toString(), overrides);
  }

  /** The configuration as a tree in YAML key names (what a run writes to its config.json). */
  public static JsonNode toTree(RunConfig c) {
    return YAML.valueToTree(c);
  }

  /** Reads back what {@link #toTree} wrote. */
  public static RunConfig fromTree(JsonNode tree, String source) {
    return fromTree(tree, source, List.of());
  }

  /** Reads back what {@link #toTree} wrote, then applies the overrides in order. */
  public static RunConfig fromTree(JsonNode tree, String source, List<String> overrides) {
    ObjectNode t = defaults();
    merge(t, (ObjectNode) tree, "", source);
    return bind(t, source, overrides);
  }

  /**
   * Applies the overrides, then binds and validates; an error about a key that an override set names the
   * override ({@code (--set key=value)}) instead of the source.
   */
  private static RunConfig bind(ObjectNode tree, String source, List<String> overrides) {
    Map<String, String> setBy = new java.util.HashMap<>();
    for (String o : overrides) {
      setBy.put(applyOverride(tree, o), o);
    }
    try {
      return bind(tree, source);
    } catch (ConfigException e) {
      String msg = e.getMessage().startsWith(source + ": ") ? e.getMessage().substring(source.length() + 2)
          : e.getMessage();
      int colon = msg.indexOf(": ");
      String override = colon > 0 ? setBy.get(msg.substring(0, colon)) : null;
      if (override == null) {
        throw e;
      }
      throw new ConfigException(msg + " (--set " + override + ")", e);
    }
  }

  private static RunConfig bind(ObjectNode tree, String source) {
    RunConfig c;
    try {
      c = YAML.treeToValue(tree, RunConfig.class);
    } catch (JsonMappingException e) {
      String key = e.getPath().stream().map(r -> r.getFieldName() == null ? "[" + r.getIndex() + "]" : r.getFieldName())
          .collect(Collectors.joining("."));
      String msg = e.getOriginalMessage();
      int cut = msg.indexOf(" at [");
      throw new ConfigException(source + ": " + key + ": " + (cut > 0 ? msg.substring(0, cut) : msg), e);
    } catch (JsonProcessingException e) {
      throw new ConfigException(source + ": " + e.getOriginalMessage(), e);
    }
    nullEnum(c.model().ropeScaling(), "model.rope_scaling", "none, linear, llama3");
    nullEnum(c.moe().activation(), "moe.activation", "swiglu, gelu");
    nullEnum(c.moe().router(), "moe.router", "topk, expert_choice, hash");
    nullEnum(c.moe().dropPolicy(), "moe.drop_policy", "position, gate");
    nullEnum(c.parallel().dispatch(), "parallel.dispatch", "direct, shuffle");
    nullEnum(c.parallel().transport(), "parallel.transport", "socket, nccl");
    nullEnum(c.parallel().device(), "parallel.device", "cpu, cuda");
    nullEnum(c.parallel().precision(), "parallel.precision", "fp32, tf32, bf16");
    nullEnum(c.parallel().placement(), "parallel.placement", "fixed, schedule, dynamic");
    try {
      return c.validate();
    } catch (ConfigException e) {
      throw new ConfigException(source + ": " + e.getMessage(), e);
    }
  }

  private static void nullEnum(Object v, String key, String allowed) {
    if (v == null) {
      throw new ConfigException(key + ": expected one of " + allowed);
    }
  }

  private static ObjectNode defaults() {
    try (InputStream in = ConfigLoader.class.getResourceAsStream("defaults.yaml")) {
      return (ObjectNode) YAML.readTree(in);
    } catch (IOException e) {
      throw new IllegalStateException("built-in defaults.yaml unreadable", e);
    }
  }

  /** Overlays user onto base; every user key must exist in base (the defaults list every key). */
  private static void merge(ObjectNode base, ObjectNode user, String path, String source) {
    Iterator<Map.Entry<String, JsonNode>> it = user.fields();
    while (it.hasNext()) {
      Map.Entry<String, JsonNode> f = it.next();
      String key = path.isEmpty() ? f.getKey() : path + "." + f.getKey();
      JsonNode b = base.get(f.getKey());
      if (b == null) {
        throw new ConfigException(source + ": unknown key '" + key + "'" + known(base, path));
      }
      if (b.isObject()) {
        if (!f.getValue().isObject()) {
          throw new ConfigException(source + ": " + key + ": expected a section (mapping), got " + f.getValue());
        }
        merge((ObjectNode) b, (ObjectNode) f.getValue(), key, source);
      } else {
        base.set(f.getKey(), f.getValue());
      }
    }
  }

  private static String known(ObjectNode node, String path) {
    StringBuilder sb = new StringBuilder(" (known keys");
    sb.append(path.isEmpty() ? "" : " of " + path).append(": ");
    Iterator<String> names = node.fieldNames();
    while (names.hasNext()) {
      sb.append(names.next()).append(names.hasNext() ? ", " : ")");
    }
    return sb.toString();
  }

  /** The Java type of a key's value in {@link RunConfig} (its records are the schema), or null. */
  private static Class<?> typeOf(String key) {
    Class<?> c = RunConfig.class;
    for (String part : key.split("\\.")) {
      String name = camel(part);
      java.lang.reflect.RecordComponent[] components = c.getRecordComponents();
      if (components == null) {
        return null;
      }
      c = java.util.Arrays.stream(components).filter(r -> r.getName().equals(name)).findFirst()
          .map(java.lang.reflect.RecordComponent::getType).orElse(null);
      if (c == null) {
        return null;
      }
    }
    return c;
  }

  private static String camel(String snake) {
    StringBuilder b = new StringBuilder();
    for (String w : snake.split("_")) {
      b.append(b.length() == 0 ? w : Character.toUpperCase(w.charAt(0)) + w.substring(1));
    }
    return b.toString();
  }

  /** Sets one {@code key=value} in the tree; returns the key. The value must have the key's type. */
  private static String applyOverride(ObjectNode tree, String override) {
    int eq = override.indexOf('=');
    if (eq <= 0) {
      throw new ConfigException("--set " + override + ": expected key=value, e.g. train.steps=200");
    }
    String key = override.substring(0, eq), raw = override.substring(eq + 1);
    String[] parts = key.split("\\.");
    ObjectNode node = tree;
    for (int i = 0; i < parts.length - 1; i++) {
      JsonNode next = node.get(parts[i]);
      if (next == null || !next.isObject()) {
        throw new ConfigException("--set " + key + ": unknown key '" + key + "'");
      }
      node = (ObjectNode) next;
    }
    JsonNode old = node.get(parts[parts.length - 1]);
    if (old == null || old.isObject()) {
      throw new ConfigException("--set " + key + ": unknown key '" + key + "'");
    }
    JsonNode value;
    try {
      value = old.isTextual() ? TextNode.valueOf(raw) : YAML.readTree(raw);
    } catch (IOException e) {
      throw new ConfigException("--set " + key + ": cannot read value '" + raw + "'", e);
    }
    value = value == null || value.isMissingNode() ? TextNode.valueOf(raw) : value;
    Class<?> type = typeOf(key);
    String expected = (type == int.class || type == long.class) && !value.isIntegralNumber() ? "an integer"
        : type == double.class && !value.isNumber() ? "a number"
        : type == boolean.class && !value.isBoolean() ? "true or false" : null;
    if (expected != null) {
      throw new ConfigException(key + ": expected " + expected + ", got '" + raw + "' (--set " + override + ")");
    }
    node.set(parts[parts.length - 1], value);
    return key;
  }
}

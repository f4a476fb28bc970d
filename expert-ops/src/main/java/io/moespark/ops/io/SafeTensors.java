package io.moespark.ops.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then raw little-endian tensor bytes. F32 and F64 are supported.
 * Streams, so callers choose the file system (local here, Hadoop in the Spark job).
 */
public final class SafeTensors {
  /** Duplicate tensor names are an error, not "the last one wins". */
  private static final ObjectMapper JSON = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
  private static final long MAX_HEADER = 100L << 20;

  private SafeTensors() {}

  /** One tensor of a file: its name, type, shape and byte range in the data section. */
  public record Entry(String name, DType dtype, long[] shape, long begin, long end) {}

  public static void write(Map<String, Tensor> tensors, Map<String, String> metadata, OutputStream out)
      throws IOException {
    List<Entry> entries = new ArrayList<>();
    long offset = 0;
    for (Map.Entry<String, Tensor> t : tensors.entrySet()) {
      Tensor a = t.getValue();
      long bytes = a.length() * a.dtype().width();
      entries.add(new Entry(t.getKey(), a.dtype(), a.shape(), offset, offset + bytes));
      offset += bytes;
    }
    writeHeader(entries, metadata, out);
    for (Tensor a : tensors.values()) {
      ByteBuffer b = ByteBuffer.allocate((int) (a.length() * a.dtype().width())).order(ByteOrder.LITTLE_ENDIAN);
      a.backend().toHost(a, b);
      out.write(b.array());
    }
  }

  private static void writeHeader(List<Entry> entries, Map<String, String> metadata, OutputStream out)
      throws IOException {
    ObjectNode header = JSON.createObjectNode();
    if (!metadata.isEmpty()) {
      ObjectNode meta = header.putObject("__metadata__");
      metadata.forEach(meta::put);
    }
    for (Entry e : entries) {
      ObjectNode n = header.putObject(e.name());
      n.put("dtype", e.dtype() == DType.F32 ? "F32" : "F64");
      var shape = n.putArray("shape");
      for (long s : e.shape()) {
        shape.add(s);
      }
      n.putArray("data_offsets").add(e.begin()).add(e.end());
    }
    byte[] h = JSON.writeValueAsBytes(header);
    int padded = (h.length + 7) / 8 * 8;
    out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
    out.write(h);
    for (int i = h.length; i < padded; i++) {
      out.write(' ');
    }
  }

  /**
   * Copies a safetensors file under new tensor names ({@code rename} maps each name; null drops nothing,
   * every tensor must map): the header is rewritten, the data bytes stream through unchanged, so a file
   * larger than the heap converts in constant memory.
   */
  public static void rename(InputStream in, String source, UnaryOperator<String> rename, Map<String, String> metadata,
      OutputStream out) throws IOException {
    DataInputStream data = new DataInputStream(in);
    try {
      List<Entry> entries = new ArrayList<>();
      for (Entry e : readHeader(data, source)) {
        entries.add(new Entry(rename.apply(e.name()), e.dtype(), e.shape(), e.begin(), e.end()));
      }
      writeHeader(entries, metadata, out);
      long total = entries.isEmpty() ? 0 : entries.get(entries.size() - 1).end();
      byte[] buf = new byte[1 << 16];
      for (long left = total; left > 0; ) {
        int n = data.read(buf, 0, (int) Math.min(buf.length, left));
        if (n < 0) {
          throw new EOFException();
        }
        out.write(buf, 0, n);
        left -= n;
      }
      requireEnd(data, total, source);
    } catch (EOFException e) {
      throw truncated(source, e);
    }
  }

  /**
   * A file that breaks the format (truncated, a bad header, offsets that do not tile the data): bad input,
   * which reading again does not change; other IOExceptions are the storage's.
   */
  public static final class Malformed extends IOException {
    private static final long serialVersionUID = 1L;

    Malformed(String message) {
      super(message);
    }

    Malformed(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** Reads every tensor onto {@code backend}; {@code source} names the file in error messages. */
  public static Map<String, Tensor> read(InputStream in, String source, Backend backend) throws IOException {
    return read(in, source, backend, name -> true);
  }

  /**
   * Reads the tensors whose names {@code wanted} accepts onto {@code backend}, skipping the others'
   * bytes (a rank reads only what it holds); the whole file is still checked against the format.
   */
  public static Map<String, Tensor> read(InputStream in, String source, Backend backend, Predicate<String> wanted)
      throws IOException {
    DataInputStream data = new DataInputStream(in);
    try {
      Map<String, Tensor> out = new LinkedHashMap<>();
      long pos = 0;
      for (Entry e : readHeader(data, source)) {
        long bytes = e.end() - e.begin();
        if (wanted.test(e.name())) {
          byte[] raw = new byte[(int) bytes];
          data.readFully(raw);
          Tensor a = backend.empty(e.dtype(), e.shape());
          backend.fromHost(ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN), a);
          out.put(e.name(), a);
        } else {
          data.skipNBytes(bytes);
        }
        pos = e.end();
      }
      requireEnd(data, pos, source);
      return out;
    } catch (EOFException e) {
      throw truncated(source, e);
    }
  }

  private static IOException truncated(String source, EOFException e) {
    return new Malformed(source + ": truncated safetensors file (a tensor's data_offsets point past its end)", e);
  }

  private static void requireEnd(DataInputStream data, long pos, String source) throws IOException {
    if (data.read() != -1) {
      throw new Malformed(source + ": bytes after the last tensor (ends at byte " + pos
          + " of the data); the format allows none");
    }
  }

  /**
   * Reads and checks the header: the tensors in data order, contiguous from byte 0 with no gaps or
   * overlaps, each range the size its type and shape say. The stream is left at the start of the data.
   */
  public static List<Entry> readHeader(DataInputStream data, String source) throws IOException {
    byte[] lenBytes = new byte[8];
    try {
      data.readFully(lenBytes);
      long len = ByteBuffer.wrap(lenBytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
      if (len <= 0 || len > MAX_HEADER) {
        throw new Malformed(source + ": not a safetensors file (header length " + len + ")");
      }
      byte[] h = new byte[(int) len];
      data.readFully(h);
      JsonNode header;
      try {
        header = JSON.readTree(new String(h, StandardCharsets.UTF_8));
      } catch (JsonProcessingException e) {
        throw new Malformed(source + ": the safetensors header is not valid JSON: " + e.getOriginalMessage(), e);
      }
      if (header == null || !header.isObject()) {
        throw new Malformed(source + ": the safetensors header is not a JSON object");
      }
      // Offsets are relative to the end of the header; reading in offset order is one pass over the
      // stream whatever order the writer used for the header.
      Iterator<Map.Entry<String, JsonNode>> it = header.fields();
      List<Map.Entry<String, JsonNode>> fields = new ArrayList<>();
      while (it.hasNext()) {
        Map.Entry<String, JsonNode> e = it.next();
        if (!e.getKey().equals("__metadata__")) {
          fields.add(e);
        }
      }
      fields.sort(Comparator.comparingLong(e -> offset(e, 0, source)));
      List<Entry> entries = new ArrayList<>();
      long pos = 0;
      for (Map.Entry<String, JsonNode> e : fields) {
        JsonNode n = e.getValue();
        DType type = type(n.path("dtype").asText(), source, e.getKey());
        long begin = offset(e, 0, source), end = offset(e, 1, source);
        JsonNode dims = n.get("shape");
        if (dims == null || !dims.isArray()) {
          throw new Malformed(source + ": tensor '" + e.getKey() + "' has no shape array");
        }
        long[] shape = new long[dims.size()];
        long count = 1;
        for (int i = 0; i < shape.length; i++) {
          shape[i] = dims.get(i).asLong(-1);
          if (!dims.get(i).canConvertToLong() || shape[i] < 0) {
            throw new Malformed(source + ": tensor '" + e.getKey() + "' has shape " + dims
                + "; expected non-negative integers");
          }
          count = Math.multiplyExact(count, shape[i]);
        }
        if (begin != pos) {
          throw new Malformed(source + ": tensor '" + e.getKey() + "' starts at byte " + begin + " of the data, "
              + (begin < pos ? "overlapping" : "leaving a gap after") + " the previous tensor, which ends at " + pos);
        }
        if (end - begin != count * type.width()) {
          throw new Malformed(source + ": tensor '" + e.getKey() + "' has data_offsets [" + begin + ", " + end
              + "] for " + count + " values of " + type.width() + " bytes; expected " + count * type.width() + " bytes");
        }
        if (count > Integer.MAX_VALUE / type.width()) {
          throw new Malformed(source + ": tensor '" + e.getKey() + "' has " + count + " values; at most "
              + Integer.MAX_VALUE / type.width() + " are supported per tensor");
        }
        entries.add(new Entry(e.getKey(), type, shape, begin, end));
        pos = end;
      }
      return entries;
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
  }

  /** data_offsets[which] of a header entry, checked to be a pair of ordered non-negative integers. */
  private static long offset(Map.Entry<String, JsonNode> e, int which, String source) {
    JsonNode o = e.getValue().get("data_offsets");
    if (o == null || !o.isArray() || o.size() != 2 || !o.get(0).canConvertToLong() || !o.get(1).canConvertToLong()
        || o.get(0).asLong() < 0 || o.get(1).asLong() < o.get(0).asLong()) {
      throw new UncheckedIOException(new Malformed(source + ": tensor '" + e.getKey() + "' has data_offsets "
          + o + "; expected [begin, end] with 0 <= begin <= end"));
    }
    return o.get(which).asLong();
  }

  private static DType type(String code, String source, String name) throws IOException {
    return switch (code) {
      case "F32" -> DType.F32;
      case "F64" -> DType.F64;
      default -> throw new Malformed(source + ": tensor '" + name + "' has dtype " + code + "; expected F32 or F64");
    };
  }
}

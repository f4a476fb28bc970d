package io.moespark.ops.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then raw little-endian tensor bytes. F32 and F64 are supported.
 * Streams, so callers choose the file system (local here, Hadoop in the Spark job).
 */
public final class SafeTensors {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final long MAX_HEADER = 100L << 20;

  private SafeTensors() {}

  public static void write(Map<String, INDArray> tensors, Map<String, String> metadata, OutputStream out)
      throws IOException {
    ObjectNode header = JSON.createObjectNode();
    if (!metadata.isEmpty()) {
      ObjectNode meta = header.putObject("__metadata__");
      metadata.forEach(meta::put);
    }
    long offset = 0;
    for (Map.Entry<String, INDArray> t : tensors.entrySet()) {
      INDArray a = t.getValue();
      ObjectNode n = header.putObject(t.getKey());
      n.put("dtype", code(a.dataType(), t.getKey()));
      var shape = n.putArray("shape");
      for (long s : a.shape()) {
        shape.add(s);
      }
      long bytes = a.length() * a.dataType().width();
      n.putArray("data_offsets").add(offset).add(offset + bytes);
      offset += bytes;
    }
    byte[] h = JSON.writeValueAsBytes(header);
    int padded = (h.length + 7) / 8 * 8;
    ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
    out.write(len.array());
    out.write(h);
    for (int i = h.length; i < padded; i++) {
      out.write(' ');
    }
    for (INDArray a : tensors.values()) {
      INDArray c = a.dup('c');
      ByteBuffer b = ByteBuffer.allocate((int) (c.length() * c.dataType().width())).order(ByteOrder.LITTLE_ENDIAN);
      if (c.dataType() == DataType.FLOAT) {
        b.asFloatBuffer().put(c.data().asFloat());
      } else {
        b.asDoubleBuffer().put(c.data().asDouble());
      }
      out.write(b.array());
    }
  }

  /** Reads every tensor; {@code source} names the file in error messages. */
  public static Map<String, INDArray> read(InputStream in, String source) throws IOException {
    DataInputStream data = new DataInputStream(in);
    byte[] lenBytes = new byte[8];
    try {
      data.readFully(lenBytes);
      long len = ByteBuffer.wrap(lenBytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
      if (len <= 0 || len > MAX_HEADER) {
        throw new IOException(source + ": not a safetensors file (header length " + len + ")");
      }
      byte[] h = new byte[(int) len];
      data.readFully(h);
      JsonNode header = JSON.readTree(new String(h, StandardCharsets.UTF_8));
      // Offsets are relative to the end of the header; reading in offset order is one pass over the
      // stream whatever order the writer used for the header.
      Iterator<Map.Entry<String, JsonNode>> it = header.fields();
      List<Map.Entry<String, JsonNode>> entries = new ArrayList<>();
      while (it.hasNext()) {
        Map.Entry<String, JsonNode> e = it.next();
        if (!e.getKey().equals("__metadata__")) {
          entries.add(e);
        }
      }
      entries.sort(Comparator.comparingLong(e -> e.getValue().get("data_offsets").get(0).asLong()));
      Map<String, INDArray> out = new LinkedHashMap<>();
      long pos = 0;
      for (Map.Entry<String, JsonNode> e : entries) {
        JsonNode n = e.getValue();
        DataType type = type(n.get("dtype").asText(), source, e.getKey());
        long begin = n.get("data_offsets").get(0).asLong(), end = n.get("data_offsets").get(1).asLong();
        long[] shape = new long[n.get("shape").size()];
        long count = 1;
        for (int i = 0; i < shape.length; i++) {
          shape[i] = n.get("shape").get(i).asLong();
          count *= shape[i];
        }
        if (end - begin != count * type.width() || begin < pos) {
          throw new IOException(source + ": tensor '" + e.getKey() + "' has inconsistent data_offsets");
        }
        data.skipNBytes(begin - pos);
        byte[] raw = new byte[(int) (end - begin)];
        data.readFully(raw);
        pos = end;
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        INDArray a;
        if (type == DataType.FLOAT) {
          float[] v = new float[(int) count];
          b.asFloatBuffer().get(v);
          a = Nd4j.create(v, shape, 'c');
        } else {
          double[] v = new double[(int) count];
          b.asDoubleBuffer().get(v);
          a = Nd4j.create(v, shape, 'c');
        }
        out.put(e.getKey(), a);
      }
      return out;
    } catch (EOFException e) {
      throw new IOException(source + ": truncated safetensors file", e);
    }
  }

  private static String code(DataType t, String name) {
    return switch (t) {
      case FLOAT -> "F32";
      case DOUBLE -> "F64";
      default -> throw new IllegalArgumentException("tensor " + name + ": unsupported dtype " + t);
    };
  }

  private static DataType type(String code, String source, String name) throws IOException {
    return switch (code) {
      case "F32" -> DataType.FLOAT;
      case "F64" -> DataType.DOUBLE;
      default -> throw new IOException(source + ": tensor '" + name + "' has dtype " + code + "; expected F32 or F64");
    };
  }
}

package io.moespark.ops.collective;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * Wire format of both paths: one message (direct path) or shuffle record (shuffle path) per (source,
 * destination) block, a compact header then raw little-endian values; no Java serialization.
 *
 * <pre>
 * header: seq (long) | source rank (int) | kind (byte: 0 matrix, 1 ints, 2 doubles) | count fields
 * matrix: dtype (byte: 0 FLOAT, 1 DOUBLE) | rows (int) | cols (int) | values
 * ints:   arrays (int) | per array: length (int) | values
 * doubles: length (int) | values
 * </pre>
 */
public final class Blocks {
  public static final int HEADER = 8 + 4 + 1;
  static final byte MATRIX = 0;
  static final byte INTS = 1;
  static final byte DOUBLES = 2;

  private Blocks() {}

  /** A matrix message: a tensor's values copied from its backend (a vector travels as one row). */
  public static ByteBuffer matrix(long seq, int source, Tensor m) {
    boolean f = m.dtype() == DType.F32;
    long rows = m.isEmpty() ? 0 : m.size(0), cols = m.rank() < 2 ? m.length() : m.size(m.rank() - 1);
    if (m.rank() == 1) {
      rows = 1;
    }
    int n = (int) (rows * cols);
    ByteBuffer b = header(seq, source, MATRIX, 1 + 8 + n * m.dtype().width());
    b.put((byte) (f ? 0 : 1)).putInt((int) rows).putInt((int) cols);
    if (n > 0) {
      m.backend().toHost(m, b);
    }
    return b.flip();
  }

  /** Reads a matrix message (after the header) into a new [rows, cols] tensor on {@code backend}. */
  public static Tensor readMatrix(ByteBuffer b, Backend backend) {
    DType type = b.get() == 0 ? DType.F32 : DType.F64;
    int rows = b.getInt(), cols = b.getInt();
    Tensor m = backend.empty(type, rows, cols);
    backend.fromHost(b, m);
    return m;
  }

  public static ByteBuffer ints(long seq, int source, int[][] arrays) {
    int n = 4;
    for (int[] a : arrays) {
      n += 4 + 4 * a.length;
    }
    ByteBuffer b = header(seq, source, INTS, n).putInt(arrays.length);
    for (int[] a : arrays) {
      b.putInt(a.length);
      for (int v : a) {
        b.putInt(v);
      }
    }
    return b.flip();
  }

  public static int[][] readInts(ByteBuffer b) {
    int[][] out = new int[b.getInt()][];
    for (int i = 0; i < out.length; i++) {
      out[i] = new int[b.getInt()];
      for (int j = 0; j < out[i].length; j++) {
        out[i][j] = b.getInt();
      }
    }
    return out;
  }

  public static ByteBuffer doubles(long seq, int source, double[] v) {
    ByteBuffer b = header(seq, source, DOUBLES, 4 + 8 * v.length).putInt(v.length);
    for (double d : v) {
      b.putDouble(d);
    }
    return b.flip();
  }

  public static double[] readDoubles(ByteBuffer b) {
    double[] v = new double[b.getInt()];
    for (int i = 0; i < v.length; i++) {
      v[i] = b.getDouble();
    }
    return v;
  }

  /** Opens a message: positioned after the header, little-endian. */
  public static ByteBuffer open(byte[] message) {
    ByteBuffer b = ByteBuffer.wrap(message).order(ByteOrder.LITTLE_ENDIAN);
    b.position(HEADER);
    return b;
  }

  /** The sending rank of a message. */
  public static int source(byte[] message) {
    return ByteBuffer.wrap(message).order(ByteOrder.LITTLE_ENDIAN).getInt(8);
  }

  /** A message's bytes as an array (the buffers made here are heap buffers of exactly that size). */
  public static byte[] bytes(ByteBuffer message) {
    return message.array();
  }

  private static ByteBuffer header(long seq, int source, byte kind, int body) {
    return ByteBuffer.allocate(HEADER + body).order(ByteOrder.LITTLE_ENDIAN).putLong(seq).putInt(source).put(kind);
  }
}

package io.moespark.ops.backend.cpu;

import java.lang.ref.Reference;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import org.nd4j.linalg.api.buffer.DataBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Element access to the native memory of a contiguous c-order array (or a row-range view of one), for
 * fused loops that ND4J would run as several passes with temporaries. Training is FLOAT, so the call
 * sites stay monomorphic there; DOUBLE serves the float64 gradient checks and the routing arithmetic, INT
 * the row indices (read with {@link #index}).
 *
 * <p>The NIO view does not keep the native memory alive: ND4J frees an array's memory once its buffer
 * is unreachable, and a kernel's last use of an argument is often the {@code Raw.of} call, so the
 * compiled caller may let a temporary array (a concatenation of received blocks, say) be collected in
 * the middle of the loop that reads it. Every access therefore fences the owning buffer, as the JDK's
 * own direct buffers do.
 */
abstract sealed class Raw permits Raw.F32, Raw.F64, Raw.I32 {
  protected final int base;
  /** The buffer whose native memory the view reads and writes; reachable until the last access. */
  protected final DataBuffer owner;

  private Raw(int base, DataBuffer owner) {
    this.base = base;
    this.owner = owner;
  }

  static Raw of(INDArray a) {
    if (a.length() > 1 && (a.ordering() != 'c' || a.elementWiseStride() != 1)) {
      throw new IllegalArgumentException("raw access needs a contiguous c-order array, got " + a.shapeInfoToString());
    }
    if (a.isEmpty()) { // ND4J gives an empty array no buffer: an empty one serves the loops that never run
      return switch (a.dataType()) {
        case FLOAT -> new F32(java.nio.FloatBuffer.allocate(0), 0, null);
        case DOUBLE -> new F64(java.nio.DoubleBuffer.allocate(0), 0, null);
        case INT -> new I32(java.nio.IntBuffer.allocate(0), 0, null);
        default -> throw new IllegalArgumentException("raw access supports FLOAT, DOUBLE and INT, got " + a.dataType());
      };
    }
    DataBuffer data = a.data();
    if (a.dataType() == DataType.FLOAT) {
      return new F32(data.asNioFloat(), (int) a.offset(), data);
    }
    if (a.dataType() == DataType.DOUBLE) {
      return new F64(data.asNioDouble(), (int) a.offset(), data);
    }
    if (a.dataType() == DataType.INT) {
      return new I32(data.asNioInt(), (int) a.offset(), data);
    }
    throw new IllegalArgumentException("raw access supports FLOAT, DOUBLE and INT, got " + a.dataType());
  }

  public abstract double get(int i);

  public abstract void set(int i, double v);

  /** Element i of an index array. */
  public final int index(int i) {
    return (int) get(i);
  }

  public final void add(int i, double v) {
    set(i, get(i) + v);
  }

  static final class F32 extends Raw {
    private final FloatBuffer b;

    F32(FloatBuffer b, int base, DataBuffer owner) {
      super(base, owner);
      this.b = b;
    }

    @Override
    public double get(int i) {
      try {
        return b.get(base + i);
      } finally {
        Reference.reachabilityFence(owner);
      }
    }

    @Override
    public void set(int i, double v) {
      try {
        b.put(base + i, (float) v);
      } finally {
        Reference.reachabilityFence(owner);
      }
    }
  }

  static final class F64 extends Raw {
    private final DoubleBuffer b;

    F64(DoubleBuffer b, int base, DataBuffer owner) {
      super(base, owner);
      this.b = b;
    }

    @Override
    public double get(int i) {
      try {
        return b.get(base + i);
      } finally {
        Reference.reachabilityFence(owner);
      }
    }

    @Override
    public void set(int i, double v) {
      try {
        b.put(base + i, v);
      } finally {
        Reference.reachabilityFence(owner);
      }
    }
  }

  static final class I32 extends Raw {
    private final IntBuffer b;

    I32(IntBuffer b, int base, DataBuffer owner) {
      super(base, owner);
      this.b = b;
    }

    @Override
    public double get(int i) {
      try {
        return b.get(base + i);
      } finally {
        Reference.reachabilityFence(owner);
      }
    }

    @Override
    public void set(int i, double v) {
      try {
        b.put(base + i, (int) v);
      } finally {
        Reference.reachabilityFence(owner);
      }
    }
  }
}

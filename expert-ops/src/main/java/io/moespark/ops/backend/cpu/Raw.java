package io.moespark.ops.backend.cpu;

import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Element access to the native memory of a contiguous c-order array (or a row-range view of one), for
 * fused loops that ND4J would run as several passes with temporaries. Training is FLOAT, so the call
 * sites stay monomorphic there; DOUBLE serves the float64 gradient checks.
 */
abstract sealed class Raw permits Raw.F32, Raw.F64 {
  protected final int base;

  private Raw(int base) {
    this.base = base;
  }

  static Raw of(INDArray a) {
    if (a.length() > 1 && (a.ordering() != 'c' || a.elementWiseStride() != 1)) {
      throw new IllegalArgumentException("raw access needs a contiguous c-order array, got " + a.shapeInfoToString());
    }
    if (a.dataType() == DataType.FLOAT) {
      return new F32(a.data().asNioFloat(), (int) a.offset());
    }
    if (a.dataType() == DataType.DOUBLE) {
      return new F64(a.data().asNioDouble(), (int) a.offset());
    }
    throw new IllegalArgumentException("raw access supports FLOAT and DOUBLE, got " + a.dataType());
  }

  public abstract double get(int i);

  public abstract void set(int i, double v);

  public final void add(int i, double v) {
    set(i, get(i) + v);
  }

  static final class F32 extends Raw {
    private final FloatBuffer b;

    F32(FloatBuffer b, int base) {
      super(base);
      this.b = b;
    }

    @Override
    public double get(int i) {
      return b.get(base + i);
    }

    @Override
    public void set(int i, double v) {
      b.put(base + i, (float) v);
    }
  }

  static final class F64 extends Raw {
    private final DoubleBuffer b;

    F64(DoubleBuffer b, int base) {
      super(base);
      this.b = b;
    }

    @Override
    public double get(int i) {
      return b.get(base + i);
    }

    @Override
    public void set(int i, double v) {
      b.put(base + i, v);
    }
  }
}

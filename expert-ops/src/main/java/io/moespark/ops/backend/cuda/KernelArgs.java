package io.moespark.ops.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A kernel launch's arguments as {@code cuLaunchKernel} takes them: one 8-byte little-endian slot per
 * argument, in the kernel's parameter order, and (built by the device layer) an array of pointers to the
 * slots. A device address, a {@code long} or an {@code int} fills its slot's low bytes; a {@code float}
 * or a {@code double} its IEEE bits. The GPU and the host device layer read the same slots, so a mistake
 * in the order or the type of an argument shows on the CPU in CI.
 */
public final class KernelArgs {
  /** The most parameters a kernel of this project takes. */
  static final int MAX = 16;

  private final ByteBuffer slots = ByteBuffer.allocateDirect(MAX * 8).order(ByteOrder.LITTLE_ENDIAN);
  private final boolean[] address = new boolean[MAX];
  private int count;

  private KernelArgs() {}

  public static KernelArgs of() {
    return new KernelArgs();
  }

  /** A device address ({@code float*}, {@code int*}, ...); 0 is a null pointer (an optional argument). */
  public KernelArgs ptr(long address) {
    this.address[count] = true;
    return put(address);
  }

  public KernelArgs i32(int v) {
    return put(v);
  }

  public KernelArgs i64(long v) {
    return put(v);
  }

  public KernelArgs f32(float v) {
    return put(Float.floatToRawIntBits(v) & 0xffffffffL);
  }

  public KernelArgs f64(double v) {
    return put(Double.doubleToRawLongBits(v));
  }

  private KernelArgs put(long bits) {
    if (count == MAX) {
      throw new IllegalStateException("a kernel takes at most " + MAX + " arguments");
    }
    slots.putLong(count++ * 8, bits);
    return this;
  }

  public int count() {
    return count;
  }

  /** Whether argument {@code i} is a device address (a device layer may check it lies in live memory). */
  public boolean isAddress(int i) {
    return address[i];
  }

  /** Argument {@code i}'s slot as a long. */
  public long slot(int i) {
    return slots.getLong(i * 8);
  }

  /** The slots, 8 bytes each, {@link #count} of them in use (a direct buffer: its address is stable). */
  public ByteBuffer slots() {
    return slots;
  }
}

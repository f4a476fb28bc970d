package io.moespark.ops.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.ref.Reference;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A kernel's {@link Raw} view must keep the array's native memory alive after the array itself is
 * unreachable (a temporary passed straight into a kernel): ND4J frees memory when its buffer is
 * collected and the freed block is handed to the next allocation of its size. Without the owner
 * reference the reads below return the churn's -7 (use after free); the run's numerics then depend on
 * when the garbage collector happens to run. The test waits until it has seen the collections it depends on.
 */
class RawReachabilityTest {
  private static final int N = 1 << 18;

  @Test
  void aRawViewKeepsItsMemoryAfterTheArrayIsDropped() throws Exception {
    List<Reference<?>> dropped = new ArrayList<>();
    Raw view = viewOfADroppedArray(dropped);
    // A control buffer that nothing keeps: once the collector has cleared it, ND4J's deallocator has been
    // handed its memory, as it would have been handed the view's without the view's owner reference.
    dropped.add(new WeakReference<>(Nd4j.create(DataType.FLOAT, N).data()));
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (dropped.stream().anyMatch(r -> r.get() != null)) {
      assertTrue(System.nanoTime() < deadline, "the dropped array and the control buffer were not both collected "
          + "within 60 s; still reachable: " + dropped.stream().filter(r -> r.get() != null).count() + " of 2");
      System.gc();
      Thread.sleep(20);
    }
    List<INDArray> churn = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      Thread.sleep(20); // ND4J's deallocator thread frees collected buffers; the churn takes their blocks
      churn.add(Nd4j.create(DataType.FLOAT, N).assign(-7.0));
    }
    for (int i = 0; i < N; i += 997) {
      assertEquals(i % 1000, view.get(i), "element " + i + " read through the view after a collection");
    }
  }

  /** A view whose array is unreachable once this method returns (a weak reference to it goes into refs). */
  private static Raw viewOfADroppedArray(List<Reference<?>> refs) {
    INDArray a = Nd4j.create(DataType.FLOAT, N);
    Raw r = Raw.of(a);
    for (int i = 0; i < N; i++) {
      r.set(i, i % 1000);
    }
    refs.add(new WeakReference<>(a));
    return r;
  }
}

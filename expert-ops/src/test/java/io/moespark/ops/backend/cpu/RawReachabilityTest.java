package io.moespark.ops.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A kernel's {@link Raw} view must keep the array's native memory alive after the array itself is
 * unreachable (a temporary passed straight into a kernel): ND4J frees memory when its buffer is
 * collected and the freed block is handed to the next allocation of its size. Without the owner
 * reference the reads below return the churn's -7 (use after free); the run's numerics then depend on
 * when the garbage collector happens to run.
 */
class RawReachabilityTest {
  private static final int N = 1 << 18;

  @Test
  void aRawViewKeepsItsMemoryAfterTheArrayIsDropped() throws Exception {
    Raw view = viewOfADroppedArray();
    List<INDArray> churn = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      System.gc();
      Thread.sleep(20); // ND4J's deallocator thread frees collected buffers
      churn.add(Nd4j.create(DataType.FLOAT, N).assign(-7.0));
    }
    for (int i = 0; i < N; i += 997) {
      assertEquals(i % 1000, view.get(i), "element " + i + " read through the view after a collection");
    }
  }

  /** A view whose array is unreachable once this method returns. */
  private static Raw viewOfADroppedArray() {
    INDArray a = Nd4j.create(DataType.FLOAT, N);
    Raw r = Raw.of(a);
    for (int i = 0; i < N; i++) {
      r.set(i, i % 1000);
    }
    return r;
  }
}

package io.moespark.job.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import io.moespark.job.LocalCluster;
import java.io.Serializable;
import java.util.List;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import scala.Function1;
import scala.reflect.ClassTag$;

/**
 * The collective inside a barrier stage of two tasks on two executor JVMs (local-cluster), with Spark
 * authentication and encryption on: addresses go through allGather, blocks and sums over the network.
 */
class BarrierCollectiveTest {

  @Test
  void twoExecutorsExchangeBlocksAndSums() {
    JavaSparkContext sc = LocalCluster.start(2, 1, 1024);
    try {
      Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<String>> body =
          (Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<String>> & Serializable) it -> {
            BarrierTaskContext task = BarrierTaskContext.get();
            try (DirectCollective c = DirectCollective.forBarrierTask(task, 60_000)) {
              int r = c.rank();
              INDArray[] send = {Nd4j.valueArrayOf(new long[] {r + 1, 3}, 10.0 * r), Nd4j.valueArrayOf(new long[] {2, 3}, 10.0 * r + 1)};
              INDArray[] recv = c.allToAll(send);
              double[] v = {r + 1.0};
              c.sum(v);
              String line = "rank " + r + " pid " + ProcessHandle.current().pid() + " executor " + SparkEnv.get().executorId()
                  + " got " + recv[0].getDouble(0, 0) + "x" + recv[0].size(0) + "," + recv[1].getDouble(0, 0) + "x"
                  + recv[1].size(0) + " sum " + v[0];
              return scala.jdk.javaapi.CollectionConverters.asScala(List.of(line).iterator());
            } catch (Exception e) {
              throw new RuntimeException(e);
            }
          };
      List<String> lines = List.of((String[]) sc.parallelize(List.of(0, 1), 2).rdd().barrier()
          .mapPartitions(body, false, ClassTag$.MODULE$.apply(String.class)).collect());
      assertEquals(2, lines.size(), lines.toString());
      // rank 0 receives its own block 0 (10*0, 1 row) and rank 1's block 0 (10*1, 2 rows); sums are 1 + 2.
      assertEquals(true, lines.get(0).endsWith("got 0.0x1,10.0x2 sum 3.0"), lines.get(0));
      assertEquals(true, lines.get(1).endsWith("got 1.0x2,11.0x2 sum 3.0"), lines.get(1));
      assertNotEquals(lines.get(0).split(" ")[3], lines.get(1).split(" ")[3], "two executor JVMs: " + lines);
    } finally {
      sc.stop();
    }
  }
}

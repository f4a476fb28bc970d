package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.moespark.job.cli.TrainMain;
import io.moespark.ops.collective.Blocks;
import io.moespark.ops.config.RunConfig;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.client.TransportClient;
import org.apache.spark.network.client.TransportClientFactory;
import org.apache.spark.network.server.NoOpRpcHandler;
import org.apache.spark.network.util.MapConfigProvider;
import org.apache.spark.network.util.TransportConf;
import org.junit.jupiter.api.Test;

/**
 * The launch moe-train makes by default on two executor JVMs (no security settings given): the ranks'
 * direct-path ports refuse a client that does not authenticate, and the run still trains.
 */
class DefaultLaunchAuthTest {
  @Test
  void theDefaultLaunchRefusesAnUnauthenticatedClient() throws Exception {
    SparkConf conf = LocalCluster.executorClasses(TrainMain.sparkConf(LocalCluster.master(2, 1, 2048), "auth test"))
        .set("spark.ui.enabled", "false");
    JavaSparkContext sc = new JavaSparkContext(conf);
    sc.setLogLevel("WARN");
    try {
      RunConfig cfg = SmallRuns.config(4, 2, "train.steps=2");
      try (RankGroup ranks = RankGroup.open(sc, cfg, ExpertPlacement.contiguous(cfg, 2), null)) {
        TransportConf plain = new TransportConf("moe", new MapConfigProvider(Map.of()));
        for (String address : ranks.addresses()) {
          String[] hp = address.split(":");
          try (TransportContext ctx = new TransportContext(plain, new NoOpRpcHandler());
              TransportClientFactory f = ctx.createClientFactory()) {
            assertThrows(Exception.class, () -> {
              TransportClient client = f.createClient(hp[0], Integer.parseInt(hp[1]));
              client.sendRpcSync(Blocks.ints(1, 0, new int[][] {{7}}), 5_000);
            }, "rank at " + address + " answered an unauthenticated client");
          }
        }
        List<StepResult> steps = StepRunners.of(ranks).steps(2, s -> {}, "after the attempts");
        assertEquals(2, steps.size());
      }
    } finally {
      sc.stop();
    }
  }
}

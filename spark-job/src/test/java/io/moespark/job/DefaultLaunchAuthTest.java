package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moespark.job.cli.TrainMain;
import io.moespark.ops.config.RunConfig;
import java.util.List;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;

/**
 * The launch moe-train makes by default on two executor JVMs (no security settings given): the ranks'
 * direct-path ports refuse a client that does not authenticate (an answer, not a timeout), serve one that
 * authenticates with the application's secret on the same port, and the run still trains.
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
        for (String address : ranks.addresses()) {
          // A refusal is an answer: a port that does not answer within the minute proves nothing.
          assertEquals(RankPortProbe.Outcome.REFUSED,
              RankPortProbe.unauthenticated(address, RankPortProbe.harmlessBlock(), 60_000),
              "rank at " + address + " and a client without the secret");
          assertEquals(0, RankPortProbe.authenticated(sc, address, 60_000),
              "rank at " + address + " serves a client with the application's secret (an empty acknowledgement)");
        }
        List<StepResult> steps = StepRunners.of(ranks).steps(2, s -> {}, "after the attempts");
        assertEquals(2, steps.size());
      }
    } finally {
      sc.stop();
    }
  }
}

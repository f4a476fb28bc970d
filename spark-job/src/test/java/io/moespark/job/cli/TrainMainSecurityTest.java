package io.moespark.job.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

/** moe-train's launch configuration is authenticated by default wherever ranks listen on a network. */
class TrainMainSecurityTest {
  private static SparkConf launch(String master) {
    return TrainMain.sparkConf(master, "security test");
  }

  @Test
  void localClusterGetsAFreshSecretAuthenticationAndEncryption() {
    SparkConf a = launch("local-cluster[2,1,1024]"), b = launch("local-cluster[2,1,1024]");
    assertEquals("true", a.get("spark.authenticate"));
    assertEquals("true", a.get("spark.network.crypto.enabled"));
    assertEquals(64, a.get("spark.authenticate.secret").length());
    assertNotEquals(a.get("spark.authenticate.secret"), b.get("spark.authenticate.secret"), "a secret per run");
    assertEquals("false", a.get("spark.ui.killEnabled"));
  }

  @Test
  void yarnAndKubernetesAuthenticateWithTheSecretTheyGenerate() {
    for (String master : new String[] {"yarn", "k8s://https://api:6443"}) {
      SparkConf c = launch(master);
      assertEquals("true", c.get("spark.authenticate"), master);
      assertFalse(c.contains("spark.authenticate.secret"), master + ": the cluster manager makes the secret");
    }
  }

  @Test
  void inProcessAndStandaloneLeaveItToTheApplicationOrCluster() {
    assertFalse(launch("local[2]").contains("spark.authenticate"));
    assertFalse(launch("spark://master:7077").contains("spark.authenticate"));
    assertTrue(launch("local[2]").contains("spark.ui.killEnabled"));
  }
}

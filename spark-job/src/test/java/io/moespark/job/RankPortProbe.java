package io.moespark.job;

import io.moespark.ops.collective.Blocks;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.client.TransportClient;
import org.apache.spark.network.client.TransportClientFactory;
import org.apache.spark.network.crypto.AuthClientBootstrap;
import org.apache.spark.network.server.NoOpRpcHandler;
import org.apache.spark.network.util.MapConfigProvider;
import org.apache.spark.network.util.TransportConf;

/**
 * Clients of a rank's direct-path port, for the security tests: what happens to an RPC sent without the
 * authentication handshake (refused, served, or no answer in time: a slow or dead port, which proves
 * nothing), and an RPC sent with the application's secret (served, so that the port under test is a live
 * rank's). The probes' messages carry a sequence number far beyond any run's, so a delivered one can never
 * take part in an exchange.
 */
public final class RankPortProbe {
  /**
   * What an RPC got from the port: the connection closed without an answer; a reply; an error reply that
   * carries the server's stack trace (what Spark's own handler sends); or nothing in time.
   */
  public enum Outcome { REFUSED, SERVED, ANSWERED_WITH_STACK_TRACE, NO_ANSWER }

  /** A round no run reaches: 2^40 exchanges. */
  static final long UNREACHED_SEQ = 1L << 40;

  private RankPortProbe() {}

  /** An RPC without the handshake, waiting at most {@code timeoutMs} for an answer. */
  public static Outcome unauthenticated(String address, ByteBuffer message, long timeoutMs) {
    String[] hp = address.split(":");
    TransportConf conf = new TransportConf("moe", new MapConfigProvider(Map.of()));
    try (TransportContext ctx = new TransportContext(conf, new NoOpRpcHandler());
        TransportClientFactory f = ctx.createClientFactory()) {
      TransportClient client;
      try {
        client = f.createClient(hp[0], Integer.parseInt(hp[1]));
      } catch (IOException e) {
        return failure(e);
      }
      try {
        client.sendRpcSync(message, timeoutMs);
        return Outcome.SERVED;
      } catch (RuntimeException e) {
        return failure(e);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** A harmless block message (an unreached round) as a rank's peers would send it. */
  static ByteBuffer harmlessBlock() {
    return Blocks.ints(UNREACHED_SEQ, 0, new int[][] {{7}});
  }

  /**
   * An RPC with the driver's application secret and the application's network settings, as a peer rank
   * sends it; returns the reply's size (a rank acknowledges a block with an empty reply).
   */
  static int authenticated(JavaSparkContext sc, String address, long timeoutMs) throws Exception {
    String[] hp = address.split(":");
    Map<String, String> settings = new HashMap<>();
    for (scala.Tuple2<String, String> kv : sc.getConf().getAll()) {
      settings.put(kv._1(), kv._2());
    }
    TransportConf conf = new TransportConf("moe", new MapConfigProvider(settings));
    SparkEnv env = sc.sc().env();
    try (TransportContext ctx = new TransportContext(conf, new NoOpRpcHandler());
        TransportClientFactory f = ctx.createClientFactory(
            List.of(new AuthClientBootstrap(conf, sc.getConf().getAppId(), env.securityManager())))) {
      TransportClient client = f.createClient(hp[0], Integer.parseInt(hp[1]));
      return client.sendRpcSync(harmlessBlock(), timeoutMs).remaining();
    }
  }

  /** How a failed RPC or connection failed. */
  public static Outcome failure(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t.getMessage() != null && t.getMessage().contains("\n\tat ")) {
        return Outcome.ANSWERED_WITH_STACK_TRACE;
      }
    }
    return causedBy(e, TimeoutException.class) ? Outcome.NO_ANSWER : Outcome.REFUSED;
  }

  private static boolean causedBy(Throwable e, Class<? extends Throwable> kind) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (kind.isInstance(t)) {
        return true;
      }
    }
    return false;
  }
}

package io.moespark.job.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.client.TransportClient;
import org.apache.spark.network.client.TransportClientFactory;
import org.apache.spark.network.crypto.AuthClientBootstrap;
import org.apache.spark.network.sasl.SecretKeyHolder;
import org.apache.spark.network.server.NoOpRpcHandler;
import org.apache.spark.network.util.MapConfigProvider;
import org.apache.spark.network.util.TransportConf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import io.moespark.job.RankPortProbe;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.collective.Blocks;
import io.moespark.ops.collective.RankOrderedCollective;
import io.moespark.ops.tensor.Tensor;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The direct path's collective on loopback: correctness, determinism, and authentication. */
class DirectCollectiveTest {
  static final String HOST = "127.0.0.1";

  static SecretKeyHolder keys(String secret) {
    return new SecretKeyHolder() {
      @Override
      public String getSaslUser(String appId) {
        return "sparkSaslUser";
      }

      @Override
      public String getSecretKey(String appId) {
        return secret;
      }
    };
  }

  /** One rank of a test group: its socket transport and the collective over it. */
  record Rank(SocketTransport transport, RankOrderedCollective collective) {}

  static SocketTransport.Security security(boolean auth, boolean crypto, String secret) {
    Map<String, String> conf = new HashMap<>();
    conf.put("spark.authenticate", String.valueOf(auth));
    conf.put("spark.network.crypto.enabled", String.valueOf(crypto));
    return new SocketTransport.Security(conf, "app-test", keys(secret));
  }

  /** Starts R connected ranks and runs body on each in its own thread; returns the results by rank. */
  static <T> List<T> onRanks(int ranks, SocketTransport.Security sec, Function<RankOrderedCollective, T> body,
      List<Rank> keep) throws Exception {
    List<Rank> cs = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      SocketTransport t = SocketTransport.start(r, ranks, HOST, sec, 30_000);
      cs.add(new Rank(t, new RankOrderedCollective(t)));
    }
    List<String> addresses = cs.stream().map(c -> c.transport().endpoint()).toList();
    for (Rank c : cs) {
      c.transport().connect(addresses);
    }
    ExecutorService pool = Executors.newFixedThreadPool(ranks);
    try {
      List<Future<T>> fs = new ArrayList<>();
      for (Rank c : cs) {
        fs.add(pool.submit((Callable<T>) () -> body.apply(c.collective())));
      }
      List<T> out = new ArrayList<>();
      for (Future<T> f : fs) {
        out.add(f.get());
      }
      return out;
    } finally {
      pool.shutdownNow();
      if (keep != null) {
        keep.addAll(cs);
      } else {
        cs.forEach(c -> c.collective().close());
      }
    }
  }

  static INDArray block(int src, int dst, DataType type) {
    int rows = (src + 2 * dst) % 3; // includes empty blocks
    INDArray m = Nd4j.create(type, Math.max(rows, 0), 5);
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < 5; j++) {
        m.putScalar(i, j, 100 * src + 10 * dst + i + j / 10.0);
      }
    }
    return m;
  }

  @ParameterizedTest(name = "authenticate={0} crypto={1}")
  @CsvSource({"false, false", "true, false", "true, true"})
  void allToAllAndSumsAreCorrectAndIdenticalOnEveryRank(boolean auth, boolean crypto) throws Exception {
    int ranks = 3;
    List<Object[]> results = onRanks(ranks, security(auth, crypto, "s3cret"), c -> {
      int r = c.rank();
      Tensor[] send = new Tensor[ranks];
      int[][] counts = new int[ranks][];
      for (int d = 0; d < ranks; d++) {
        send[d] = CpuBackend.wrap(block(r, d, d % 2 == 0 ? DataType.FLOAT : DataType.DOUBLE));
        counts[d] = new int[] {r, d, r * d};
      }
      Tensor[] recv = c.allToAll(send);
      int[][] gotCounts = c.allToAllCounts(counts);
      double[] v = {0.1 * (r + 1), 1e16, -1e16 + r};
      c.sum(v);
      INDArray g = Nd4j.create(new float[] {r + 0.25f, r * 1e-3f, 7f}, new long[] {3}, 'c');
      c.sum(CpuBackend.wrap(g));
      return new Object[] {recv, gotCounts, v, g};
    }, null);
    for (int r = 0; r < ranks; r++) {
      Tensor[] recv = (Tensor[]) results.get(r)[0];
      int[][] counts = (int[][]) results.get(r)[1];
      for (int s = 0; s < ranks; s++) {
        assertEquals(block(s, r, r % 2 == 0 ? DataType.FLOAT : DataType.DOUBLE), CpuBackend.array(recv[s]), "block " + s + "->" + r);
        assertArrayEquals(new int[] {s, r, s * r}, counts[s]);
      }
      // Sums in rank order: every rank holds the same bits.
      assertArrayEquals((double[]) results.get(0)[2], (double[]) results.get(r)[2], 0.0);
      assertEquals(results.get(0)[3], results.get(r)[3]);
    }
    assertEquals(0.1 + 0.2 + 0.30000000000000004, ((double[]) results.get(0)[2])[0], 1e-15);
    assertArrayEquals(new float[] {0.75f + 3f, 3e-3f, 21f}, ((INDArray) results.get(0)[3]).toFloatVector(), 1e-6f);
  }

  @Test
  void withAuthenticationAClientWithoutTheSecretIsRefusedAndTheRunGoesOn() throws Exception {
    List<Rank> cs = new ArrayList<>();
    SocketTransport.Security sec = security(true, false, "s3cret");
    onRanks(2, sec, c -> c.allToAllCounts(new int[][] {{1}, {2}}), cs);
    try {
      String[] target = cs.get(0).transport().endpoint().split(":");
      TransportConf conf = new TransportConf("moe", new MapConfigProvider(Map.of()));
      ByteBuffer forged = Blocks.ints(99, 1, new int[][] {{42}});
      // No authentication at all.
      try (TransportContext ctx = new TransportContext(conf, new NoOpRpcHandler());
          TransportClientFactory f = ctx.createClientFactory()) {
        TransportClient client = f.createClient(target[0], Integer.parseInt(target[1]));
        assertEquals(RankPortProbe.Outcome.REFUSED, RankPortProbe.failure(
            assertThrows(RuntimeException.class, () -> client.sendRpcSync(forged.duplicate(), 5_000))),
            "closed without an answer (Spark's handler would send its stack trace)");
      }
      // The handshake with a wrong secret.
      TransportConf authConf = new TransportConf("moe", new MapConfigProvider(Map.of("spark.authenticate", "true")));
      try (TransportContext ctx = new TransportContext(authConf, new NoOpRpcHandler());
          TransportClientFactory f = ctx.createClientFactory(List.of(new AuthClientBootstrap(authConf, "app-test",
              keys("wrong"))))) {
        assertEquals(RankPortProbe.Outcome.REFUSED, RankPortProbe.failure(
            assertThrows(Exception.class, () -> f.createClient(target[0], Integer.parseInt(target[1]))
                .sendRpcSync(forged.duplicate(), 5_000))), "the failed handshake is closed without an answer");
      }
      assertEquals(0, cs.get(0).transport().pending(), "nothing may reach the mailbox unauthenticated");
      // The run is unaffected: the ranks keep exchanging.
      List<int[][]> after = new ArrayList<>();
      ExecutorService pool = Executors.newFixedThreadPool(2);
      List<Future<int[][]>> fs = new ArrayList<>();
      for (Rank r : cs) {
        RankOrderedCollective c = r.collective();
        fs.add(pool.submit(() -> c.allToAllCounts(new int[][] {{c.rank()}, {c.rank() + 10}})));
      }
      for (Future<int[][]> f : fs) {
        after.add(f.get());
      }
      pool.shutdownNow();
      assertArrayEquals(new int[] {1}, after.get(0)[1]);
      assertArrayEquals(new int[] {10}, after.get(1)[0]);
    } finally {
      cs.forEach(c -> c.collective().close());
    }
  }

  @Test
  void ncclWithoutTheCudaProfileNamesTheBuildCommand() {
    io.moespark.ops.config.ConfigException e = assertThrows(io.moespark.ops.config.ConfigException.class,
        () -> Collectives.forBarrierTask(io.moespark.ops.config.RunConfig.Transport.NCCL, null, 1_000));
    assertTrue(e.getMessage().contains("parallel.transport") && e.getMessage().contains("-Pcuda"), e.getMessage());
  }
}

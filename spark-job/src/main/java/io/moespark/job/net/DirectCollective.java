package io.moespark.job.net;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.client.RpcResponseCallback;
import org.apache.spark.network.client.TransportClient;
import org.apache.spark.network.client.TransportClientBootstrap;
import org.apache.spark.network.client.TransportClientFactory;
import org.apache.spark.network.crypto.AuthClientBootstrap;
import org.apache.spark.network.crypto.AuthServerBootstrap;
import org.apache.spark.network.sasl.SecretKeyHolder;
import org.apache.spark.network.server.NoOpRpcHandler;
import org.apache.spark.network.server.RpcHandler;
import org.apache.spark.network.server.StreamManager;
import org.apache.spark.network.server.TransportServer;
import org.apache.spark.network.server.TransportServerBootstrap;
import org.apache.spark.network.util.MapConfigProvider;
import org.apache.spark.network.util.TransportConf;
import io.moespark.ops.tensor.Tensor;

/**
 * The direct path's CPU collective: all-to-all and all-reduce straight between the ranks of a run over
 * Spark's own transport ({@code spark-network-common}). With {@code spark.authenticate} the server
 * accepts only clients that pass Spark's authentication handshake (and encrypts with
 * {@code spark.network.crypto.enabled}); nothing is served before a client has authenticated.
 *
 * <p>Lifecycle: {@link #start} binds this rank's server; the addresses of all ranks are exchanged out of
 * band (a barrier task's allGather); {@link #connect} opens one client per peer. Every rank calls the
 * collectives in the same order; a per-call sequence number matches the messages. Sums run in rank order,
 * so every rank gets bit-identical results.
 */
public final class DirectCollective extends CollectiveBase {
  /** How the transport authenticates: the Spark configuration and the application's secret. */
  public record Security(Map<String, String> sparkConf, String appId, SecretKeyHolder keys) {
    public boolean authenticate() {
      return Boolean.parseBoolean(sparkConf.getOrDefault("spark.authenticate", "false"));
    }
  }

  private final String host;
  private final long timeoutMs;
  private final TransportContext context;
  private final TransportServer server;
  private final TransportClientFactory clientFactory;
  private final Map<Long, CompletableFuture<ByteBuffer>> mailbox = new ConcurrentHashMap<>();
  private final List<TransportClient> peers = new ArrayList<>();
  private long seq;

  private DirectCollective(int rank, int ranks, String host, Security security, long timeoutMs) {
    super(rank, ranks);
    this.host = host;
    this.timeoutMs = timeoutMs;
    TransportConf conf = new TransportConf("moe", new MapConfigProvider(security.sparkConf()));
    this.context = new TransportContext(conf, new Inbox(), true);
    List<TransportServerBootstrap> serverBoot = new ArrayList<>();
    List<TransportClientBootstrap> clientBoot = new ArrayList<>();
    if (security.authenticate()) {
      serverBoot.add(new AuthServerBootstrap(conf, security.keys()));
      clientBoot.add(new AuthClientBootstrap(conf, security.appId(), security.keys()));
    }
    this.server = context.createServer(host, 0, serverBoot);
    this.clientFactory = context.createClientFactory(clientBoot);
  }

  /**
   * The collective of a barrier task: rank = partition id, ranks = partitions, this executor's host and
   * Spark's security manager (the application's secret), addresses exchanged with one allGather (a
   * set-up cost of about a second, paid once per barrier stage, never per step).
   */
  public static DirectCollective forBarrierTask(BarrierTaskContext task, long timeoutMs)
      throws IOException, InterruptedException {
    SparkEnv env = SparkEnv.get();
    Map<String, String> conf = new HashMap<>();
    for (scala.Tuple2<String, String> kv : env.conf().getAll()) {
      conf.put(kv._1(), kv._2());
    }
    String host = env.blockManager().blockManagerId().host();
    DirectCollective c = start(task.partitionId(), task.numPartitions(), host,
        new Security(conf, env.conf().getAppId(), env.securityManager()), timeoutMs);
    try {
      c.connect(List.of(task.allGather(c.endpoint())));
    } catch (IOException | InterruptedException | RuntimeException e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** Binds this rank's server on {@code host} (an ephemeral port). */
  public static DirectCollective start(int rank, int ranks, String host, Security security, long timeoutMs) {
    return new DirectCollective(rank, ranks, host, security, timeoutMs);
  }

  /** "host:port" to give the other ranks. */
  @Override
  public String endpoint() {
    return host + ":" + server.getPort();
  }

  /** Opens a client to every other rank; {@code addresses} are all ranks' {@link #endpoint}s, by rank. */
  public void connect(List<String> addresses) throws IOException, InterruptedException {
    if (addresses.size() != ranks) {
      throw new IllegalArgumentException("expected " + ranks + " addresses, got " + addresses.size());
    }
    for (int r = 0; r < ranks; r++) {
      if (r == rank) {
        peers.add(null);
        continue;
      }
      String a = addresses.get(r);
      int colon = a.lastIndexOf(':');
      peers.add(clientFactory.createClient(a.substring(0, colon), Integer.parseInt(a.substring(colon + 1))));
    }
  }

  @Override
  public Tensor[] allToAll(Tensor[] send) {
    long t0 = System.nanoTime();
    try {
      long s = ++seq;
      for (int d = 0; d < ranks; d++) {
        if (d != rank) {
          post(d, Blocks.matrix(s, rank, send[d]));
        }
      }
      Tensor[] recv = new Tensor[ranks];
      for (int src = 0; src < ranks; src++) {
        recv[src] = src == rank ? send[rank] : Blocks.readMatrix(take(s, src), send[rank].backend());
      }
      return recv;
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public int[][] allToAllCounts(int[][] send) {
    long t0 = System.nanoTime();
    try {
      long s = ++seq;
      for (int d = 0; d < ranks; d++) {
        if (d != rank) {
          post(d, Blocks.ints(s, rank, new int[][] {send[d]}));
        }
      }
      int[][] recv = new int[ranks][];
      for (int src = 0; src < ranks; src++) {
        recv[src] = src == rank ? send[rank].clone() : Blocks.readInts(take(s, src))[0];
      }
      return recv;
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public void sum(double[] values) {
    long t0 = System.nanoTime();
    try {
      long s = ++seq;
      for (int d = 0; d < ranks; d++) {
        if (d != rank) {
          post(d, Blocks.doubles(s, rank, values));
        }
      }
      double[] mine = values.clone();
      java.util.Arrays.fill(values, 0);
      for (int src = 0; src < ranks; src++) {
        double[] v = src == rank ? mine : Blocks.readDoubles(take(s, src));
        for (int i = 0; i < v.length; i++) {
          values[i] += v[i];
        }
      }
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public void sum(Tensor values) {
    long t0 = System.nanoTime();
    try {
      long s = ++seq;
      Tensor flat = values.backend().view(values, 0, values.length());
      for (int d = 0; d < ranks; d++) {
        if (d != rank) {
          post(d, Blocks.matrix(s, rank, flat));
        }
      }
      Tensor mine = values.backend().empty(values.dtype(), values.length()).assign(flat);
      flat.fill(0);
      for (int src = 0; src < ranks; src++) {
        flat.addi(src == rank ? mine
            : values.backend().view(Blocks.readMatrix(take(s, src), values.backend()), 0, values.length()));
      }
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  private void post(int dest, ByteBuffer message) {
    bytesSent += message.remaining();
    try {
      peers.get(dest).sendRpcSync(message, timeoutMs);
    } catch (RuntimeException e) {
      throw new IllegalStateException("rank " + rank + ": sending to rank " + dest + " failed: " + e.getMessage(), e);
    }
  }

  private ByteBuffer take(long s, int source) {
    CompletableFuture<ByteBuffer> f = slot(s, source);
    try {
      return f.get(timeoutMs, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      throw new IllegalStateException("rank " + rank + ": no message " + s + " from rank " + source + " within "
          + timeoutMs + " ms", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    } finally {
      mailbox.remove(s * ranks + source);
    }
  }

  private CompletableFuture<ByteBuffer> slot(long s, int source) {
    return mailbox.computeIfAbsent(s * ranks + source, k -> new CompletableFuture<>());
  }

  /** Messages waiting to be taken (for tests: nothing arrives unauthenticated). */
  int pending() {
    return mailbox.size();
  }

  @Override
  public void close() {
    for (TransportClient c : peers) {
      if (c != null) {
        c.close();
      }
    }
    clientFactory.close();
    server.close();
    context.close();
  }

  /** Receives blocks into the mailbox; the buffer is copied because Spark reuses it after the call. */
  private final class Inbox extends RpcHandler {
    private final StreamManager streams = new NoOpRpcHandler().getStreamManager();

    @Override
    public void receive(TransportClient client, ByteBuffer message, RpcResponseCallback callback) {
      ByteBuffer copy = ByteBuffer.allocate(message.remaining()).order(ByteOrder.LITTLE_ENDIAN);
      copy.put(message).flip();
      long s = copy.getLong();
      int source = copy.getInt();
      copy.get(); // kind: the reader knows what it expects
      slot(s, source).complete(copy);
      callback.onSuccess(ByteBuffer.allocate(0));
    }

    @Override
    public StreamManager getStreamManager() {
      return streams;
    }
  }
}

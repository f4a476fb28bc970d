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
import org.apache.spark.TaskContext;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.client.RpcResponseCallback;
import org.apache.spark.network.client.TransportClient;
import org.apache.spark.network.client.TransportClientBootstrap;
import org.apache.spark.network.client.TransportClientFactory;
import org.apache.spark.network.crypto.AuthClientBootstrap;
import org.apache.spark.network.crypto.AuthServerBootstrap;
import org.apache.spark.network.sasl.SecretKeyHolder;
import org.apache.spark.network.server.AbstractAuthRpcHandler;
import org.apache.spark.network.server.NoOpRpcHandler;
import org.apache.spark.network.server.RpcHandler;
import org.apache.spark.network.server.StreamManager;
import org.apache.spark.network.server.TransportServer;
import org.apache.spark.network.server.TransportServerBootstrap;
import org.apache.spark.network.util.MapConfigProvider;
import org.apache.spark.network.util.TransportConf;
import io.moespark.ops.collective.BlockTransport;

/**
 * The direct path's CPU transport: the rounds of {@link io.moespark.ops.collective.RankOrderedCollective}
 * straight between the ranks of a run over Spark's own network library ({@code spark-network-common}),
 * one message per (source, destination) and round. With {@code spark.authenticate} the server
 * accepts only clients that pass Spark's authentication handshake (and encrypts with
 * {@code spark.network.crypto.enabled}); nothing is served before a client has authenticated.
 *
 * <p>Lifecycle: {@link #start} binds this rank's server; the addresses of all ranks are exchanged out of
 * band (a barrier task's allGather); {@link #connect} opens one client per peer. Every rank runs the
 * rounds in the same order; the round's sequence number in each message's header matches them.
 */
public final class SocketTransport implements BlockTransport {
  /** How the transport authenticates: the Spark configuration and the application's secret. */
  public record Security(Map<String, String> sparkConf, String appId, SecretKeyHolder keys) {
    public boolean authenticate() {
      return Boolean.parseBoolean(sparkConf.getOrDefault("spark.authenticate", "false"));
    }
  }

  /** How often a waiting rank checks that its peer and its own task are still alive. */
  private static final long POLL_MS = 200;

  private final int rank;
  private final int ranks;
  private final String host;
  private final long timeoutMs;
  private final TransportContext context;
  private final TransportServer server;
  private final TransportClientFactory clientFactory;
  private final Map<Long, CompletableFuture<byte[]>> mailbox = new ConcurrentHashMap<>();
  private final List<TransportClient> peers = new ArrayList<>();

  private SocketTransport(int rank, int ranks, String host, Security security, long timeoutMs) {
    this.rank = rank;
    this.ranks = ranks;
    this.host = host;
    this.timeoutMs = timeoutMs;
    Map<String, String> settings = new HashMap<>(security.sparkConf());
    // Every client of a rank is a rank of the same build: no peer needs Spark's older SASL handshake.
    settings.put("spark.network.crypto.saslFallback", "false");
    TransportConf conf = new TransportConf("moe", new MapConfigProvider(settings));
    this.context = new TransportContext(conf, new Inbox(), true);
    List<TransportServerBootstrap> serverBoot = new ArrayList<>();
    List<TransportClientBootstrap> clientBoot = new ArrayList<>();
    if (security.authenticate()) {
      serverBoot.add(new RefuseSilently(new AuthServerBootstrap(conf, security.keys())));
      clientBoot.add(new AuthClientBootstrap(conf, security.appId(), security.keys()));
    }
    this.server = context.createServer(host, 0, serverBoot);
    this.clientFactory = context.createClientFactory(clientBoot);
  }

  /**
   * The transport of a barrier task: rank = partition id, ranks = partitions, this executor's host and
   * Spark's security manager (the application's secret), addresses exchanged with one allGather (a
   * set-up cost of about a second, paid once per barrier stage, never per step).
   */
  public static SocketTransport forBarrierTask(BarrierTaskContext task, long timeoutMs)
      throws IOException, InterruptedException {
    SparkEnv env = SparkEnv.get();
    Map<String, String> conf = new HashMap<>();
    for (scala.Tuple2<String, String> kv : env.conf().getAll()) {
      conf.put(kv._1(), kv._2());
    }
    String host = env.blockManager().blockManagerId().host();
    SocketTransport c = start(task.partitionId(), task.numPartitions(), host,
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
  public static SocketTransport start(int rank, int ranks, String host, Security security, long timeoutMs) {
    return new SocketTransport(rank, ranks, host, security, timeoutMs);
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
  public int rank() {
    return rank;
  }

  @Override
  public int ranks() {
    return ranks;
  }

  @Override
  public boolean routesSelf() {
    return false;
  }

  @Override
  public byte[][] swap(long seq, byte[][] out) {
    for (int d = 0; d < ranks; d++) {
      if (d != rank) {
        post(d, ByteBuffer.wrap(out[d]));
      }
    }
    byte[][] in = new byte[ranks][];
    for (int src = 0; src < ranks; src++) {
      if (src != rank) {
        in[src] = take(seq, src);
      }
    }
    return in;
  }

  private void post(int dest, ByteBuffer message) {
    try {
      peers.get(dest).sendRpcSync(message, timeoutMs);
    } catch (RuntimeException e) {
      throw new IllegalStateException("rank " + rank + ": sending to rank " + dest + " failed: " + e.getMessage(), e);
    }
  }

  /**
   * The whole message (header included) of round {@code s} from {@code source}. The wait ends early, so a
   * failed run stops within a fraction of a second instead of at the timeout: when the peer's connection
   * closes (its executor is gone), or when Spark kills this task (another rank of the stage failed; Spark
   * marks the task killed without interrupting its thread).
   */
  private byte[] take(long s, int source) {
    CompletableFuture<byte[]> f = slot(s, source);
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    TaskContext task = TaskContext.get();
    try {
      while (true) {
        try {
          return f.get(Math.min(POLL_MS, Math.max(1, (deadline - System.nanoTime()) / 1_000_000)), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
          if (System.nanoTime() >= deadline) {
            throw new IllegalStateException("rank " + rank + ": no message " + s + " from rank " + source + " within "
                + timeoutMs + " ms (parallel.timeout_s)", e);
          }
          if (task != null && task.isInterrupted()) {
            throw new IllegalStateException("rank " + rank + ": stopped while waiting for rank " + source
                + " (the stage was cancelled: " + task.getKillReason().getOrElse(() -> "another rank failed") + ")");
          }
          TransportClient peer = peers.get(source);
          if (peer != null && !peer.isActive()) {
            throw new IllegalStateException("rank " + rank + ": the connection to rank " + source + " closed while "
                + "waiting for it (its executor is gone)");
          }
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    } finally {
      mailbox.remove(s * ranks + source);
    }
  }

  private CompletableFuture<byte[]> slot(long s, int source) {
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

  /**
   * Spark's authentication handler answers a failed handshake with an RPC failure that carries the server's
   * Java stack trace. A rank's port answers a client that has not authenticated with nothing: the
   * connection is closed, and the rank's log gets one line without the message's content.
   */
  private static final class RefuseSilently implements TransportServerBootstrap {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(SocketTransport.class);
    private final TransportServerBootstrap auth;

    RefuseSilently(TransportServerBootstrap auth) {
      this.auth = auth;
    }

    @Override
    public RpcHandler doBootstrap(io.netty.channel.Channel channel, RpcHandler inbox) {
      // Spark's handshakes (its own protocol, or SASL without network encryption) are both this kind.
      AbstractAuthRpcHandler guarded = (AbstractAuthRpcHandler) auth.doBootstrap(channel, inbox);
      return new RpcHandler() {
        @Override
        public void receive(TransportClient client, ByteBuffer message, RpcResponseCallback callback) {
          if (guarded.isAuthenticated()) {
            guarded.receive(client, message, callback);
            return;
          }
          try {
            guarded.receive(client, message, new RpcResponseCallback() {
              @Override
              public void onSuccess(ByteBuffer response) {
                callback.onSuccess(response); // the handshake's own reply
              }

              @Override
              public void onFailure(Throwable e) {
                refuse();
              }
            });
          } catch (RuntimeException e) { // Spark's request handler would send this one's stack trace too
            refuse();
          }
        }

        private void refuse() {
          LOG.warn("refused a client of this rank's port that did not authenticate: {}", channel.remoteAddress());
          channel.close();
        }

        @Override
        public void receive(TransportClient client, ByteBuffer message) {
          guarded.receive(client, message);
        }

        @Override
        public StreamManager getStreamManager() {
          return guarded.getStreamManager();
        }

        @Override
        public void channelActive(TransportClient client) {
          guarded.channelActive(client);
        }

        @Override
        public void channelInactive(TransportClient client) {
          guarded.channelInactive(client);
        }

        @Override
        public void exceptionCaught(Throwable cause, TransportClient client) {
          guarded.exceptionCaught(cause, client);
        }
      };
    }
  }

  /** Receives blocks into the mailbox; the buffer is copied because Spark reuses it after the call. */
  private final class Inbox extends RpcHandler {
    private final StreamManager streams = new NoOpRpcHandler().getStreamManager();

    @Override
    public void receive(TransportClient client, ByteBuffer message, RpcResponseCallback callback) {
      ByteBuffer copy = ByteBuffer.allocate(message.remaining()).order(ByteOrder.LITTLE_ENDIAN);
      copy.put(message).flip();
      slot(copy.getLong(0), copy.getInt(8)).complete(copy.array());
      callback.onSuccess(ByteBuffer.allocate(0));
    }

    @Override
    public StreamManager getStreamManager() {
      return streams;
    }
  }
}

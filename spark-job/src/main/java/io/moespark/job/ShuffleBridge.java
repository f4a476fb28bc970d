package io.moespark.job;

import io.moespark.job.net.Blocks;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.train.StepProgram;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.Tensor;

/**
 * One rank's side of the shuffle path. The rank's step runs in a resident worker thread against this
 * {@link Exchange} and {@link Reducer}; each collective call hands its outgoing blocks (one per
 * destination) to the Spark task of the stage that writes that exchange's shuffle, and waits for the
 * task of the next stage to deliver the blocks the shuffle brought. Calls are checked against the
 * {@link StepProgram} the job was laid out from. An array sum is two rounds: a reduce-scatter (rank d
 * receives everyone's chunk d and sums it in rank order) and an all-gather of the summed chunks; a sum
 * of a few doubles is one round in which every rank sends its values to all.
 */
final class ShuffleBridge implements Exchange, Reducer, AutoCloseable {
  /** The blocks of one round, by destination (null: nothing for that destination). */
  record Outgoing(int round, byte[][] blocks) {}

  private final int rank;
  private final int ranks;
  private final long timeoutMs;
  private final ExecutorService worker;
  private final BlockingQueue<Outgoing> outbox = new LinkedBlockingQueue<>();
  private final BlockingQueue<List<byte[]>> inbox = new LinkedBlockingQueue<>();
  private List<StepProgram.Call> calls;
  private int call;
  private int round;
  // Set and read by the task threads of successive stages, one after the other.
  private volatile int taken; // rounds handed to stage tasks
  private volatile int delivered; // rounds whose blocks stage tasks delivered
  private volatile Future<?> running;
  private long waitNanos;
  private long bytesSent;

  ShuffleBridge(int rank, int ranks, long timeoutMs) {
    this.rank = rank;
    this.ranks = ranks;
    this.timeoutMs = timeoutMs;
    this.worker = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "moe-shuffle-rank-" + rank);
      t.setDaemon(true);
      return t;
    });
  }

  /** Starts a step (or an evaluation) on the worker thread; its calls must follow {@code program}. */
  void start(StepProgram program, java.util.concurrent.Callable<?> work) {
    if (running != null && !running.isDone()) {
      throw new IllegalStateException("rank " + rank + ": the previous step is still running");
    }
    calls = program.calls();
    call = 0;
    round = 0;
    taken = 0;
    delivered = 0;
    waitNanos = 0;
    bytesSent = 0;
    outbox.clear();
    inbox.clear();
    running = worker.submit(work);
  }

  /**
   * Task side: the blocks of round {@code expected}, once the worker has reached it; null when the work
   * has ended (after a divergence, every later round is empty).
   */
  Outgoing awaitOutgoing(int expected) throws Exception {
    if (expected != taken) {
      throw replayed("round " + expected + "'s blocks were already handed to an earlier attempt");
    }
    taken++;
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    while (true) {
      Outgoing o = outbox.poll(20, TimeUnit.MILLISECONDS);
      if (o != null) {
        if (o.round() != expected) {
          throw new IllegalStateException("rank " + rank + ": the step is at exchange round " + o.round()
              + ", the stage expected round " + expected);
        }
        return o;
      }
      if (running.isDone()) {
        awaitResult(); // rethrows a failure of the step; a divergence ends it early, which is no failure here
        return null;
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("rank " + rank + ": the step did not reach exchange round " + expected
            + " within " + timeoutMs + " ms");
      }
    }
  }

  /** Task side: the blocks the shuffle brought this rank for round {@code r}, which the worker waits on. */
  void deliver(int r, List<byte[]> blocks) {
    if (r != delivered) {
      throw replayed("round " + r + "'s blocks were already delivered by an earlier attempt");
    }
    delivered++;
    if (!running.isDone()) {
      inbox.add(blocks);
    }
  }

  /** A stage Spark ran again (a task retry or a fetch failure): a step cannot replay an exchange. */
  private IllegalStateException replayed(String what) {
    return new IllegalStateException("rank " + rank + ": " + what + " (Spark re-ran a stage of this step); "
        + "the step cannot replay an exchange: restart the run with --resume from its last checkpoint");
  }

  /** Task side: the outcome of the work once it has ended: its result, or the divergence that stopped it. */
  Object awaitResult() throws Exception {
    try {
      return running.get(timeoutMs, TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.ExecutionException e) {
      if (e.getCause() instanceof io.moespark.ops.train.Trainer.DivergenceException d) {
        return d;
      }
      throw e.getCause() instanceof Exception x ? x : e;
    }
  }

  /** Seconds the current work has waited for its exchanges (the shuffles and the stages around them). */
  double waitSeconds() {
    return waitNanos / 1e9;
  }

  /** Bytes of the current work's blocks for other ranks. */
  long bytesSent() {
    return bytesSent;
  }

  @Override
  public int ranks() {
    return ranks;
  }

  @Override
  public int rank() {
    return rank;
  }

  @Override
  public Tensor[] allToAll(Tensor[] send) {
    long seq = next(StepProgram.Kind.BLOCKS);
    byte[][] out = new byte[ranks][];
    for (int d = 0; d < ranks; d++) {
      out[d] = Blocks.bytes(Blocks.matrix(seq, rank, send[d]));
    }
    byte[][] in = swap(out);
    Tensor[] recv = new Tensor[ranks];
    Backend be = send[rank].backend();
    for (int s = 0; s < ranks; s++) {
      // A shard without experts in this layer receives no dispatch record: its blocks are empty.
      recv[s] = in[s] == null ? be.empty(send[rank].dtype(), 0, send[rank].size(1))
          : Blocks.readMatrix(Blocks.open(in[s]), be);
    }
    return recv;
  }

  @Override
  public int[][] allToAllCounts(int[][] send) {
    long seq = next(StepProgram.Kind.COUNTS);
    byte[][] out = new byte[ranks][];
    for (int d = 0; d < ranks; d++) {
      out[d] = Blocks.bytes(Blocks.ints(seq, rank, new int[][] {send[d]}));
    }
    byte[][] in = swap(out);
    int[][] recv = new int[ranks][];
    for (int s = 0; s < ranks; s++) {
      recv[s] = in[s] == null ? new int[0] : Blocks.readInts(Blocks.open(in[s]))[0];
    }
    return recv;
  }

  @Override
  public void sum(double[] values) {
    long seq = next(StepProgram.Kind.SUM_VALUES);
    byte[] mine = Blocks.bytes(Blocks.doubles(seq, rank, values));
    byte[][] out = new byte[ranks][];
    java.util.Arrays.fill(out, mine);
    byte[][] in = swap(out);
    java.util.Arrays.fill(values, 0);
    for (int s = 0; s < ranks; s++) {
      double[] v = Blocks.readDoubles(Blocks.open(in[s]));
      for (int i = 0; i < v.length; i++) {
        values[i] += v[i];
      }
    }
  }

  @Override
  public void sum(Tensor values) {
    long seq = next(StepProgram.Kind.SUM_ARRAY);
    Backend be = values.backend();
    long n = values.length();
    byte[][] out = new byte[ranks][];
    for (int d = 0; d < ranks; d++) {
      out[d] = Blocks.bytes(Blocks.matrix(seq, rank, chunk(values, n, d)));
    }
    byte[][] in = swap(out); // reduce-scatter: everyone's chunk `rank`
    Tensor mine = Blocks.readMatrix(Blocks.open(in[0]), be);
    for (int s = 1; s < ranks; s++) {
      mine.addi(Blocks.readMatrix(Blocks.open(in[s]), be));
    }
    byte[] reduced = Blocks.bytes(Blocks.matrix(seq, rank, mine));
    java.util.Arrays.fill(out, reduced);
    in = swap(out); // all-gather of the summed chunks
    for (int s = 0; s < ranks; s++) {
      chunk(values, n, s).assign(Blocks.readMatrix(Blocks.open(in[s]), be));
    }
  }

  /** Rank {@code part}'s share of a reduce-scatter over the {@code n} values of a contiguous tensor. */
  private Tensor chunk(Tensor values, long n, int part) {
    long from = part * n / ranks, to = (part + 1) * n / ranks;
    return values.backend().view(values, from, to - from);
  }

  /** Checks the next call against the program; returns its sequence number for the block headers. */
  private long next(StepProgram.Kind kind) {
    if (call >= calls.size() || calls.get(call).kind() != kind) {
      throw new IllegalStateException("rank " + rank + ": collective call " + call + " is " + kind
          + ", the step program says " + (call < calls.size() ? calls.get(call).kind() : "nothing more")
          + " (the program is out of date with the trainer)");
    }
    return call++;
  }

  /** One round: hands the outgoing blocks to the stage's task and waits for the blocks of the next stage. */
  private byte[][] swap(byte[][] out) {
    long t0 = System.nanoTime();
    for (int d = 0; d < ranks; d++) {
      if (d != rank && out[d] != null) {
        bytesSent += out[d].length;
      }
    }
    outbox.add(new Outgoing(round++, out));
    try {
      List<byte[]> got = inbox.poll(timeoutMs, TimeUnit.MILLISECONDS);
      if (got == null) {
        throw new IllegalStateException("rank " + rank + ": no blocks for exchange round " + (round - 1)
            + " within " + timeoutMs + " ms");
      }
      byte[][] bySource = new byte[ranks][];
      for (byte[] b : got) {
        bySource[Blocks.source(b)] = b;
      }
      return bySource;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    } finally {
      waitNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public void close() {
    worker.shutdownNow();
  }
}

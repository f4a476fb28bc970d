package io.moespark.job;

import io.moespark.ops.collective.BlockTransport;
import io.moespark.ops.collective.Blocks;
import io.moespark.ops.collective.Collective;
import io.moespark.ops.collective.RankOrderedCollective;
import io.moespark.ops.train.StepProgram;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One rank's side of the shuffle path: a {@link BlockTransport} whose rounds are Spark stages. The
 * rank's step runs in a resident worker thread against {@link #collective()} (the shared
 * rank-ordered semantics over this transport); each round hands its outgoing blocks (one per
 * destination) to the Spark task of the stage that writes that round's shuffle, and waits for the task
 * of the next stage to deliver the blocks the shuffle brought. Calls are checked against the
 * {@link StepProgram} the job was laid out from: kind, MoE layer and direction.
 */
final class ShuffleBridge implements BlockTransport {
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
  private final RankOrderedCollective collective;
  private long waitNanos;
  private long bytesAtStart;

  ShuffleBridge(int rank, int ranks, long timeoutMs) {
    this.rank = rank;
    this.ranks = ranks;
    this.timeoutMs = timeoutMs;
    this.worker = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "moe-shuffle-rank-" + rank);
      t.setDaemon(true);
      return t;
    });
    this.collective = new RankOrderedCollective(this, this::check);
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
    bytesAtStart = collective.bytesSent();
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
    return collective.bytesSent() - bytesAtStart;
  }

  @Override
  public int ranks() {
    return ranks;
  }

  @Override
  public int rank() {
    return rank;
  }

  /** Every block goes through the round's shuffle, this rank's own included (the UI shows all of them). */
  @Override
  public boolean routesSelf() {
    return true;
  }

  @Override
  public String endpoint() {
    return "shuffle path rank " + rank;
  }

  /** The rank's exchanges and sums: the shared semantics over this bridge, each call checked against the program. */
  Collective collective() {
    return collective;
  }

  /** Checks the next call (its kind, MoE layer and direction) against the program. */
  private void check(StepProgram.Kind kind, int layer, boolean toExperts) {
    StepProgram.Call expected = call < calls.size() ? calls.get(call) : null;
    if (expected == null || expected.kind() != kind) {
      throw new IllegalStateException("rank " + rank + ": collective call " + call + " is " + kind
          + ", the step program says " + (expected == null ? "nothing more" : expected.kind())
          + " (the program is out of date with the trainer)");
    }
    if (expected.layer() != layer || expected.toExperts() != toExperts) {
      throw new IllegalStateException("rank " + rank + ": collective call " + call + " (" + kind + ") belongs to layer "
          + layer + (toExperts ? " towards the experts" : " back from the experts") + ", the step program says layer "
          + expected.layer() + (expected.toExperts() ? " towards the experts" : " back from the experts")
          + " (the program is out of date with the trainer)");
    }
    call++;
  }

  /** One round: hands the outgoing blocks to the stage's task and waits for the blocks of the next stage. */
  @Override
  public byte[][] swap(long seq, byte[][] out) {
    long t0 = System.nanoTime();
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

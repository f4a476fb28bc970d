package io.moespark.job;

import io.moespark.ops.collective.Collective;
import io.moespark.ops.tensor.Tensor;
import io.moespark.ops.train.StepProgram;
import java.io.Serializable;
import java.util.List;

/**
 * Where one rank is: its step and the phase of it, the compute it runs or the exchange it waits in. The
 * rank's collective keeps it ({@link #watch}): the i-th exchange of a training step is the step program's
 * i-th call, whose {@code after} names the compute that precedes it. The executor's heartbeat thread reads
 * it once a second ({@link StepFeedPlugin}), so that the driver can name the rank and phase a stall is in.
 * Written by the rank's thread only; read from the heartbeat thread (volatile fields).
 */
final class RankProgress {
  /** One rank's heartbeat: what it is doing and for how long (seconds, measured on its executor). */
  record Beat(String runId, int rank, String executor, String host, int step, String phase, boolean exchanging,
      double seconds) implements Serializable {}

  private final String runId;
  private final int rank;
  private final String executor;
  private final String host;
  private volatile List<StepProgram.Call> trainingCalls;
  /** Where a heartbeat goes at once as each step begins (the plugin channel; the periodic ones as well). */
  private final java.util.function.Consumer<Beat> sendNow;
  private volatile int step = -1;
  private volatile String phase = "opening";
  private volatile boolean exchanging;
  private volatile long since = System.nanoTime();
  /** The next call of the step program, or -1 outside a training step. */
  private int call = -1;

  RankProgress(String runId, int rank, String executor, String host, StepProgram training,
      java.util.function.Consumer<Beat> sendNow) {
    this.sendNow = sendNow;
    this.runId = runId;
    this.rank = rank;
    this.executor = executor;
    this.host = host;
    this.trainingCalls = training.calls();
  }

  /** The step program of the steps from now on (experts moved: replicas add a call or take it away). */
  void follow(StepProgram training) {
    this.trainingCalls = training.calls();
  }

  /** A training step begins: phases follow the step program's calls; the driver hears of it at once. */
  void stepBegins(int step) {
    this.step = step;
    call = 0;
    set(trainingCalls.isEmpty() ? "step" : trainingCalls.get(0).after(), false);
    sendNow.accept(beat());
  }

  /** Work outside a training step ("validation", "checkpoint", ...) or its end ("idle"). */
  void doing(String what) {
    call = -1;
    set(what, false);
  }

  Beat beat() {
    return new Beat(runId, rank, executor, host, step, phase, exchanging, (System.nanoTime() - since) / 1e9);
  }

  private void set(String phase, boolean exchanging) {
    this.phase = phase;
    this.exchanging = exchanging;
    this.since = System.nanoTime();
  }

  private void enter() {
    if (call >= 0) {
      set(call < trainingCalls.size() ? "exchange after " + trainingCalls.get(call).after() : "exchange at the end of the step", true);
    } else {
      exchanging = true;
    }
  }

  private void leave() {
    if (call >= 0) {
      call++;
      set(call < trainingCalls.size() ? trainingCalls.get(call).after() : "end of step", false);
    } else {
      exchanging = false;
    }
  }

  private <T> T during(java.util.function.Supplier<T> exchange) {
    enter();
    try {
      return exchange.get();
    } finally {
      leave();
    }
  }

  /** {@code c}, with every exchange recorded here as it starts and ends. */
  Collective watch(Collective c) {
    return new Collective() {
      @Override
      public Tensor[] allToAll(Tensor[] send) {
        return during(() -> c.allToAll(send));
      }

      @Override
      public int[][] allToAllCounts(int[][] send) {
        return during(() -> c.allToAllCounts(send));
      }

      @Override
      public void sum(double[] values) {
        during(() -> {
          c.sum(values);
          return null;
        });
      }

      @Override
      public void sum(Tensor values) {
        during(() -> {
          c.sum(values);
          return null;
        });
      }

      @Override
      public Collective labelled(int layer, boolean toExperts) {
        c.labelled(layer, toExperts);
        return this;
      }

      @Override
      public int rank() {
        return c.rank();
      }

      @Override
      public int ranks() {
        return c.ranks();
      }

      @Override
      public long bytesSent() {
        return c.bytesSent();
      }

      @Override
      public double busySeconds() {
        return c.busySeconds();
      }

      @Override
      public String endpoint() {
        return c.endpoint();
      }

      @Override
      public void close() {
        c.close();
      }
    };
  }
}

package io.moespark.job;

import io.moespark.job.ui.MoeEvents;
import io.moespark.ops.moe.MoeStats;
import io.moespark.ops.train.StepReport;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListenerEvent;

/**
 * The driver's side of the MoE tab: posts a run's {@link MoeEvents} on Spark's listener bus (so they reach
 * the live tab and the event log): the start, each placement, steps grouped in windows of
 * {@link MoeEvents#window} steps, validation passes and restarts.
 */
final class RunEvents {
  private final JavaSparkContext sc;
  private final int total;
  private final MoeEvents.WindowBuilder steps;

  RunEvents(JavaSparkContext sc, int totalSteps) {
    this.sc = sc;
    this.total = totalSteps;
    this.steps = new MoeEvents.WindowBuilder(totalSteps);
  }

  void started(String run, String configJson, int fromStep) {
    post(new MoeEvents.RunStarted(run, configJson, total, steps.window(), fromStep));
  }

  void placement(RankGroup ranks, ExpertPlacement placement) {
    List<MoeEvents.Rank> rows = new ArrayList<>();
    List<String> executors = ranks.executors(), hosts = ranks.hosts(), gpus = ranks.gpus(), arenas = ranks.arenas();
    for (int r = 0; r < placement.ranks(); r++) {
      rows.add(new MoeEvents.Rank(r, executors.get(r), hosts.get(r), gpus.get(r), arenas.get(r),
          placement.expertsOf(r)));
    }
    post(new MoeEvents.Placement(ranks.nextStep(), rows));
  }

  void step(StepResult s) {
    StepReport r = s.report();
    List<MoeStats> layers = r.layers();
    long[][] assigned = new long[layers.size()][], kept = new long[layers.size()][];
    for (int l = 0; l < layers.size(); l++) {
      assigned[l] = layers.get(l).assignedPerExpert();
      kept[l] = layers.get(l).keptPerExpert();
    }
    MoeEvents.Window closed = steps.add(r.step(), r.loss().total(), r.loss().ce(), r.loss().aux(), r.loss().z(), r.lr(),
        r.gradNorm(), r.seconds(), r.tokensPerSecond(), s.exchangeSeconds(), s.bytesExchanged(), r.maxOverMeanLoad(),
        assigned, kept);
    if (closed != null) {
      post(closed);
    }
  }

  /** Posts the steps of an unfinished window (the run stops before its end). */
  void flush() {
    if (!steps.isEmpty()) {
      post(steps.take());
    }
  }

  void validation(int step, double loss, List<MoeEvents.Sample> samples) {
    post(new MoeEvents.Validation(step, loss, samples));
  }

  /** The ranks failed at {@code step}; the run goes on from {@code fromStep}. Steps of the failed window are dropped. */
  void restart(int step, int fromStep, String message) {
    if (!steps.isEmpty()) {
      steps.take();
    }
    post(new MoeEvents.Restart(step, fromStep, message));
  }

  private void post(SparkListenerEvent e) {
    sc.sc().listenerBus().post(e);
  }
}

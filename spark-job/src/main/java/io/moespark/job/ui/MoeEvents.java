package io.moespark.job.ui;

import io.moespark.ops.moe.MoeStats;
import java.util.List;
import org.apache.spark.scheduler.SparkListenerEvent;

/**
 * What the driver tells Spark's listener bus about a run: custom events, so that the MoE tab of the live UI
 * and of the History Server read the same thing, and the event log keeps it. Jackson writes them to the
 * event log by class name; change them only by adding fields (a field the History Server cannot read
 * makes it skip the whole application). Kept small for long runs: one {@link Window} per
 * {@link #window(int)} steps, whatever the run's length.
 */
public final class MoeEvents {
  private MoeEvents() {}

  /** Windows a run's steps are grouped in: about 500 of them at most, one step each for runs up to 500 steps. */
  public static int window(int totalSteps) {
    return Math.max(1, (totalSteps + 499) / 500);
  }

  /** A run began (or resumed): its name, configuration (JSON), length and window. */
  public record RunStarted(String run, String config, int totalSteps, int window, int fromStep)
      implements SparkListenerEvent {}

  /** Where the experts live from {@code fromStep} on: one row per rank (after every start and restart). */
  public record Placement(int fromStep, List<Rank> ranks) implements SparkListenerEvent {}

  /** A rank's executor, host, GPU (null without one) and experts per MoE layer. */
  /** A rank's place: executor, host, GPU, its backend's arena as it opened (null in older event logs), experts. */
  public record Rank(int rank, String executor, String host, String gpu, String arena, List<List<Integer>> experts) {}

  /**
   * Steps [first, last] of a run, aggregated: mean loss terms and gradient norm, the last learning rate,
   * tokens/s over the window, exchange seconds and bytes, the mean of the per-step max/mean load, and each
   * MoE layer's tokens per expert before ({@code assigned}) and after ({@code kept}) capacity dropping.
   */
  public record Window(int first, int last, double loss, double ce, double aux, double z, double lr, double gradNorm,
      double seconds, double tokensPerS, double exchangeSeconds, long bytes, double maxOverMeanLoad,
      long[][] assigned, long[][] kept) implements SparkListenerEvent {
    public int steps() {
      return last - first + 1;
    }

    /** Layer {@code l}'s counts over the window, as the trainer reports a step's (max/mean load, dropped share). */
    public MoeStats layer(int l) {
      return new MoeStats(assigned[l], kept[l], 0, 0);
    }
  }

  /**
   * A validation pass after {@code step} steps, with the model's continuation of each of train.sample_prompts
   * (empty without them, and in event logs written before samples existed).
   */
  public record Validation(int step, double loss, List<Sample> samples) implements SparkListenerEvent {
    public Validation {
      samples = samples == null ? List.of() : List.copyOf(samples);
    }

    public Validation(int step, double loss) {
      this(step, loss, List.of());
    }
  }

  /** A prompt and the model's greedy continuation of it. */
  public record Sample(String prompt, String text) {}

  /** The ranks failed at {@code step} and the run restarts from {@code fromStep}: the driver's own line. */
  public record Restart(int step, int fromStep, String message) implements SparkListenerEvent {}

  /**
   * Adds steps up into {@link Window}s of {@link #window} steps, closed at every multiple of the window and
   * at the run's last step (the driver for its events, the report for metrics.jsonl).
   */
  public static final class WindowBuilder {
    private final int total;
    private final int window;
    private int first = -1, last, n;
    private double loss, ce, aux, z, lr, grad, seconds, tokens, exchange, maxOverMean;
    private long bytes;
    private long[][] assigned, kept;

    public WindowBuilder(int totalSteps) {
      this.total = totalSteps;
      this.window = MoeEvents.window(totalSteps);
    }

    /** Steps per window for this run. */
    public int window() {
      return window;
    }

    /** Adds a step; returns the window it closes, or null. */
    public Window add(int step, double loss, double ce, double aux, double z, double lr, double gradNorm, double seconds,
        double tokensPerS, double exchangeSeconds, long bytes, double maxOverMeanLoad, long[][] assigned,
        long[][] kept) {
      if (first < 0) {
        first = step;
        this.assigned = new long[assigned.length][];
        this.kept = new long[kept.length][];
        for (int l = 0; l < assigned.length; l++) {
          this.assigned[l] = new long[assigned[l].length];
          this.kept[l] = new long[kept[l].length];
        }
      }
      last = step;
      n++;
      this.loss += loss;
      this.ce += ce;
      this.aux += aux;
      this.z += z;
      this.lr = lr;
      this.grad += gradNorm;
      this.seconds += seconds;
      this.tokens += tokensPerS * seconds;
      this.exchange += exchangeSeconds;
      this.bytes += bytes;
      this.maxOverMean += maxOverMeanLoad;
      for (int l = 0; l < assigned.length; l++) {
        for (int e = 0; e < assigned[l].length; e++) {
          this.assigned[l][e] += assigned[l][e];
          this.kept[l][e] += kept[l][e];
        }
      }
      return (step + 1) % window == 0 || step + 1 == total ? take() : null;
    }

    public boolean isEmpty() {
      return n == 0;
    }

    /** The window so far, and a fresh start. */
    public Window take() {
      Window w = new Window(first, last, loss / n, ce / n, aux / n, z / n, lr, grad / n, seconds,
          seconds > 0 ? tokens / seconds : 0, exchange, bytes, maxOverMean / n, assigned, kept);
      first = -1;
      n = 0;
      loss = ce = aux = z = lr = grad = seconds = tokens = exchange = maxOverMean = 0;
      bytes = 0;
      return w;
    }
  }
}

package io.moespark.job;

import io.moespark.ops.train.StepReport;
import java.io.Serializable;

/**
 * One training step as the driver receives it: the step's global report (identical on every rank: loss
 * terms, optimizer numbers, per MoE layer and expert the assignments before and after dropping), rank
 * 0's time inside exchanges (including waiting for peers; the rest of the step is compute) and the bytes
 * all ranks sent to one another.
 */
public record StepResult(StepReport report, double exchangeSeconds, long bytesExchanged) implements Serializable {
  public int step() {
    return report.step();
  }

  public double loss() {
    return report.loss().total();
  }
}

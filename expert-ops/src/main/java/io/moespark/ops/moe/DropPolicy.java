package io.moespark.ops.moe;

/** Which assignments survive when an expert is over capacity. */
public enum DropPolicy {
  /** Earlier tokens of the rank first (then lower slot). */
  POSITION,
  /** Higher gate weight first, ties by position (batch-prioritised routing). */
  GATE
}

package io.moespark.ops.moe;

/** How tokens choose experts (DESIGN §3 "Routing variants"). */
public enum RouterKind {
  /** Each token takes the top-k experts of p + b. */
  TOPK,
  /** Each expert takes its top-C tokens by p; a token may get 0..E experts. */
  EXPERT_CHOICE,
  /** expert = hash(token id) mod E, weight 1; no router weights. */
  HASH
}

package io.moespark.ops.config;

import io.moespark.ops.moe.DropPolicy;
import io.moespark.ops.moe.MoeSpec;
import io.moespark.ops.moe.RouterKind;
import io.moespark.ops.nn.Activation;
import io.moespark.ops.nn.RopeScaling;

/**
 * One run's configuration: the single typed home of every setting. Read with {@link ConfigLoader}
 * (defaults in {@code defaults.yaml}, then the file, then {@code --set} overrides), validated by
 * {@link #validate()}. YAML keys are the snake_case forms of the component names.
 */
public record RunConfig(
    Model model, Moe moe, Train train, Data data, Parallel parallel, Checkpoint checkpoint) {

  /**
   * @param nKvHeads key/value heads (grouped-query attention); 0 means one per head ({@link #kvHeads})
   * @param tieEmbeddings the output layer is the input embedding (transposed), as in many small checkpoints
   * @param ropeScaling how RoPE's frequencies are scaled ({@link RopeScaling}), with the next four keys
   * @param qkvBias the q, k and v projections have biases (Qwen2's attention)
   */
  public record Model(int vocabSize, int dModel, int nLayers, int nHeads, int dFf, int seqLen, double ropeTheta,
      double normEps, int nKvHeads, boolean tieEmbeddings, RopeScaling.Type ropeScaling, double ropeScalingFactor,
      double ropeLowFreqFactor, double ropeHighFreqFactor, int ropeOriginalMaxPositions, boolean qkvBias) {
    /** The RoPE scaling these keys describe. */
    public RopeScaling scaling() {
      return new RopeScaling(ropeScaling, ropeScalingFactor, ropeLowFreqFactor, ropeHighFreqFactor,
          ropeOriginalMaxPositions);
    }

    /** The key/value heads: n_kv_heads, or n_heads when it is 0 (multi-head attention). */
    public int kvHeads() {
      return nKvHeads == 0 ? nHeads : nKvHeads;
    }
  }

  public record Moe(int every, int experts, int topK, int dExpert, int sharedExperts, Activation activation,
      RouterKind router, boolean normTopk, double capacityFactor, double evalCapacityFactor, DropPolicy dropPolicy,
      double auxLossCoef, double zLossCoef, double biasUpdateRate) {

    public MoeSpec spec() {
      return new MoeSpec(experts, topK, dExpert, sharedExperts, activation, router, normTopk, capacityFactor,
          dropPolicy, auxLossCoef, zLossCoef);
    }
  }

  public record Train(int steps, int batchSize, double lr, int warmupSteps, double minLrRatio, double weightDecay,
      double beta1, double beta2, double adamEps, double gradClip, long seed, int evalEvery, int evalBatches,
      int logEvery, double upcycleNoise, java.util.List<String> samplePrompts, int sampleTokens) {}

  public record Data(String path, String format, String split, double valFraction) {}

  /**
   * @param dispatch how tokens reach their experts between ranks
   * @param stepsPerStage steps the direct runner runs per Spark job (each step's statistics still reach
   *     the driver as it ends)
   * @param timeoutS how long a rank waits for a peer in an exchange before the step fails
   * @param transport the direct path's collective
   * @param maxRestarts how often a run reopens its ranks from the last checkpoint after a failure
   * @param device the compute backend of every rank
   * @param precision the arithmetic of the GEMMs on a GPU
   * @param replicaSlots extra experts a rank may hold per MoE layer as replicas of hot experts (dynamic
   *     placement; 0: no replicas)
   * @param placementMoveCost what moving one expert copy costs the dynamic policy, in expert-token passes
   *     (one token through one expert, forward and backward): a layer is laid out again only when the
   *     busiest rank's predicted saving over the next steps pays for the copies it moves
   */
  public record Parallel(int ranks, Dispatch dispatch, int stepsPerStage, int timeoutS, Transport transport,
      int maxRestarts, Device device, Precision precision, Placement placement,
      java.util.List<String> placementSchedule, int placementWindow, double placementThreshold,
      int placementMinInterval, int replicaSlots, double placementMoveCost) {

    /** {@code parallel.placement_schedule}'s entries, parsed (validated with the config). */
    public java.util.List<PlacementMove> moves() {
      return placementSchedule.stream().map(PlacementMove::parse).toList();
    }
  }

  /** {@code parallel.placement}: whether the experts' ranks change during a run. */
  public enum Placement {
    /** Where the run starts them (contiguous, or the checkpoint's) for the whole run. */
    FIXED,
    /** Moved at the steps {@code parallel.placement_schedule} names (tests, benchmarks, a planned layout). */
    SCHEDULE,
    /**
     * Moved when the busiest rank's share of a layer's expert tokens over a window of steps stays above
     * {@code parallel.placement_threshold} times the even share: experts laid out again by their loads.
     */
    DYNAMIC;

    /** The spelling in config files. */
    public String key() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /**
   * One entry of {@code parallel.placement_schedule}, {@code "STEP:LAYER:h0,h1,..."}: after STEP steps,
   * MoE layer LAYER's expert e is held by h_e, one rank or several joined by {@code |} (replicas), for every
   * expert.
   */
  public record PlacementMove(int step, int layer, int[][] holders) {
    static PlacementMove parse(String entry) {
      String[] f = entry == null ? new String[0] : entry.split(":");
      try {
        if (f.length != 3) {
          throw new NumberFormatException();
        }
        String[] o = f[2].split(",");
        int[][] holders = new int[o.length][];
        for (int i = 0; i < o.length; i++) {
          holders[i] = java.util.Arrays.stream(o[i].split("\\|", -1)).mapToInt(x -> Integer.parseInt(x.trim()))
              .toArray();
        }
        return new PlacementMove(Integer.parseInt(f[0].trim()), Integer.parseInt(f[1].trim()), holders);
      } catch (NumberFormatException e) {
        throw new ConfigException("parallel.placement_schedule: expected entries STEP:LAYER:ranks,ranks,... (the "
            + "rank of every expert of that layer after STEP steps, or ranks joined by | for replicas), got '"
            + entry + "'");
      }
    }
  }

  /**
   * {@code parallel.precision}: what the GEMMs multiply on a GPU. Parameters, gradients, AdamW moments,
   * activations and every reduction stay F32 (or F64) in all three.
   */
  public enum Precision {
    /** F32 products (TF32 off): the parity mode, within F32 rounding of the CPU backend. */
    FP32,
    /** F32 operands rounded to TF32 (10-bit mantissa) on tensor cores, F32 accumulation. */
    TF32,
    /** Operands rounded to bf16 (8-bit mantissa), F32 accumulation: PyTorch's bf16 autocast for GEMMs. */
    BF16;

    /** The spelling in config files. */
    public String key() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /** {@code parallel.device}: where each rank computes (its {@code Backend}). */
  public enum Device {
    /** The executor's CPU cores: ND4J GEMMs and the project's fused loops. */
    CPU,
    /**
     * The GPU Spark assigned to the rank's task (its {@code gpu} resource): cuBLAS and the project's
     * kernels, in a build with the {@code cuda} profile.
     */
    CUDA;

    /** The spelling in config files. */
    public String key() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /** {@code parallel.dispatch}: how the exchanges of a step travel between ranks. */
  public enum Dispatch {
    /** Straight between executors over the ranks' collective, several steps per barrier stage. */
    DIRECT,
    /** As Spark shuffles partitioned by expert id, one job per step. */
    SHUFFLE;

    /** The spelling in config files. */
    public String key() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /** {@code parallel.transport}: the direct path's collective. */
  public enum Transport {
    /** Spark's own network library, authenticated and optionally encrypted (CPUs). */
    SOCKET,
    /** NCCL between the ranks' GPUs (built with the cuda profile). */
    NCCL;

    /** The spelling in config files. */
    public String key() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  public record Checkpoint(int every, int keep) {}

  /** Throws a {@link ConfigException} naming the first key whose value is out of range. */
  public RunConfig validate() {
    positive("model.vocab_size", model.vocabSize());
    positive("model.d_model", model.dModel());
    positive("model.n_layers", model.nLayers());
    positive("model.n_heads", model.nHeads());
    positive("model.d_ff", model.dFf());
    positive("model.seq_len", model.seqLen());
    check(model.dModel() % model.nHeads() == 0, "model.d_model", model.dModel(),
        "a multiple of model.n_heads (" + model.nHeads() + ")");
    check(model.nKvHeads() >= 0 && model.nKvHeads() <= model.nHeads()
        && model.nHeads() % Math.max(1, model.nKvHeads()) == 0, "model.n_kv_heads", model.nKvHeads(),
        "a divisor of model.n_heads (" + model.nHeads() + "), or 0 for one per head");
    check(model.ropeScalingFactor() >= 1, "model.rope_scaling_factor", model.ropeScalingFactor(), ">= 1");
    check(model.ropeHighFreqFactor() > model.ropeLowFreqFactor() && model.ropeLowFreqFactor() > 0,
        "model.rope_high_freq_factor", model.ropeHighFreqFactor(),
        "> model.rope_low_freq_factor (" + model.ropeLowFreqFactor() + ") > 0");
    positive("model.rope_original_max_positions", model.ropeOriginalMaxPositions());
    check((model.dModel() / model.nHeads()) % 2 == 0, "model.d_model", model.dModel(),
        "a head dimension d_model / n_heads that is even (RoPE rotates halves)");
    check(model.ropeTheta() > 0, "model.rope_theta", model.ropeTheta(), "> 0");
    check(model.normEps() > 0, "model.norm_eps", model.normEps(), "> 0");
    positive("moe.every", moe.every());
    positive("moe.experts", moe.experts());
    check(moe.topK() >= 1 && moe.topK() <= moe.experts(), "moe.top_k", moe.topK(),
        "in [1, moe.experts = " + moe.experts() + "]");
    check(moe.router() != RouterKind.HASH || moe.topK() == 1, "moe.top_k", moe.topK(), "1 with moe.router: hash");
    positive("moe.d_expert", moe.dExpert());
    check(moe.sharedExperts() >= 0, "moe.shared_experts", moe.sharedExperts(), ">= 0");
    check(moe.auxLossCoef() >= 0, "moe.aux_loss_coef", moe.auxLossCoef(), ">= 0");
    check(moe.zLossCoef() >= 0, "moe.z_loss_coef", moe.zLossCoef(), ">= 0");
    check(moe.biasUpdateRate() >= 0, "moe.bias_update_rate", moe.biasUpdateRate(), ">= 0");
    positive("train.steps", train.steps());
    positive("train.batch_size", train.batchSize());
    check(train.lr() > 0, "train.lr", train.lr(), "> 0");
    check(train.warmupSteps() >= 0, "train.warmup_steps", train.warmupSteps(), ">= 0");
    check(train.minLrRatio() >= 0 && train.minLrRatio() <= 1, "train.min_lr_ratio", train.minLrRatio(), "in [0, 1]");
    check(train.weightDecay() >= 0, "train.weight_decay", train.weightDecay(), ">= 0");
    check(train.beta1() >= 0 && train.beta1() < 1, "train.beta1", train.beta1(), "in [0, 1)");
    check(train.beta2() >= 0 && train.beta2() < 1, "train.beta2", train.beta2(), "in [0, 1)");
    check(train.adamEps() > 0, "train.adam_eps", train.adamEps(), "> 0");
    check(train.gradClip() >= 0, "train.grad_clip", train.gradClip(), ">= 0 (0 turns clipping off)");
    check(train.upcycleNoise() >= 0, "train.upcycle_noise", train.upcycleNoise(), ">= 0 (0: exact copies)");
    check(train.evalEvery() >= 0, "train.eval_every", train.evalEvery(), ">= 0 (0 turns evaluation off)");
    positive("train.eval_batches", train.evalBatches());
    positive("train.log_every", train.logEvery());
    check(train.samplePrompts() != null && train.samplePrompts().stream().noneMatch(p -> p == null || p.isBlank()),
        "train.sample_prompts", train.samplePrompts(), "a list of non-empty prompts");
    positive("train.sample_tokens", train.sampleTokens());
    check(train.samplePrompts().isEmpty() || train.evalEvery() > 0, "train.sample_prompts", train.samplePrompts(),
        "train.eval_every > 0 (samples are generated at each validation)");
    check(train.samplePrompts().isEmpty() || moe.router() != RouterKind.EXPERT_CHOICE, "train.sample_prompts",
        train.samplePrompts(), "no prompts with moe.router: expert_choice (it has no one-token-at-a-time form)");
    check(data.path() != null && !data.path().isBlank(), "data.path", data.path(), "a file or directory path");
    check(data.format().equals("auto") || data.format().equals("text") || data.format().equals("tokens")
        || data.format().equals("prepared"),
        "data.format", data.format(), "one of auto, text, tokens, prepared");
    check(data.valFraction() >= 0 && data.valFraction() < 1, "data.val_fraction", data.valFraction(), "in [0, 1)");
    positive("parallel.ranks", parallel.ranks());
    positive("parallel.steps_per_stage", parallel.stepsPerStage());
    positive("parallel.timeout_s", parallel.timeoutS());
    check(parallel.maxRestarts() >= 0, "parallel.max_restarts", parallel.maxRestarts(), ">= 0 (0: a failure ends the run)");
    checkSchedule();
    check(parallel.precision() == Precision.FP32 || parallel.device() == Device.CUDA, "parallel.precision",
        parallel.precision().key(), "fp32 with parallel.device: " + parallel.device().key()
        + " (tf32 and bf16 are GPU modes: parallel.device: cuda)");
    check(checkpoint.every() >= 0, "checkpoint.every", checkpoint.every(), ">= 0 (0: only at the end)");
    positive("checkpoint.keep", checkpoint.keep());
    return this;
  }

  /** Each scheduled move names an MoE layer, a rank for every expert and leaves no rank without one. */
  private void checkSchedule() {
    String key = "parallel.placement_schedule";
    check(parallel.placementSchedule() != null, key, null, "a list of STEP:LAYER:ranks,ranks,... entries");
    check(parallel.placement() == Placement.SCHEDULE || parallel.placementSchedule().isEmpty(), key,
        parallel.placementSchedule(), "no entries unless parallel.placement: schedule");
    positive("parallel.placement_window", parallel.placementWindow());
    check(parallel.placementThreshold() >= 1, "parallel.placement_threshold", parallel.placementThreshold(),
        ">= 1 (the busiest rank's load over the mean rank's)");
    check(parallel.placementMinInterval() >= 0, "parallel.placement_min_interval", parallel.placementMinInterval(),
        ">= 0");
    check(parallel.replicaSlots() >= 0, "parallel.replica_slots", parallel.replicaSlots(), ">= 0");
    check(parallel.placementMoveCost() >= 0, "parallel.placement_move_cost", parallel.placementMoveCost(),
        ">= 0 (expert-token passes one moved expert costs)");
    check(parallel.replicaSlots() == 0 || parallel.placement() == Placement.DYNAMIC, "parallel.replica_slots",
        parallel.replicaSlots(), "0 unless parallel.placement: dynamic (a schedule names its replicas itself)");
    check(parallel.replicaSlots() == 0 || parallel.dispatch() == Dispatch.DIRECT, "parallel.replica_slots",
        parallel.replicaSlots(), "0 with parallel.dispatch: shuffle (its exchanges hold each expert once)");
    int previous = 0;
    for (PlacementMove m : parallel.moves()) {
      check(m.step() >= 1 && m.step() < train.steps() && m.step() >= previous, key, m.step() + ":" + m.layer(),
          "steps in [1, train.steps) in order (a move happens after that many steps)");
      previous = m.step();
      check(m.layer() >= 0 && m.layer() < model.nLayers() && (m.layer() + 1) % moe.every() == 0, key,
          m.step() + ":" + m.layer(), "an MoE layer (layer i has one when (i + 1) % moe.every == 0)");
      check(m.holders().length == moe.experts(), key, m.step() + ":" + m.layer(),
          "a rank for each of the " + moe.experts() + " experts");
      boolean[] holds = new boolean[parallel.ranks()];
      for (int[] h : m.holders()) {
        check(java.util.Arrays.stream(h).distinct().count() == h.length, key, m.step() + ":" + m.layer(),
            "distinct ranks for an expert's replicas");
        check(h.length == 1 || parallel.dispatch() == Dispatch.DIRECT, key, m.step() + ":" + m.layer(),
            "one rank per expert with parallel.dispatch: shuffle (replicas run on the direct path)");
        for (int r : h) {
          check(r >= 0 && r < parallel.ranks(), key, m.step() + ":" + m.layer(),
              "ranks in [0, parallel.ranks = " + parallel.ranks() + ")");
          holds[r] = true;
        }
      }
      for (int r = 0; r < holds.length; r++) {
        check(holds[r] || moe.experts() < parallel.ranks(), key, m.step() + ":" + m.layer(),
            "every rank holding at least one expert (rank " + r + " holds none)");
      }
    }
  }

  private static void positive(String key, long value) {
    check(value > 0, key, value, "> 0");
  }

  private static void check(boolean ok, String key, Object value, String expected) {
    if (!ok) {
      throw new ConfigException(key + ": expected " + expected + ", got " + value);
    }
  }
}

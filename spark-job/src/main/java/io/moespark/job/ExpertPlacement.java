package io.moespark.job;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.ShardLayout;
import java.io.Serializable;
import java.util.Arrays;

/**
 * Which rank (expert shard, one executor) holds each expert of each MoE layer. Owned by the driver:
 * ranks are built from it, checkpoints record it, and a checkpoint loads under any other placement
 * because expert tensors are stored by global id. Layers without MoE have no row.
 */
public final class ExpertPlacement implements Serializable {
  private static final long serialVersionUID = 1L;
  private final int ranks;
  private final int[][] owner; // [layer][expert] -> rank; empty for dense layers

  public ExpertPlacement(int ranks, int[][] owner) {
    this.ranks = ranks;
    this.owner = new int[owner.length][];
    for (int l = 0; l < owner.length; l++) {
      this.owner[l] = owner[l].clone();
      for (int r : owner[l]) {
        if (r < 0 || r >= ranks) {
          throw new IllegalArgumentException("layer " + l + ": expert owner " + r + " outside [0, " + ranks + ")");
        }
      }
    }
  }

  /** The default: in every MoE layer rank r holds experts [r E / R, (r + 1) E / R). */
  public static ExpertPlacement contiguous(RunConfig cfg, int ranks) {
    boolean[] moe = TransformerLM.moeLayers(cfg.model(), cfg.moe());
    int[][] owner = new int[moe.length][];
    for (int l = 0; l < owner.length; l++) {
      owner[l] = moe[l] ? ShardLayout.contiguous(cfg.moe().experts(), ranks, 0).owner() : new int[0];
    }
    return new ExpertPlacement(ranks, owner);
  }

  public int ranks() {
    return ranks;
  }

  /** The rank of each expert of layer {@code layer} (empty for a dense layer). */
  public int[] owners(int layer) {
    return owner[layer].clone();
  }

  /** This placement with layer {@code layer}'s experts held by {@code owners}. */
  public ExpertPlacement with(int layer, int[] owners) {
    int[][] o = owner.clone();
    o[layer] = owners.clone();
    return new ExpertPlacement(ranks, o);
  }

  /** Layer {@code layer} as rank {@code rank} sees it. */
  public ShardLayout layout(int layer, int rank) {
    return new ShardLayout(ranks, rank, owner[layer]);
  }

  /** The experts {@code rank} holds in each MoE layer (dense layers left out). */
  public java.util.List<java.util.List<Integer>> expertsOf(int rank) {
    java.util.List<java.util.List<Integer>> out = new java.util.ArrayList<>();
    for (int[] layer : owner) {
      if (layer.length > 0) {
        java.util.List<Integer> mine = new java.util.ArrayList<>();
        for (int e = 0; e < layer.length; e++) {
          if (layer[e] == rank) {
            mine.add(e);
          }
        }
        out.add(mine);
      }
    }
    return out;
  }

  public ArrayNode toJson(ObjectMapper json) {
    ArrayNode a = json.createArrayNode();
    for (int[] layer : owner) {
      ArrayNode row = a.addArray();
      for (int r : layer) {
        row.add(r);
      }
    }
    return a;
  }

  public static ExpertPlacement fromJson(JsonNode a, int ranks) {
    int[][] owner = new int[a.size()][];
    for (int l = 0; l < owner.length; l++) {
      owner[l] = new int[a.get(l).size()];
      for (int e = 0; e < owner[l].length; e++) {
        owner[l][e] = a.get(l).get(e).asInt();
      }
    }
    return new ExpertPlacement(ranks, owner);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ExpertPlacement p && p.ranks == ranks && Arrays.deepEquals(p.owner, owner);
  }

  @Override
  public int hashCode() {
    return 31 * ranks + Arrays.deepHashCode(owner);
  }

  @Override
  public String toString() {
    return "ExpertPlacement[R=" + ranks + ", " + Arrays.deepToString(owner) + "]";
  }
}

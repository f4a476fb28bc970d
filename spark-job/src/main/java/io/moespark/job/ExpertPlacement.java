package io.moespark.job;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.ShardLayout;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Which ranks (expert shards, one executor each) hold each expert of each MoE layer: one rank, or several
 * for a replicated expert ({@link ShardLayout} says how tokens and gradients go then). Owned by the
 * driver: ranks are built from it, checkpoints record it, and a checkpoint loads under any other placement
 * because expert tensors are stored by global id, once. Layers without MoE have no row.
 */
public final class ExpertPlacement implements Serializable {
  private static final long serialVersionUID = 2L;
  private final int ranks;
  private final int[][][] holders; // [layer][expert] -> ranks, ascending; empty for dense layers

  public ExpertPlacement(int ranks, int[][][] holders) {
    this.ranks = ranks;
    this.holders = new int[holders.length][][];
    for (int l = 0; l < holders.length; l++) {
      try {
        this.holders[l] = holders[l].length == 0 ? new int[0][] : new ShardLayout(ranks, 0, holders[l]).holders();
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("layer " + l + ": " + e.getMessage(), e);
      }
    }
  }

  /** The default: in every MoE layer rank r holds experts [r E / R, (r + 1) E / R). */
  public static ExpertPlacement contiguous(RunConfig cfg, int ranks) {
    boolean[] moe = TransformerLM.moeLayers(cfg.model(), cfg.moe());
    int[][][] h = new int[moe.length][][];
    for (int l = 0; l < h.length; l++) {
      h[l] = moe[l] ? ShardLayout.contiguous(cfg.moe().experts(), ranks, 0).holders() : new int[0][];
    }
    return new ExpertPlacement(ranks, h);
  }

  public int ranks() {
    return ranks;
  }

  /** The ranks holding each expert of layer {@code layer}, ascending (empty for a dense layer). */
  public int[][] holders(int layer) {
    return Arrays.stream(holders[layer]).map(int[]::clone).toArray(int[][]::new);
  }

  /** This placement with layer {@code layer}'s experts held by {@code holders}. */
  public ExpertPlacement with(int layer, int[][] holders) {
    int[][][] h = this.holders.clone();
    h[layer] = holders;
    return new ExpertPlacement(ranks, h);
  }

  /** Layer {@code layer} as rank {@code rank} sees it. */
  public ShardLayout layout(int layer, int rank) {
    return new ShardLayout(ranks, rank, holders[layer]);
  }

  /** Whether any expert of any layer has more than one holder. */
  public boolean hasReplicas() {
    for (int[][] layer : holders) {
      for (int[] h : layer) {
        if (h.length > 1) {
          return true;
        }
      }
    }
    return false;
  }

  /** The experts {@code rank} holds (replicas included) in each MoE layer (dense layers left out). */
  public List<List<Integer>> expertsOf(int rank) {
    List<List<Integer>> out = new ArrayList<>();
    for (int[][] layer : holders) {
      if (layer.length > 0) {
        List<Integer> mine = new ArrayList<>();
        for (int e = 0; e < layer.length; e++) {
          if (Arrays.binarySearch(layer[e], rank) >= 0) {
            mine.add(e);
          }
        }
        out.add(mine);
      }
    }
    return out;
  }

  /** Per layer, per expert: its rank, or an array of ranks when replicated. */
  public ArrayNode toJson(ObjectMapper json) {
    ArrayNode a = json.createArrayNode();
    for (int[][] layer : holders) {
      ArrayNode row = a.addArray();
      for (int[] h : layer) {
        if (h.length == 1) {
          row.add(h[0]);
        } else {
          ArrayNode rs = row.addArray();
          Arrays.stream(h).forEach(rs::add);
        }
      }
    }
    return a;
  }

  public static ExpertPlacement fromJson(JsonNode a, int ranks) {
    int[][][] h = new int[a.size()][][];
    for (int l = 0; l < h.length; l++) {
      h[l] = new int[a.get(l).size()][];
      for (int e = 0; e < h[l].length; e++) {
        JsonNode x = a.get(l).get(e);
        h[l][e] = x.isArray() ? java.util.stream.StreamSupport.stream(x.spliterator(), false).mapToInt(JsonNode::asInt)
            .toArray() : new int[] {x.asInt()};
      }
    }
    return new ExpertPlacement(ranks, h);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ExpertPlacement p && p.ranks == ranks && Arrays.deepEquals(p.holders, holders);
  }

  @Override
  public int hashCode() {
    return 31 * ranks + Arrays.deepHashCode(holders);
  }

  @Override
  public String toString() {
    return "ExpertPlacement[R=" + ranks + ", " + Arrays.deepToString(holders) + "]";
  }
}

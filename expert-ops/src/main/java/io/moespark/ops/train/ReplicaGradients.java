package io.moespark.ops.train;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.MoeLayer;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Sums the gradients of replicated experts among the ranks that hold them, before clipping and the
 * optimizer step, so every holder applies the same update and the copies stay equal. Each holder saw the
 * tokens of some sources ({@link ShardLayout#destination}); the sum of the holders' gradients is the
 * gradient over all tokens. One exchange per step: a rank sends each other holder one block with the
 * gradients of every expert both hold (layers, experts, parameters in creation order: the order both
 * sides derive, so a block needs no header). Every holder adds the parts in holder order, lowest rank
 * first, so the sums are bit-identical on every holder.
 */
final class ReplicaGradients {
  /** A replicated expert this rank holds: its holders and its parameters. */
  private record Held(int[] holders, List<Param> params) {}

  private final int rank;
  private final int ranks;
  private final List<Held> held = new ArrayList<>();
  private final Tensor[] send;
  private Tensor scratch;

  private ReplicaGradients(int rank, int ranks) {
    this.rank = rank;
    this.ranks = ranks;
    this.send = new Tensor[ranks];
  }

  /**
   * The summation for {@code model}'s layouts, or null when no expert has more than one holder. A rank that
   * holds no replica still takes part (the exchange is collective), with nothing to send.
   */
  static ReplicaGradients of(TransformerLM model) {
    if (model.moeLayers().stream().noneMatch(m -> m.layout().hasReplicas())) {
      return null;
    }
    ShardLayout first = model.moeLayers().get(0).layout();
    ReplicaGradients g = new ReplicaGradients(first.rank(), first.ranks());
    for (MoeLayer m : model.moeLayers()) {
      ShardLayout layout = m.layout();
      for (int e : layout.expertsOf(layout.rank())) {
        if (layout.holdersOf(e).length > 1) {
          g.held.add(new Held(layout.holdersOf(e), m.expertParams(e)));
        }
      }
    }
    return g;
  }

  /** Every holder of a replicated expert ends with the sum of the holders' gradients; all ranks call it. */
  void sum(Exchange ex, Backend be, DType type) {
    long[] size = new long[ranks];
    long largest = 0;
    for (Held h : held) {
      for (Param p : h.params()) {
        for (int d : h.holders()) {
          size[d] += d == rank ? 0 : p.length();
        }
        largest = Math.max(largest, p.length());
      }
    }
    for (int d = 0; d < ranks; d++) {
      send[d] = be.ensure(send[d], type, size[d]);
      long at = 0;
      for (Held h : held) {
        if (d != rank && Arrays.binarySearch(h.holders(), d) >= 0) {
          for (Param p : h.params()) {
            be.copy(p.grad(), be.view(send[d], at, p.shape()));
            at += p.length();
          }
        }
      }
    }
    Tensor[] got = ex.allToAll(send);
    scratch = be.ensure(scratch, type, Math.max(1, largest));
    long[] from = new long[ranks];
    for (Held h : held) {
      for (Param p : h.params()) {
        Tensor sum = be.view(scratch, 0, p.shape());
        int[] hs = h.holders();
        for (int i = 0; i < hs.length; i++) {
          Tensor part = hs[i] == rank ? p.grad() : be.view(got[hs[i]], from[hs[i]], p.shape());
          if (i == 0) {
            sum.assign(part);
          } else {
            sum.addi(part);
          }
        }
        for (int s : hs) {
          from[s] += s == rank ? 0 : p.length();
        }
        p.grad().assign(sum);
      }
    }
  }
}

package io.moespark.ops.train;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Moves experts between ranks in memory, at a step boundary. Every rank builds its trainer for the new
 * placement and fills it from what it already held (the replicated dense parameters and moments, its
 * experts that stay, replicas included) and from what the others send: the parameters and both AdamW
 * moments of each expert a rank gains (a move, or a new replica), sent by the expert's primary holder
 * before the move; a dropped replica is simply not rebuilt. One block per (source, destination) over the
 * run's exchange, in an order both sides
 * derive from the two placements (tensor names sorted), so a block needs no header. The step, the
 * optimizer's step and the selection biases carry over: training goes on as if the experts had always
 * been where they now are.
 */
public final class ExpertMove {
  private static final Pattern EXPERT = Pattern.compile("^(?:exp_avg\\.|exp_avg_sq\\.)?layers\\.(\\d+)\\.moe\\.experts\\.(\\d+)\\..*");

  /** The rank's new trainer and what the move cost it. */
  public record Result(Trainer trainer, long bytesSent, long bytesReceived, int tensorsSent) {}

  private ExpertMove() {}

  /**
   * Rank {@code ex.rank()}'s trainer after moving from {@code before} (the old trainer's layouts) to
   * {@code after}; every rank calls it at the same step. The old trainer must not be used afterwards.
   */
  public static Result move(Trainer old, IntFunction<ShardLayout> before, IntFunction<ShardLayout> after, Exchange ex) {
    int me = ex.rank(), ranks = ex.ranks();
    Map<String, Tensor> mine = old.allTensors();
    Trainer next = old.relaid(after);
    Map<String, long[]> wanted = new HashMap<>(); // every tensor the new trainer restores, by name
    for (Param p : next.model().params().all()) {
      for (String kind : new String[] {"", "exp_avg.", "exp_avg_sq."}) {
        wanted.put(kind + p.name(), p.shape());
      }
    }
    Backend be = old.model().params().backend();
    DType type = old.model().params().type();
    // What goes to each destination, and what comes from each source: tensor names, sorted.
    List<List<String>> out = new ArrayList<>(), in = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      out.add(new ArrayList<>());
      in.add(new ArrayList<>());
    }
    // A rank that gains an expert receives it from the expert's primary holder before the move.
    for (String name : mine.keySet()) {
      int[] le = expert(name);
      if (le != null && before.apply(le[0]).ownerOf(le[1]) == me) {
        for (int to : after.apply(le[0]).holdersOf(le[1])) {
          if (!before.apply(le[0]).holds(to, le[1])) {
            out.get(to).add(name);
          }
        }
      }
    }
    for (String name : wanted.keySet()) {
      int[] le = expert(name);
      if (le != null && !before.apply(le[0]).holds(me, le[1])) {
        in.get(before.apply(le[0]).ownerOf(le[1])).add(name);
      }
    }
    Tensor[] send = new Tensor[ranks];
    long sent = 0;
    int tensors = 0;
    for (int d = 0; d < ranks; d++) {
      out.get(d).sort(null);
      long n = 0;
      for (String name : out.get(d)) {
        n += mine.get(name).length();
      }
      send[d] = be.empty(type, n);
      long at = 0;
      for (String name : out.get(d)) {
        Tensor t = mine.get(name);
        be.copy(t, be.view(send[d], at, t.length()));
        at += t.length();
      }
      sent += n * type.width();
      tensors += out.get(d).size();
    }
    Tensor[] got = ex.allToAll(send);
    Map<String, Tensor> tensorsIn = new HashMap<>();
    for (Map.Entry<String, Tensor> e : mine.entrySet()) {
      if (wanted.containsKey(e.getKey())) {
        tensorsIn.put(e.getKey(), e.getValue());
      }
    }
    long received = 0;
    for (int s = 0; s < ranks; s++) {
      in.get(s).sort(null);
      long at = 0;
      for (String name : in.get(s)) {
        long[] shape = wanted.get(name);
        long n = 1;
        for (long d : shape) {
          n *= d;
        }
        tensorsIn.put(name, be.view(got[s], at, shape));
        at += n;
      }
      if (at != got[s].length()) {
        throw new IllegalStateException("expert move: rank " + s + " sent " + got[s].length() + " values, rank " + me
            + " expected " + at + " (the ranks disagree on the placements)");
      }
      received += at * type.width();
    }
    next.restore(tensorsIn, old.checkpointState(), "expert move at step " + old.nextStep());
    for (int d = 0; d < ranks; d++) {
      be.free(send[d]);
    }
    return new Result(next, sent, received, tensors);
  }

  /** {layer, expert} of an expert tensor's name (a parameter or a moment), else null. */
  private static int[] expert(String name) {
    Matcher m = EXPERT.matcher(name);
    return m.matches() ? new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))} : null;
  }
}

package io.moespark.job;

import io.moespark.job.net.Collectives;
import io.moespark.job.shuffle.PinnedShuffledRDD;
import io.moespark.ops.backend.Backends;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.function.ToIntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.RDD;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/** What the driver's rank stages and the shuffle runner's jobs share: pinning, task slots, error messages. */
final class RankStages {
  private static final ClassTag<Integer> INT = ClassTag$.MODULE$.apply(Integer.class);
  private static final Pattern LOCAL = Pattern.compile("local(?:\\[(\\*|\\d+)(?:,\\d+)?])?");
  private static final Pattern LOCAL_CLUSTER = Pattern.compile("local-cluster\\[(\\d+),\\s*(\\d+),.*]");

  private RankStages() {}

  /** Partitions 0..n-1 holding their own index, partition i preferring {@code locations[i]} (null: anywhere). */
  static RDD<Integer> pinned(JavaSparkContext sc, String[] locations) {
    List<Tuple2<Integer, scala.collection.immutable.Seq<String>>> items = new ArrayList<>();
    for (int i = 0; i < locations.length; i++) {
      items.add(new Tuple2<>(i, PinnedShuffledRDD.preference(locations[i])));
    }
    return sc.sc().makeRDD(CollectionConverters.asScala(items).toList(), INT);
  }

  /**
   * A barrier stage of R tasks needs R free task slots at once; Spark finds out only after minutes of
   * retries, so local masters, whose slots are known up front, are checked before the first stage.
   */
  static void checkSlots(JavaSparkContext sc, int ranks) {
    String master = sc.master();
    int taskCpus = sc.getConf().getInt("spark.task.cpus", 1);
    Matcher local = LOCAL.matcher(master), cluster = LOCAL_CLUSTER.matcher(master);
    int slots;
    if (local.matches()) {
      String n = local.group(1);
      int cores = n == null ? 1 : n.equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(n);
      slots = cores / taskCpus;
    } else if (cluster.matches()) {
      slots = Integer.parseInt(cluster.group(1)) * (Integer.parseInt(cluster.group(2)) / taskCpus);
    } else {
      return;
    }
    if (slots < ranks) {
      throw new ConfigException("parallel.ranks = " + ranks + " needs " + ranks
          + " task slots at once; master " + master + " has " + slots
          + " (lower parallel.ranks or give the master more cores)");
    }
  }

  /**
   * What the device and transport need, before anything is written: {@code parallel.device: cuda} and
   * {@code parallel.transport: nccl} a build with the {@code cuda} profile, and on a cluster a GPU for each
   * rank's task (local mode assigns none: its ranks share GPU 0).
   */
  static void checkBuild(org.apache.spark.SparkConf conf, RunConfig.Parallel p) {
    if (p.dispatch() == RunConfig.Dispatch.DIRECT && p.transport() == RunConfig.Transport.NCCL) {
      Collectives.requireNcclBuild();
    }
    if (p.device() != RunConfig.Device.CUDA) {
      return;
    }
    Backends.requireCudaBuild();
    String master = conf.get("spark.master", "local[*]");
    if (!LOCAL.matcher(master).matches() && conf.getDouble("spark.task.resource.gpu.amount", 0) <= 0) {
      throw new ConfigException("parallel.device: cuda on master " + master + " needs a GPU for each rank's "
          + "task: set spark.task.resource.gpu.amount=1, spark.executor.resource.gpu.amount and "
          + "spark.executor.resource.gpu.discoveryScript");
    }
  }

  /** Lets the driver act while a rank job runs (stream statistics, watch for stalls); may cancel it. */
  interface Waiter<T> {
    void await(JavaFutureAction<List<T>> job) throws InterruptedException;
  }

  /**
   * The result of a job with one record per rank, once {@code waiter} has let it finish, in rank order;
   * a failure names {@code description} and the rank's own words.
   */
  static <T> List<T> byRank(JavaFutureAction<List<T>> job, Waiter<T> waiter, ToIntFunction<T> rank,
      String description) {
    try {
      waiter.await(job);
      List<T> out = new ArrayList<>(job.get());
      out.sort(Comparator.comparingInt(rank));
      return out;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for " + description, e);
    } catch (ExecutionException e) {
      // A rank that found bad input (a GPU it cannot use, data it cannot read) failed for a reason that
      // reopening the ranks does not change: the driver reports it as bad input, without restarting.
      String bad = inputProblem(e);
      if (bad != null) {
        throw new ConfigException(bad, e);
      }
      throw new IllegalStateException(description + " failed: " + rootMessage(e), e);
    }
  }

  /**
   * The message of a {@link ConfigException} a rank threw, or null. A barrier stage's failure reaches the
   * driver as text (Spark's failure reason: the task's exception as {@code class: message} and its trace),
   * so the exception is found by its class name there; the message is the rest of that line.
   */
  static String inputProblem(Throwable e) {
    String marker = ConfigException.class.getName() + ": ";
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof ConfigException c) {
        return c.getMessage();
      }
      String m = t.getMessage();
      int at = m == null ? -1 : m.indexOf(marker);
      if (at >= 0) {
        String rest = m.substring(at + marker.length());
        int end = rest.indexOf('\n');
        return end < 0 ? rest : rest.substring(0, end);
      }
    }
    return null;
  }

  /** The most specific "run …" message in a failure's causes (the rank's own words), else its message. */
  static String rootMessage(Throwable e) {
    String m = e.getMessage();
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t.getMessage() != null && t.getMessage().contains("run ")) {
        m = t.getMessage();
      }
    }
    return m;
  }
}

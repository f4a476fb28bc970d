package io.moespark.job.net;

import io.moespark.ops.config.ConfigException;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import java.io.Closeable;
import java.lang.reflect.InvocationTargetException;
import org.apache.spark.BarrierTaskContext;

/**
 * One rank's end of the direct path: the MoE layer's all-to-all and the all-reduces, straight between
 * the ranks of a run, created inside a barrier task and kept with the rank. Implementations:
 * {@link DirectCollective} (Spark's authenticated transport, CPUs) and {@code NcclCollective} (NCCL,
 * GPUs; compiled only with the {@code cuda} Maven profile).
 */
public interface Collective extends Exchange, Reducer, Closeable {
  /** Bytes this rank has sent to its peers since it started. */
  long bytesSent();

  /** Seconds this rank has spent inside collective calls (sending, and waiting for its peers). */
  double busySeconds();

  /** Where peers reach this rank (host:port), or a description where there is no port. */
  String endpoint();

  @Override
  void close();

  /** The collective named by {@code parallel.transport} for the current barrier task. */
  static Collective forBarrierTask(String transport, BarrierTaskContext task, long timeoutMs) throws Exception {
    if (transport.equals("socket")) {
      return DirectCollective.forBarrierTask(task, timeoutMs);
    }
    try {
      return (Collective) Class.forName("io.moespark.job.net.NcclCollective")
          .getMethod("forBarrierTask", BarrierTaskContext.class, long.class).invoke(null, task, timeoutMs);
    } catch (ClassNotFoundException e) {
      throw new ConfigException("parallel.transport: nccl needs the job built with the cuda profile "
          + "(mvn -B -Pcuda -DskipTests package)");
    } catch (InvocationTargetException e) {
      throw e.getCause() instanceof Exception x ? x : e;
    }
  }
}

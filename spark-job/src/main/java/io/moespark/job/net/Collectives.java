package io.moespark.job.net;

import io.moespark.ops.collective.Collective;
import io.moespark.ops.collective.RankOrderedCollective;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import java.lang.reflect.InvocationTargetException;
import org.apache.spark.BarrierTaskContext;

/** The direct path's collective of a barrier task, as {@code parallel.transport} names it. */
public final class Collectives {
  private static final String NCCL = "io.moespark.job.net.NcclCollective";

  private Collectives() {}

  /**
   * SOCKET: {@link RankOrderedCollective} over {@link SocketTransport} (Spark's authenticated transport).
   * NCCL: {@code NcclCollective}, present only in a job built with the cuda profile.
   */
  public static Collective forBarrierTask(RunConfig.Transport transport, BarrierTaskContext task, long timeoutMs)
      throws Exception {
    if (transport == RunConfig.Transport.SOCKET) {
      return new RankOrderedCollective(SocketTransport.forBarrierTask(task, timeoutMs));
    }
    try {
      return (Collective) Class.forName(NCCL).getMethod("forBarrierTask", BarrierTaskContext.class, long.class)
          .invoke(null, task, timeoutMs);
    } catch (ClassNotFoundException e) {
      throw noNccl();
    } catch (InvocationTargetException e) {
      throw e.getCause() instanceof Exception x ? x : e;
    }
  }

  /** Refuses {@code parallel.transport: nccl} in a build without the {@code cuda} profile's collective. */
  public static void requireNcclBuild() {
    try {
      Class.forName(NCCL, false, Collectives.class.getClassLoader());
    } catch (ClassNotFoundException e) {
      throw noNccl();
    }
  }

  private static ConfigException noNccl() {
    return new ConfigException("parallel.transport: nccl needs the job built with the cuda profile "
        + "(mvn -B -Pcuda -DskipTests package)");
  }
}

package io.moespark.job.net;

import static org.bytedeco.cuda.global.nccl.ncclFloat;
import static org.bytedeco.cuda.global.nccl.ncclGetVersion;

import java.util.Arrays;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * {@code java -cp moe-spark-job.jar io.moespark.job.net.NcclCheck [DEVICE]}: checks a GPU node before a
 * run with {@code parallel.transport: nccl}. Loads CUDA and NCCL through JavaCPP, forms a one-rank
 * communicator on the device and runs every call the collective makes (shape exchange, a float block
 * all-to-all, integer counts, a double all-reduce), comparing the results with what was sent. Prints
 * one line per check and exits 1 on the first mismatch. Needs no ND4J, so it runs with the JavaCPP and
 * CUDA preset jars alone.
 */
public final class NcclCheck {
  private NcclCheck() {}

  public static void main(String[] args) {
    int device = args.length > 0 ? Integer.parseInt(args[0]) : 0;
    int[] version = new int[1];
    ncclGetVersion(version);
    System.out.println("NCCL " + version[0] + " on cuda:" + device);
    try (NcclCollective c = NcclCollective.create(0, 1, device, NcclCollective.newUniqueId())) {
      System.out.println("communicator: " + c.endpoint());
      float[] block = new float[1 << 20];
      for (int i = 0; i < block.length; i++) {
        block[i] = i * 0.5f - 7;
      }
      float[] back = new float[block.length];
      try (FloatPointer send = new FloatPointer(block); FloatPointer recv = new FloatPointer(block.length)) {
        c.exchangeBlocks(new Pointer[] {send}, new long[] {block.length}, new Pointer[] {recv},
            new long[] {block.length}, ncclFloat, Float.BYTES);
        recv.get(back);
      }
      check("float block all-to-all (4 MB, through the device)", Arrays.equals(block, back));
      int[][] counts = c.allToAllCounts(new int[][] {{3, 1, 4, 1, 5, 9, 2, 6}});
      check("integer counts all-to-all", Arrays.equals(counts[0], new int[] {3, 1, 4, 1, 5, 9, 2, 6}));
      double[] sums = {0.1, 0.2, 1e300};
      c.sum(sums);
      check("double all-reduce", Arrays.equals(sums, new double[] {0.1, 0.2, 1e300}));
      check("byte and time counters", c.bytesSent() == 0 && c.busySeconds() > 0);
    }
    System.out.println("nccl-check: ok");
  }

  private static void check(String what, boolean ok) {
    System.out.println((ok ? "ok   " : "FAIL ") + what);
    if (!ok) {
      System.exit(1);
    }
  }
}

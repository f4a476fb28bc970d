package io.moespark.job.net;

import static org.bytedeco.cuda.global.cudart.cudaFree;
import static org.bytedeco.cuda.global.cudart.cudaGetErrorString;
import static org.bytedeco.cuda.global.cudart.cudaMalloc;
import static org.bytedeco.cuda.global.cudart.cudaMemcpy;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyDeviceToHost;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyHostToDevice;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;
import static org.bytedeco.cuda.global.cudart.cudaStreamCreate;
import static org.bytedeco.cuda.global.cudart.cudaStreamSynchronize;
import static org.bytedeco.cuda.global.nccl.ncclAllReduce;
import static org.bytedeco.cuda.global.nccl.ncclCommDestroy;
import static org.bytedeco.cuda.global.nccl.ncclCommInitRank;
import static org.bytedeco.cuda.global.nccl.ncclDouble;
import static org.bytedeco.cuda.global.nccl.ncclFloat;
import static org.bytedeco.cuda.global.nccl.ncclGetErrorString;
import static org.bytedeco.cuda.global.nccl.ncclGetUniqueId;
import static org.bytedeco.cuda.global.nccl.ncclGroupEnd;
import static org.bytedeco.cuda.global.nccl.ncclGroupStart;
import static org.bytedeco.cuda.global.nccl.ncclInt32;
import static org.bytedeco.cuda.global.nccl.ncclRecv;
import static org.bytedeco.cuda.global.nccl.ncclSend;
import static org.bytedeco.cuda.global.nccl.ncclSum;

import java.util.HexFormat;
import java.util.List;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.resource.ResourceInformation;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.cuda.CudaBackend;
import io.moespark.ops.collective.Collective;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The direct path on GPUs: the same all-to-all and sums as
 * {@link io.moespark.ops.collective.RankOrderedCollective}, over NCCL
 * (JavaCPP's {@code org.bytedeco:cuda} presets; built only with the {@code cuda} Maven profile). One
 * communicator per run, its unique id created by rank 0 and shared with {@code BarrierTaskContext.allGather};
 * the rank's device is the GPU Spark assigned to the task ({@code spark.task.resource.gpu.amount=1}).
 * An all-to-all is two NCCL groups of one send and one receive per peer: the block shapes, then the
 * blocks, each block contiguous. With the CUDA backend ({@code parallel.device: cuda}) NCCL sends from
 * and receives into the backend's own device tensors; with the CPU backend blocks are staged through one
 * device buffer that grows as needed. NCCL's stream is a blocking stream: it waits for the backend's work
 * on the default stream, and the backend's later work waits for it.
 */
public final class NcclCollective implements Collective {
  private final int rank;
  private final int ranks;
  private final int device;
  private long bytesSent;
  private long busyNanos;
  private final ncclComm comm = new ncclComm();
  private final CUstream_st stream = new CUstream_st();
  private Pointer scratch = new Pointer();
  private long scratchBytes;

  private NcclCollective(int rank, int ranks, int device, byte[] uniqueId) {
    this.rank = rank;
    this.ranks = ranks;
    this.device = device;
    cuda(cudaSetDevice(device), "cudaSetDevice(" + device + ")");
    cuda(cudaStreamCreate(stream), "cudaStreamCreate");
    ncclUniqueId id = new ncclUniqueId();
    for (int i = 0; i < uniqueId.length; i++) {
      id.internal(i, uniqueId[i]);
    }
    nccl(ncclCommInitRank(comm, ranks, id, rank), "ncclCommInitRank(rank " + rank + " of " + ranks + ")");
  }

  /** A fresh NCCL unique id (rank 0 makes it; every rank passes the same bytes to {@link #create}). */
  public static byte[] newUniqueId() {
    ncclUniqueId id = new ncclUniqueId();
    nccl(ncclGetUniqueId(id), "ncclGetUniqueId");
    byte[] b = new byte[(int) id.sizeof()];
    for (int i = 0; i < b.length; i++) {
      b[i] = id.internal(i);
    }
    return b;
  }

  /** Joins the communicator of {@code ranks} ranks on {@code device}; blocks until every rank has joined. */
  public static NcclCollective create(int rank, int ranks, int device, byte[] uniqueId) {
    return new NcclCollective(rank, ranks, device, uniqueId);
  }

  /** The collective of a barrier task: rank = partition, device = the task's GPU, id through one allGather. */
  public static NcclCollective forBarrierTask(BarrierTaskContext task, long timeoutMs) {
    ResourceInformation gpu = task.resourcesJMap().get("gpu");
    int device = gpu == null ? 0 : Integer.parseInt(gpu.addresses()[0]);
    String mine = task.partitionId() == 0 ? HexFormat.of().formatHex(newUniqueId()) : "";
    List<String> all = List.of(task.allGather(mine));
    return create(task.partitionId(), task.numPartitions(), device, HexFormat.of().parseHex(all.get(0)));
  }

  @Override
  public Tensor[] allToAll(Tensor[] send) {
    long t0 = System.nanoTime();
    try {
      if (send[rank].backend() instanceof CudaBackend) {
        return allToAllOnDevice(send);
      }
      int[][] shapes = new int[ranks][];
      Pointer[] sendHost = new Pointer[ranks];
      long[] sendCount = new long[ranks], recvCount = new long[ranks];
      for (int d = 0; d < ranks; d++) {
        shapes[d] = new int[] {(int) send[d].size(0), (int) send[d].size(1)};
        sendHost[d] = new Pointer(host(send[d]));
        sendCount[d] = send[d].length();
      }
      int[][] recvShapes = exchangeFixed(shapes, 2);
      DType type = send[rank].dtype();
      Backend backend = send[rank].backend();
      ByteBuffer[] recvBuf = new ByteBuffer[ranks];
      Pointer[] recvHost = new Pointer[ranks];
      for (int s = 0; s < ranks; s++) {
        recvCount[s] = (long) recvShapes[s][0] * recvShapes[s][1];
        recvBuf[s] = ByteBuffer.allocateDirect((int) recvCount[s] * type.width()).order(ByteOrder.LITTLE_ENDIAN);
        recvHost[s] = new Pointer(recvBuf[s]);
      }
      exchangeBlocks(sendHost, sendCount, recvHost, recvCount, type == DType.F64 ? ncclDouble : ncclFloat,
          type.width());
      Tensor[] recv = new Tensor[ranks];
      for (int s = 0; s < ranks; s++) {
        recv[s] = backend.empty(type, recvShapes[s][0], recvShapes[s][1]);
        backend.fromHost(recvBuf[s], recv[s]);
      }
      return recv;
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  /** The all-to-all on device tensors: NCCL reads the send blocks and writes the received ones in place. */
  private Tensor[] allToAllOnDevice(Tensor[] send) {
    int[][] shapes = new int[ranks][];
    for (int d = 0; d < ranks; d++) {
      shapes[d] = new int[] {(int) send[d].size(0), (int) send[d].size(1)};
    }
    int[][] recvShapes = exchangeFixed(shapes, 2);
    DType type = send[rank].dtype();
    int ncclType = type == DType.F64 ? ncclDouble : ncclFloat;
    Backend backend = send[rank].backend();
    Tensor[] recv = new Tensor[ranks];
    for (int s = 0; s < ranks; s++) {
      recv[s] = backend.empty(type, recvShapes[s][0], recvShapes[s][1]);
    }
    nccl(ncclGroupStart(), "ncclGroupStart");
    for (int p = 0; p < ranks; p++) {
      nccl(ncclSend(device(send[p]), send[p].length(), ncclType, p, comm, stream), "ncclSend");
      nccl(ncclRecv(device(recv[p]), recv[p].length(), ncclType, p, comm, stream), "ncclRecv");
      bytesSent += p == rank ? 0 : send[p].length() * type.width();
    }
    nccl(ncclGroupEnd(), "ncclGroupEnd");
    cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return recv;
  }

  /** A device tensor's memory as the pointer NCCL takes (never dereferenced on the host). */
  private static Pointer device(Tensor t) {
    long address = CudaBackend.deviceAddress(t);
    return new Pointer() {
      {
        this.address = address;
      }
    };
  }

  /**
   * The core of the all-to-all: block p of {@code sendHost} ({@code sendCount[p]} elements) goes to rank
   * p, and rank s's block lands in {@code recvHost[s]}; all host memory, staged through the device.
   */
  void exchangeBlocks(Pointer[] sendHost, long[] sendCount, Pointer[] recvHost, long[] recvCount, int ncclType,
      int elem) {
    long[] sendOff = new long[ranks + 1], recvOff = new long[ranks + 1];
    for (int p = 0; p < ranks; p++) {
      sendOff[p + 1] = sendOff[p] + sendCount[p] * elem;
      recvOff[p + 1] = recvOff[p] + recvCount[p] * elem;
    }
    long recvBase = sendOff[ranks];
    Pointer dev = scratch(recvBase + recvOff[ranks]);
    for (int p = 0; p < ranks; p++) {
      copy(at(dev, sendOff[p]), sendHost[p], sendCount[p] * elem, cudaMemcpyHostToDevice);
    }
    nccl(ncclGroupStart(), "ncclGroupStart");
    for (int p = 0; p < ranks; p++) {
      nccl(ncclSend(at(dev, sendOff[p]), sendCount[p], ncclType, p, comm, stream), "ncclSend");
      nccl(ncclRecv(at(dev, recvBase + recvOff[p]), recvCount[p], ncclType, p, comm, stream), "ncclRecv");
      bytesSent += p == rank ? 0 : sendCount[p] * elem;
    }
    nccl(ncclGroupEnd(), "ncclGroupEnd");
    cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    for (int s = 0; s < ranks; s++) {
      copy(recvHost[s], at(dev, recvBase + recvOff[s]), recvCount[s] * elem, cudaMemcpyDeviceToHost);
    }
  }

  @Override
  public int[][] allToAllCounts(int[][] send) {
    long t0 = System.nanoTime();
    try {
      int[][] lengths = new int[ranks][];
      int max = 0;
      for (int d = 0; d < ranks; d++) {
        lengths[d] = new int[] {send[d].length};
        max = Math.max(max, send[d].length);
      }
      int[][] recvLengths = exchangeFixed(lengths, 1);
      for (int[] l : recvLengths) {
        max = Math.max(max, l[0]);
      }
      int[][] padded = new int[ranks][];
      for (int d = 0; d < ranks; d++) {
        padded[d] = java.util.Arrays.copyOf(send[d], max);
      }
      int[][] got = exchangeFixed(padded, max);
      int[][] recv = new int[ranks][];
      for (int s = 0; s < ranks; s++) {
        recv[s] = java.util.Arrays.copyOf(got[s], recvLengths[s][0]);
      }
      return recv;
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public void sum(double[] values) {
    long t0 = System.nanoTime();
    try (DoublePointer host = new DoublePointer(values)) {
      long bytes = (long) values.length * Double.BYTES;
      Pointer dev = scratch(bytes);
      copy(dev, host, bytes, cudaMemcpyHostToDevice);
      allReduce(dev, values.length, ncclDouble, bytes);
      copy(host, dev, bytes, cudaMemcpyDeviceToHost);
      host.get(values);
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public void sum(Tensor values) {
    long t0 = System.nanoTime();
    try {
      int type = values.dtype() == DType.F64 ? ncclDouble : ncclFloat;
      long bytes = values.length() * values.dtype().width();
      if (values.backend() instanceof CudaBackend) { // in place, in the backend's memory
        allReduce(device(values), values.length(), type, bytes);
        return;
      }
      ByteBuffer b = host(values);
      Pointer dev = scratch(bytes);
      Pointer h = new Pointer(b);
      copy(dev, h, bytes, cudaMemcpyHostToDevice);
      allReduce(dev, values.length(), type, bytes);
      copy(h, dev, bytes, cudaMemcpyDeviceToHost);
      values.backend().fromHost(b, values);
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public int rank() {
    return rank;
  }

  @Override
  public int ranks() {
    return ranks;
  }

  @Override
  public long bytesSent() {
    return bytesSent;
  }

  @Override
  public double busySeconds() {
    return busyNanos / 1e9;
  }

  @Override
  public NcclCollective labelled(int layer, boolean toExperts) {
    return this;
  }

  @Override
  public String endpoint() {
    return "nccl rank " + rank + " of " + ranks + " on cuda:" + device;
  }

  @Override
  public void close() {
    ncclCommDestroy(comm);
    if (scratchBytes > 0) {
      cudaFree(scratch);
    }
  }

  private void allReduce(Pointer dev, long count, int type, long bytes) {
    nccl(ncclAllReduce(dev, dev, count, type, ncclSum, comm, stream), "ncclAllReduce");
    cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    bytesSent += ranks > 1 ? bytes : 0;
  }

  /** An all-to-all of {@code width} ints per peer (the receiver knows the size). */
  private int[][] exchangeFixed(int[][] send, int width) {
    long bytes = (long) ranks * width * Integer.BYTES;
    try (IntPointer host = new IntPointer((long) 2 * ranks * width)) {
      for (int p = 0; p < ranks; p++) {
        host.position((long) p * width).put(send[p], 0, width);
      }
      host.position(0);
      Pointer dev = scratch(2 * bytes);
      copy(dev, host, bytes, cudaMemcpyHostToDevice);
      nccl(ncclGroupStart(), "ncclGroupStart");
      for (int p = 0; p < ranks; p++) {
        nccl(ncclSend(at(dev, (long) p * width * Integer.BYTES), width, ncclInt32, p, comm, stream), "ncclSend");
        nccl(ncclRecv(at(dev, bytes + (long) p * width * Integer.BYTES), width, ncclInt32, p, comm, stream),
            "ncclRecv");
      }
      nccl(ncclGroupEnd(), "ncclGroupEnd");
      cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      copy(host, at(dev, bytes), bytes, cudaMemcpyDeviceToHost);
      int[][] out = new int[ranks][width];
      for (int p = 0; p < ranks; p++) {
        host.position((long) p * width).get(out[p], 0, width);
      }
      return out;
    }
  }

  private Pointer scratch(long bytes) {
    if (bytes > scratchBytes) {
      if (scratchBytes > 0) {
        cudaFree(scratch);
      }
      scratch = new Pointer();
      long size = Math.max(bytes, 2 * scratchBytes);
      cuda(cudaMalloc(scratch, size), "cudaMalloc(" + size + ")");
      scratchBytes = size;
    }
    return scratch;
  }

  /** A CPU backend tensor's values in a direct host buffer, to be staged through the device for NCCL. */
  private static ByteBuffer host(Tensor t) {
    ByteBuffer b = ByteBuffer.allocateDirect((int) t.length() * t.dtype().width()).order(ByteOrder.LITTLE_ENDIAN);
    t.backend().toHost(t, b);
    return b.flip();
  }

  /** A pointer {@code offset} bytes into {@code base} (JavaCPP positions count elements of the pointer's type). */
  private static Pointer at(Pointer base, long offset) {
    return new Pointer(base).position(base.position() + offset);
  }

  private static void copy(Pointer dst, Pointer src, long bytes, int kind) {
    if (bytes > 0) {
      cuda(cudaMemcpy(dst, src, bytes, kind), "cudaMemcpy");
    }
  }

  private static void cuda(int status, String what) {
    if (status != 0) {
      throw new IllegalStateException(what + " failed: " + cudaGetErrorString(status).getString());
    }
  }

  private static void nccl(int status, String what) {
    if (status != 0) {
      throw new IllegalStateException(what + " failed: " + ncclGetErrorString(status).getString());
    }
  }
}

package io.moespark.job;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.util.regex.Pattern;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.util.Progressable;

/**
 * The local file system under the scheme {@code halt:}, which kills its JVM at a chosen point of a write:
 * {@code Runtime.halt(137)} (no shutdown hooks, no flushes: what SIGKILL leaves) when a directory whose
 * path matches the system property {@code moe.halt.path} is made, or when {@code moe.halt.bytes} bytes have
 * been written to a matching file (0: as it is created). Lets {@link DriverKillTest} kill a real driver
 * at an exact point of a checkpoint or an export, which a kill from outside could only hit by chance.
 * With {@code moe.pause.path}, making a matching directory instead waits until the driver has been asked
 * to stop (a signal): a run cannot pass that point before the test's signal, however slow the test's
 * own thread is. Installed through {@code spark.hadoop.fs.halt.impl}, so the job runs unchanged.
 */
public final class HaltingFileSystem extends RawLocalFileSystem {
  private static final int KILLED = 137;
  private final Pattern path = Pattern.compile(System.getProperty("moe.halt.path", "(?!)"));
  private final long bytes = Long.getLong("moe.halt.bytes", 0);
  private final Pattern pause = Pattern.compile(System.getProperty("moe.pause.path", "(?!)"));

  @Override
  public URI getUri() {
    return URI.create("halt:///");
  }

  @Override
  public boolean mkdirs(Path f) throws IOException {
    haltIfMatches(f);
    return super.mkdirs(f);
  }

  @Override
  public boolean mkdirs(Path f, FsPermission permission) throws IOException {
    haltIfMatches(f);
    return super.mkdirs(f, permission);
  }

  private void haltIfMatches(Path f) throws IOException {
    if (matches(f)) {
      Runtime.getRuntime().halt(KILLED);
    }
    if (pause.matcher(f.toUri().getPath()).matches()) {
      long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MINUTES.toNanos(3);
      while (!TrainJob.stopRequested()) {
        if (System.nanoTime() > deadline) {
          throw new IOException("paused at " + f + " for 3 minutes and no stop was requested");
        }
        try {
          Thread.sleep(20);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted while paused at " + f, e);
        }
      }
    }
  }

  @Override
  public FSDataOutputStream create(Path f, boolean overwrite, int bufferSize, short replication, long blockSize,
      Progressable progress) throws IOException {
    return watched(f, super.create(f, overwrite, bufferSize, replication, blockSize, progress));
  }

  @Override
  public FSDataOutputStream create(Path f, FsPermission permission, boolean overwrite, int bufferSize,
      short replication, long blockSize, Progressable progress) throws IOException {
    return watched(f, super.create(f, permission, overwrite, bufferSize, replication, blockSize, progress));
  }

  private boolean matches(Path f) {
    return path.matcher(f.toUri().getPath()).matches();
  }

  private FSDataOutputStream watched(Path f, FSDataOutputStream target) throws IOException {
    if (!matches(f)) {
      return target;
    }
    if (bytes == 0) {
      haltIfMatches(f);
    }
    return new FSDataOutputStream(new FilterOutputStream(target) {
      private long written;

      @Override
      public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
      }

      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        int n = (int) Math.min(len, bytes - written);
        target.write(b, off, n);
        written += n;
        if (written >= bytes) {
          target.hflush();
          Runtime.getRuntime().halt(KILLED);
        }
      }
    }, null);
  }
}

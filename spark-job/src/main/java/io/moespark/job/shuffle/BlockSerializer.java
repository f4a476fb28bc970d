package io.moespark.job.shuffle;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import org.apache.spark.serializer.DeserializationStream;
import org.apache.spark.serializer.SerializationStream;
import org.apache.spark.serializer.Serializer;
import org.apache.spark.serializer.SerializerInstance;
import scala.reflect.ClassTag;

/**
 * The shuffle serializer of the shuffle path's records: (Integer key, byte[] block) pairs written as
 * {@code key (int) | length (int) | block bytes}, so a record costs its block plus 8 bytes and nothing
 * goes through Java serialization. Only streams of key/value pairs are supported, which is all a
 * shuffle of these records needs.
 */
public final class BlockSerializer extends Serializer implements java.io.Serializable {
  private static final long serialVersionUID = 1L;
  /** Bytes a record adds to its block. */
  public static final int FRAMING = 8;

  @Override
  public SerializerInstance newInstance() {
    return new Instance();
  }

  private static final class Instance extends SerializerInstance {
    @Override
    public <T> ByteBuffer serialize(T t, ClassTag<T> tag) {
      throw new UnsupportedOperationException("BlockSerializer writes streams of (key, block) records only");
    }

    @Override
    public <T> T deserialize(ByteBuffer bytes, ClassTag<T> tag) {
      throw new UnsupportedOperationException("BlockSerializer reads streams of (key, block) records only");
    }

    @Override
    public <T> T deserialize(ByteBuffer bytes, ClassLoader loader, ClassTag<T> tag) {
      return deserialize(bytes, tag);
    }

    @Override
    public SerializationStream serializeStream(OutputStream s) {
      DataOutputStream out = new DataOutputStream(s);
      return new SerializationStream() {
        @Override
        public <T> SerializationStream writeObject(T t, ClassTag<T> tag) {
          try {
            if (t instanceof Integer key) {
              out.writeInt(key);
            } else if (t instanceof byte[] block) {
              out.writeInt(block.length);
              out.write(block);
            } else {
              throw new IllegalArgumentException("BlockSerializer: expected Integer keys and byte[] blocks, got "
                  + (t == null ? "null" : t.getClass().getName()));
            }
            return this;
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }

        @Override
        public void flush() {
          try {
            out.flush();
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }

        @Override
        public void close() {
          try {
            out.close();
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      };
    }

    @Override
    public DeserializationStream deserializeStream(InputStream s) {
      DataInputStream in = new DataInputStream(s);
      return new DeserializationStream() {
        @Override
        @SuppressWarnings("unchecked")
        public <T> T readKey(ClassTag<T> tag) {
          try {
            return (T) Integer.valueOf(in.readInt()); // EOFException ends the stream, as Spark expects
          } catch (EOFException e) {
            throw sneaky(e);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }

        @Override
        @SuppressWarnings("unchecked")
        public <T> T readValue(ClassTag<T> tag) {
          try {
            byte[] block = new byte[in.readInt()];
            in.readFully(block);
            return (T) block;
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }

        @Override
        public <T> T readObject(ClassTag<T> tag) {
          throw new UnsupportedOperationException("BlockSerializer reads (key, block) pairs only");
        }

        @Override
        public void close() {
          try {
            in.close();
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      };
    }
  }

  /** Rethrows a checked exception unchecked: Spark's reader ends a stream on a (Scala-unchecked) EOFException. */
  @SuppressWarnings("unchecked")
  private static <E extends Throwable> RuntimeException sneaky(Throwable e) throws E {
    throw (E) e;
  }
}

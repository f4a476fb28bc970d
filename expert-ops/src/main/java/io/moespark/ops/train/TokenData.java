package io.moespark.ops.train;

import io.moespark.ops.config.ConfigException;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;

/**
 * Token streams from files: UTF-8 text as byte tokens (0..255; {@code .gz} is decompressed), or a
 * little-endian int32 token file. Format "auto" picks tokens for {@code .bin}/{@code .tokens} and text
 * otherwise.
 */
public final class TokenData {
  private TokenData() {}

  /** A train/validation split of one stream: the last valFraction of the tokens is validation. */
  public record Split(int[] train, int[] val) {}

  /** @param what how the user named the file (a config key or option), for error messages */
  public static int[] load(Path file, String format, String what) {
    String f = format.equals("auto") ? (file.toString().endsWith(".bin") || file.toString().endsWith(".tokens")
        ? "tokens" : "text") : format;
    try {
      byte[] bytes = readAll(file);
      return f.equals("tokens") ? int32(bytes, file) : textBytes(bytes);
    } catch (NoSuchFileException e) {
      throw new ConfigException(what + ": " + file + " does not exist");
    } catch (IOException e) {
      throw new ConfigException(what + ": cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  public static Split split(int[] tokens, double valFraction) {
    int val = (int) Math.floor(tokens.length * valFraction);
    return new Split(Arrays.copyOfRange(tokens, 0, tokens.length - val),
        Arrays.copyOfRange(tokens, tokens.length - val, tokens.length));
  }

  /** Throws naming the file when a token is outside [0, vocab). */
  public static void checkVocab(int[] tokens, int vocab, String source) {
    for (int i = 0; i < tokens.length; i++) {
      if (tokens[i] < 0 || tokens[i] >= vocab) {
        throw new ConfigException(source + ": token " + tokens[i] + " at position " + i
            + " is outside model.vocab_size = " + vocab);
      }
    }
  }

  /** Entropy in nats of the token frequency distribution (what a model without context can reach). */
  public static double unigramEntropy(int[] tokens) {
    int max = 0;
    for (int t : tokens) {
      max = Math.max(max, t);
    }
    long[] counts = new long[max + 1];
    for (int t : tokens) {
      counts[t]++;
    }
    double h = 0;
    for (long c : counts) {
      if (c > 0) {
        double p = (double) c / tokens.length;
        h -= p * Math.log(p);
      }
    }
    return h;
  }

  private static byte[] readAll(Path file) throws IOException {
    try (InputStream raw = new BufferedInputStream(Files.newInputStream(file))) {
      InputStream in = file.toString().endsWith(".gz") ? new GZIPInputStream(raw) : raw;
      return in.readAllBytes();
    }
  }

  private static int[] textBytes(byte[] bytes) {
    int[] t = new int[bytes.length];
    for (int i = 0; i < bytes.length; i++) {
      t[i] = bytes[i] & 0xff;
    }
    return t;
  }

  private static int[] int32(byte[] bytes, Path file) {
    if (bytes.length % 4 != 0) {
      throw new ConfigException(file + ": a token file holds little-endian int32 values, but its size "
          + bytes.length + " is not a multiple of 4");
    }
    int[] t = new int[bytes.length / 4];
    ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(t);
    return t;
  }
}

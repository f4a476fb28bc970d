package io.moespark.prep.bpe;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * GPT-2 style byte-level pre-tokenization, as Hugging Face's {@code ByteLevel} pre-tokenizer does it: split
 * text with the GPT-2 regex (Unicode classes), then spell each piece's UTF-8 bytes with the 256 printable
 * characters of {@code bytes_to_unicode}. Every string maps to pieces and back exactly.
 */
public final class ByteLevel {
  /** The GPT-2 split pattern; \s, \p{L}, \p{N} are Unicode classes as in the Rust original. */
  public static final Pattern SPLIT = Pattern.compile(
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      Pattern.UNICODE_CHARACTER_CLASS);

  private static final char[] BYTE_TO_CHAR = new char[256];
  private static final int[] CHAR_TO_BYTE = new int[512];

  static {
    List<Integer> printable = new ArrayList<>();
    for (int b = '!'; b <= '~'; b++) {
      printable.add(b);
    }
    for (int b = 0xA1; b <= 0xAC; b++) {
      printable.add(b);
    }
    for (int b = 0xAE; b <= 0xFF; b++) {
      printable.add(b);
    }
    java.util.Arrays.fill(CHAR_TO_BYTE, -1);
    int extra = 0;
    for (int b = 0; b < 256; b++) {
      char c = printable.contains(b) ? (char) b : (char) (256 + extra++);
      BYTE_TO_CHAR[b] = c;
      CHAR_TO_BYTE[c] = b;
    }
  }

  private ByteLevel() {}

  /** The byte-level spelling of each regex piece of {@code text}. */
  public static List<String> pretokenize(String text) {
    List<String> out = new ArrayList<>();
    Matcher m = SPLIT.matcher(text);
    while (m.find()) {
      out.add(spell(m.group()));
    }
    return out;
  }

  /** UTF-8 bytes of s, one printable char per byte. */
  public static String spell(String s) {
    byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
    char[] c = new char[bytes.length];
    for (int i = 0; i < bytes.length; i++) {
      c[i] = BYTE_TO_CHAR[bytes[i] & 0xff];
    }
    return new String(c);
  }

  public static char charOf(int b) {
    return BYTE_TO_CHAR[b];
  }

  /** Appends the bytes spelled by a byte-level string. */
  public static void unspell(String s, java.io.ByteArrayOutputStream out) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c >= CHAR_TO_BYTE.length || CHAR_TO_BYTE[c] < 0) {
        throw new IllegalArgumentException("not a byte-level character: U+" + Integer.toHexString(c));
      }
      out.write(CHAR_TO_BYTE[c]);
    }
  }
}

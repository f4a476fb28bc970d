package io.moespark.prep;

import java.util.List;

/**
 * Options of one preparation run, the typed home of every data-prep setting, with defaults in
 * {@link #defaults} and checks in {@link #validate}.
 *
 * @param format auto (by file extension), text, json, csv or parquet
 * @param textField the column holding the text in JSON, CSV and Parquet inputs
 * @param minChars documents shorter than this (after normalising) are dropped
 * @param maxChars documents longer than this are dropped
 * @param minLetterFraction documents with a smaller fraction of letters are dropped
 * @param maxRepeatedLineRatio documents where a larger fraction of non-empty lines repeat an earlier line
 *     of the same document are dropped
 * @param nearDupJaccard two documents whose character 5-gram sets have at least this Jaccard similarity are
 *     near-duplicates; the one with the larger content hash is dropped
 * @param shards Parquet files (and packing partitions) per split
 * @param tokenizer an existing tokenizer (a tokenizer.json, or a model directory holding one) to encode with
 *     instead of training a BPE; null: train one of {@code vocabSize}
 */
public record PrepOptions(List<String> inputs, String output, int vocabSize, int seqLen, double valFraction,
    String format, String textField, int minChars, int maxChars, double minLetterFraction,
    double maxRepeatedLineRatio, double nearDupJaccard, int shards, boolean overwrite, String master, String tokenizer) {

  public static PrepOptions defaults(List<String> inputs, String output) {
    return new PrepOptions(inputs, output, 4096, 256, 0.05, "auto", "text", 64, 1_000_000, 0.5, 0.3, 0.8, 4, false,
        "local[*]", null);
  }

  public PrepOptions validate() {
    check(!inputs.isEmpty(), "--input", "at least one input path");
    check(output != null && !output.isBlank(), "--output", "an output directory");
    check(vocabSize >= 258 && vocabSize <= 1 << 20, "--vocab-size", "in [258, 1048576] (256 bytes + EOD + merges)");
    check(seqLen >= 1, "--seq-len", ">= 1");
    check(valFraction >= 0 && valFraction < 1, "--val-fraction", "in [0, 1)");
    check(List.of("auto", "text", "json", "csv", "parquet").contains(format), "--format",
        "one of auto, text, json, csv, parquet");
    check(minChars >= 1 && maxChars >= minChars, "--min-chars/--max-chars", "1 <= min <= max");
    check(minLetterFraction >= 0 && minLetterFraction <= 1, "--min-letter-fraction", "in [0, 1]");
    check(maxRepeatedLineRatio >= 0 && maxRepeatedLineRatio <= 1, "--max-repeated-line-ratio", "in [0, 1]");
    check(nearDupJaccard > 0 && nearDupJaccard <= 1, "--near-dup-jaccard", "in (0, 1]");
    check(shards >= 1, "--shards", ">= 1");
    check(tokenizer == null || !tokenizer.isBlank(), "--tokenizer", "a tokenizer.json or a model directory");
    return this;
  }

  private static void check(boolean ok, String option, String expected) {
    if (!ok) {
      throw new PrepException(option + ": expected " + expected);
    }
  }
}

package io.moespark.ops.backend.cpu;

/** Stable ordering of int indices by a double key, without boxing. */
final class IndexSort {
  private IndexSort() {}

  /** Returns indices 0..n-1 ordered by key descending; equal keys keep ascending index order. */
  static int[] descending(double[] key, int n) {
    int[] idx = new int[n], tmp = new int[n];
    for (int i = 0; i < n; i++) {
      idx[i] = i;
    }
    for (int width = 1; width < n; width *= 2) {
      for (int lo = 0; lo < n; lo += 2 * width) {
        int mid = Math.min(lo + width, n), hi = Math.min(lo + 2 * width, n), a = lo, b = mid, o = lo;
        while (a < mid && b < hi) {
          tmp[o++] = key[idx[b]] > key[idx[a]] ? idx[b++] : idx[a++];
        }
        while (a < mid) {
          tmp[o++] = idx[a++];
        }
        while (b < hi) {
          tmp[o++] = idx[b++];
        }
      }
      int[] s = idx;
      idx = tmp;
      tmp = s;
    }
    return idx;
  }
}

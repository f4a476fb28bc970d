#!/usr/bin/env bash
# Before/after in one run: builds expert-ops at git revision REV (default HEAD~1) in a temporary worktree,
# then runs `moe-bench train --config conf/bench.yaml --steps 5` and `moe-bench layer ...` from that build
# and from this checkout, alternating, ROUNDS times (default 2). Prints one JSON line per run, labelled.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD~1}
rounds=${2:-2}
source "$root/tools/two-builds.sh"
cd "$root"
for round in $(seq 1 "$rounds"); do
  for which in before after; do
    cp=$([[ $which == before ]] && echo "$before" || echo "$after")
    # shellcheck disable=SC2086
    for args in "train --config conf/bench.yaml --steps 5" \
        "layer --experts 8 --topk 2 --d-model 512 --d-expert 1024 --tokens 8192 --iters 7"; do
      line=$(java -Xmx8g $opens -Dlog4j2.configurationFile=conf/log4j2.properties -cp "$cp" \
          io.moespark.ops.cli.BenchMain $args | tail -1)
      echo "{\"build\": \"$which\", \"round\": $round, \"result\": $line}"
    done
  done
done

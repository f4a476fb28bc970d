#!/usr/bin/env bash
# The README's runner benchmark, all in one run (this machine is noisy: compare numbers of the same run only).
# conf/bench.yaml: the single-process trainer; the direct path with R=1 in-process (local[2]) and R=2 on two
# executor JVMs of one core each (local-cluster[2,1,6144]), with one Spark job per step and with 4 steps per job;
# the shuffle path (one job per step) at R=1 and R=2 the same way. Then conf/tiny.yaml (steps of ~0.1 s) on
# local-cluster R=2, where the per-step overhead shows.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-4}
cluster=(--master 'local-cluster[2,1,6144]')
bin/moe-bench train --config conf/bench.yaml --steps "$steps"
for k in 1 4; do
  bin/moe-bench-spark --config conf/bench.yaml --ranks 1 --steps "$steps" --set parallel.steps_per_stage=$k
done
bin/moe-bench-spark --config conf/bench.yaml --ranks 1 --steps "$steps" --set parallel.dispatch=shuffle
for k in 1 4; do
  MOE_JAVA_OPTS=-Xmx2g bin/moe-bench-spark --config conf/bench.yaml --ranks 2 --steps "$steps" "${cluster[@]}" \
    --set parallel.steps_per_stage=$k
done
MOE_JAVA_OPTS=-Xmx2g bin/moe-bench-spark --config conf/bench.yaml --ranks 2 --steps "$steps" "${cluster[@]}" \
  --set parallel.dispatch=shuffle
tiny=(--config conf/tiny.yaml --ranks 2 --steps 40 --master 'local-cluster[2,1,2048]'
  --set data.path=data/corpus/moby-dick.txt.gz)
for k in 1 10; do
  MOE_JAVA_OPTS=-Xmx2g bin/moe-bench-spark "${tiny[@]}" --set parallel.steps_per_stage=$k
done
MOE_JAVA_OPTS=-Xmx2g bin/moe-bench-spark "${tiny[@]}" --set parallel.dispatch=shuffle

#!/usr/bin/env bash
# The README's runner benchmark, all in one run (this machine is noisy: compare numbers of the same run only).
# conf/bench.yaml: single-process trainer; direct runner with R=1 in-process (local[2]) and R=2 on two executor
# JVMs of one core each (local-cluster[2,1,6144]), each with one Spark job per step and with 4 steps per job.
# Then conf/tiny.yaml (steps of ~0.1 s) on local-cluster R=2, where the per-step overhead shows.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-4}
bin/moe-bench train --config conf/bench.yaml --steps "$steps"
for k in 1 4; do
  bin/moe-bench-direct --config conf/bench.yaml --ranks 1 --steps "$steps" --set parallel.steps_per_stage=$k
done
for k in 1 4; do
  MOE_JAVA_OPTS=-Xmx2g bin/moe-bench-direct --config conf/bench.yaml --ranks 2 --steps "$steps" \
    --master 'local-cluster[2,1,6144]' --set parallel.steps_per_stage=$k
done
for k in 1 10; do
  MOE_JAVA_OPTS=-Xmx2g bin/moe-bench-direct --config conf/tiny.yaml --ranks 2 --steps 40 \
    --master 'local-cluster[2,1,2048]' --set data.path=data/corpus/moby-dick.txt.gz --set parallel.steps_per_stage=$k
done

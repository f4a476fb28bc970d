#!/usr/bin/env bash
# Bit-identity of a change that must not move the numbers: builds expert-ops at git revision REV (default
# HEAD~1) in a temporary worktree and at this checkout, runs `moe-bench fingerprint` (five single-process
# steps: loss terms and gradient norm as bits, the validation loss, the checkpoint shard's SHA-256) for
# each router/activation variant below from both builds, and diffs them. Exit 0 when every variant is
# identical. Bits are compared on one machine: OpenBLAS's kernels differ between CPUs (README).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD~1}
source "$root/tools/two-builds.sh"
small="--set model.d_model=64 --set model.n_layers=2 --set model.d_ff=128 --set model.seq_len=64 \
  --set model.vocab_size=512 --set moe.d_expert=96 --set train.batch_size=8 --set train.eval_batches=2"
variants=(
  "topk-swiglu-shared-capacity-bias|--set moe.shared_experts=1 --set moe.capacity_factor=1.0 --set moe.bias_update_rate=0.001"
  "topk-gate-drop-gelu-raw|--set moe.activation=gelu --set moe.capacity_factor=0.75 --set moe.drop_policy=gate --set moe.norm_topk=false"
  "expert-choice-swiglu|--set moe.router=expert_choice --set moe.capacity_factor=1.0"
  "hash-gelu|--set moe.router=hash --set moe.top_k=1 --set moe.activation=gelu"
  "topk-dropless|"
)
cd "$root"
status=0
for v in "${variants[@]}"; do
  name=${v%%|*}
  extra=${v#*|}
  for which in before after; do
    cp=$([[ $which == before ]] && echo "$before" || echo "$after")
    # shellcheck disable=SC2086
    java -Xmx4g $opens -Dlog4j2.configurationFile=conf/log4j2.properties -cp "$cp" \
        io.moespark.ops.cli.BenchMain fingerprint --config conf/bench.yaml --steps 5 $small $extra \
        >"$work/$name.$which"
  done
  if diff -u "$work/$name.before" "$work/$name.after" >"$work/$name.diff"; then
    echo "$name: identical ($(wc -l <"$work/$name.after") lines)"
  else
    echo "$name: DIFFERENT"; cat "$work/$name.diff"; status=1
  fi
done
exit $status

#!/usr/bin/env bash
# Bad input, as a user meets it: each case must exit 2 with exactly one line on stderr, nothing on stdout,
# and nothing written. Prints a table (exit code, seconds to the line, lines printed, the line) for the
# README's "Faults" section; exits 1 naming the first case that breaks the rule.
# usage: tools/failure-lines.sh PREPARED_DIR MODEL_DIR   (a prepared corpus and an exported model to damage)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ $# == 2 ]] || { echo "usage: tools/failure-lines.sh PREPARED_DIR MODEL_DIR" >&2; exit 2; }
prepared=$1 model=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Damaged copies: one byte of one shard, one byte of the model's weights.
cp -r "$prepared" "$work/prepared"
shard=$(find "$work/prepared/train" -name 'part-*' | sort | head -1)
printf '\xff' | dd of="$shard" bs=1 seek=100 conv=notrunc status=none
cp -r "$model" "$work/model"
printf '\xff' | dd of="$work/model/model.safetensors" bs=1 seek=4000 conv=notrunc status=none

failed=0
printf '| case | exit | seconds | stdout lines | stderr lines | the line |\n|---|---|---|---|---|---|\n'
check() {
  local name=$1; shift
  local start end rc
  start=$(date +%s.%N)
  "$@" > "$work/out" 2> "$work/err"
  rc=$?
  end=$(date +%s.%N)
  local o e
  o=$(grep -c '' "$work/out")
  e=$(grep -c '' "$work/err")
  printf '| %s | %d | %.1f | %d | %d | `%s` |\n' "$name" "$rc" "$(echo "$end - $start" | bc)" "$o" "$e" "$(head -c 300 "$work/err" | head -1)"
  if [[ $rc != 2 || $o != 0 || $e != 1 ]]; then
    echo "failure-lines: '$name' gave exit $rc, $o stdout and $e stderr lines (expected 2, 0, 1): $(cat "$work/err")" >&2
    failed=1
  fi
  [[ ! -e "$work/run" ]] || { echo "failure-lines: '$name' wrote $work/run" >&2; failed=1; }
}
train() { bin/moe-train --config conf/tiny.yaml --run-dir "$work/run" "$@"; }
check "a bad --set value" train --set train.steps=abc --set data.path="$prepared"
check "an unknown config key" train --set train.stepz=3 --set data.path="$prepared"
check "a missing config file" bin/moe-train --config "$work/none.yaml" --run-dir "$work/run"
check "a missing data path" train --set data.path="$work/none"
check "an unknown option" train --bogus
check "a corrupt prepared shard" train --set data.path="$work/prepared"
check "a corrupt exported model (moe-eval)" bin/moe-eval --model "$work/model" --data "$prepared"
check "a missing input (moe-prep)" bin/moe-prep --input "$work/none.txt" --output "$work/run" --vocab-size 300 --seq-len 32
check "a missing tokenizer (moe-prep --tokenizer)" bin/moe-prep --input data/corpus/moby-dick.txt.gz --output "$work/run" \
  --tokenizer "$work/none"
check "sample prompts without a tokenizer" train --set data.path=data/corpus/moby-dick.txt.gz --set train.eval_every=10 \
  --set 'train.sample_prompts=["Call me"]'
check "a corrupt exported model (moe-generate)" bin/moe-generate --model "$work/model" --prompt "Call me"
# A device or transport this build cannot drive (a build without the cuda profile, as CI's).
if ! unzip -l expert-ops/target/expert-ops-0.1.0-SNAPSHOT.jar | grep -q CudaDeviceLayer; then
  check "parallel.device: cuda in a CPU build" train --set parallel.device=cuda --set data.path="$prepared"
  check "parallel.transport: nccl in a CPU build" train --set parallel.transport=nccl --set data.path="$prepared"
fi
exit $failed

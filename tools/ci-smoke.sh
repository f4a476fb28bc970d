#!/usr/bin/env bash
# After `mvn verify`: the user-facing commands, literally. (0) --help of every command. (1) Prepare the bundled corpus, train conf/tiny.yaml
# on two executor JVMs (local-cluster), check the loss fell, score the model with moe-eval, continue a prompt with
# moe-generate. (1b) Bad input is one
# line and exit 2 (tools/failure-lines.sh). (2) The job jar under a plain SparkSubmit whose classpath is Spark's
# jars only (the project's jars, ND4J and JavaCPP removed), so everything else must come from the job jar; it
# samples at each validation (train.sample_prompts: the tokenizers library from the job jar).
# (3) notebooks/, executed on those runs (tools/run-notebooks.sh).
# (4) tools/standalone-fault-check.sh: a standalone cluster whose executor is killed mid-run recovers by itself
# to the uninterrupted run's model bytes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# (0) Every command answers --help and -h with its usage and exit 0, before any work.
for c in moe-demo moe-train moe-eval moe-export moe-prep moe-prep-gpu-explain moe-bench moe-bench-spark moe-history \
    moe-generate moe-bench-tokenizer; do
  for h in --help -h; do
    out=$(bin/$c $h) || { echo "bin/$c $h exited with $?" >&2; exit 1; }
    [[ $out == "usage: "* ]] || { echo "bin/$c $h printed no usage line: $out" >&2; exit 1; }
  done
done
echo "--help: every command prints its usage"

bin/moe-prep --input data/corpus/moby-dick.txt.gz --output "$work/prepared" --vocab-size 1024 --seq-len 64
bin/moe-train --config conf/tiny.yaml --master 'local-cluster[2,1,2048]' --run-dir "$work/run" \
  --set data.path="$work/prepared" | tee "$work/train.log"
loss() { sed -n "$1"p "$work/run/metrics.jsonl" | sed 's/.*"loss":\([-0-9.eE]*\).*/\1/'; }
first=$(loss 1)
last=$(loss '$')
echo "training loss: first step $first, last step $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1.0) }' || { echo "the loss did not fall by 1 nat" >&2; exit 1; }
eval_json=$(bin/moe-eval --model "$work/run/model" --data "$work/prepared" --split val)
echo "moe-eval: $eval_json"
val=$(echo "$eval_json" | sed 's/.*"loss": \([-0-9.eE]*\).*/\1/')
awk -v v="$val" -v a="$first" 'BEGIN { exit !(v < a - 1.0) }' || { echo "validation loss $val not below the start" >&2; exit 1; }
sample=$(bin/moe-generate --model "$work/run/model" --prompt "Call me Ishmael." --max-new-tokens 16 --show-ids)
echo "moe-generate: $sample"
[[ $sample == *"generated ids: "[0-9]* ]] || { echo "moe-generate generated nothing" >&2; exit 1; }

# (1b) Bad input as a user meets it: one line on stderr, nothing on stdout, exit 2, nothing written.
tools/failure-lines.sh "$work/prepared" "$work/run/model"

source bin/spark-opens.sh
mkdir "$work/spark-jars"
for j in spark-job/target/spark-home/jars/*.jar; do
  case $(basename "$j") in
    expert-ops-*|data-prep-*|spark-job-*|nd4j-*|javacpp-*|openblas-*|junit-*|jackson-dataformat-yaml-*) ;;
    *) ln -s "$root/$j" "$work/spark-jars/" ;;
  esac
done
# shellcheck disable=SC2086
java -Xmx4g $opens -Dlog4j2.configurationFile="$root/conf/log4j2.properties" -cp "$work/spark-jars/*" \
  org.apache.spark.deploy.SparkSubmit --master 'local[2]' --class io.moespark.job.cli.TrainMain \
  spark-job/target/moe-spark-job.jar --config conf/tiny.yaml --run-dir "$work/submitted" \
  --set data.path="$work/prepared" --set train.steps=20 --set train.eval_every=10 \
  --set 'train.sample_prompts=["Call me Ishmael."]' --set train.sample_tokens=8 | tee "$work/submitted.log"
test -f "$work/submitted/model/model.safetensors" && test -f "$work/submitted/model/tokenizer.json"
grep -q "step 20/20 · sample: Call me Ishmael. → " "$work/submitted.log" || { echo "no samples under spark-submit" >&2; exit 1; }

# (3) The notebooks, executed against these runs and the prepared data (they fail on any error).
PYDEVD_DISABLE_FILE_VALIDATION=1 tools/run-notebooks.sh "$work/run" "$work/prepared" "$work/submitted"

# (4) A standalone cluster (master + two workers, Spark's jars only), spark-submit, an executor killed mid-run.
tools/standalone-fault-check.sh "$work/spark-jars" "$work/prepared"
echo "ci-smoke: ok"

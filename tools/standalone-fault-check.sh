#!/usr/bin/env bash
# A real standalone Spark cluster on loopback (a master and two workers, Spark's own classes only), the job
# jar submitted with spark-submit, one worker's executor killed (SIGKILL) mid-run: the run must recover by
# itself and end with the model bytes of an uninterrupted run on the same cluster. Authentication as the
# README says for a standalone cluster: the secret in a properties file (mode 600) shared by the master, the
# workers and spark-submit, never on a command line. Prints the times to detect and to recover.
# Usage: tools/standalone-fault-check.sh SPARK_JARS_DIR PREPARED_DIR   (called by tools/ci-smoke.sh;
# KEEP_WORK=1 keeps the cluster's logs and run directories for a look afterwards)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jars=$1
prepared=$2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "moe.standalone.check=$work.*CoarseGrainedExecutorBackend" 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
source "$root/bin/spark-opens.sh"

# A Spark home whose jars are Spark's only: workers start executors from it; the job comes in the job jar.
mkdir -p "$work/home"
ln -s "$jars" "$work/home/jars"
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
master_port=$(port)
master="spark://127.0.0.1:$master_port"
props="$work/cluster.properties"
(umask 077; cat > "$props" <<EOF
spark.authenticate true
spark.authenticate.secret $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
spark.network.crypto.enabled true
spark.executor.memory 1536m
spark.executor.cores 1
spark.cores.max 2
spark.master.rest.enabled false
spark.executor.extraJavaOptions $(echo $opens) -Dmoe.standalone.check=$work
EOF
)
# Spark's launcher asks for the Scala version of a Spark home that is not a release layout.
export SPARK_SCALA_VERSION=2.13
java_cmd() { java -Xmx512m $opens -Dlog4j2.configurationFile="$root/conf/log4j2.properties" -cp "$jars/*" "$@"; }
master_ui=$(port)
SPARK_HOME="$work/home" java_cmd org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$master_port" \
  --webui-port "$master_ui" --properties-file "$props" > "$work/master.log" 2>&1 &
pids+=($!)
for w in 1 2; do
  mkdir -p "$work/worker$w"
  SPARK_HOME="$work/home" java_cmd org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores 1 --memory 2g \
    --webui-port "$(port)" --work-dir "$work/worker$w" --properties-file "$props" "$master" \
    > "$work/worker$w.log" 2>&1 &
  pids+=($!)
done
alive_workers() { # from the master's UI (JSON), 0 while it is not up
  python3 -c 'import json, sys, urllib.request
try: print(json.load(urllib.request.urlopen(sys.argv[1], timeout=2))["aliveworkers"])
except Exception: print(0)' "http://127.0.0.1:$master_ui/json/"
}
for _ in $(seq 120); do
  [ "$(alive_workers)" -ge 2 ] && break
  sleep 0.5
done
[ "$(alive_workers)" -ge 2 ] || { cat "$work"/*.log >&2; echo "the workers did not register with the master" >&2; exit 1; }

submit() { # RUN_DIR: the job jar on the cluster, conf/tiny.yaml shortened
  java -Xmx2g $opens -Dlog4j2.configurationFile="$root/conf/log4j2.properties" -cp "$jars/*" \
    org.apache.spark.deploy.SparkSubmit --master "$master" --properties-file "$props" \
    --class io.moespark.job.cli.TrainMain "$root/spark-job/target/moe-spark-job.jar" \
    --config "$root/conf/tiny.yaml" --run-dir "$1" --set data.path="$prepared" --set train.steps=60 \
    --set train.eval_every=0 --set checkpoint.every=20 --set parallel.steps_per_stage=2
}
submit "$work/straight" > "$work/straight.log" 2>&1 || { cat "$work/straight.log" >&2; exit 1; }

submit "$work/killed" > "$work/killed.log" 2>&1 &
run=$!
lines() { if [ -f "$work/killed/metrics.jsonl" ]; then grep -c '}$' "$work/killed/metrics.jsonl" || true; else echo 0; fi; }
until [ "$(lines)" -ge 25 ]; do
  kill -0 "$run" 2>/dev/null || { cat "$work/killed.log" >&2; echo "the run ended before step 25" >&2; exit 1; }
  sleep 0.05
done
victim=$(pgrep -f "moe.standalone.check=$work.*CoarseGrainedExecutorBackend" | head -1 || true)
[ -n "$victim" ] || { echo "no executor process of the cluster found" >&2; exit 1; }
killed_at=$(date +%s.%N)
kill -9 "$victim"
echo "killed executor process $victim after step $(lines)"
detected_at=""
recovered_at=""
while kill -0 "$run" 2>/dev/null; do
  if [ -z "$detected_at" ] && grep -q 'run failed' "$work/killed.log"; then detected_at=$(date +%s.%N); fi
  if [ -n "$detected_at" ] && [ -z "$recovered_at" ] && grep -q 'restart 1 of' "$work/killed.log" \
     && sed -n '/restart 1 of/,$p' "$work/killed.log" | grep -q 'rank(s) on executors'; then
    recovered_at=$(date +%s.%N)
  fi
  sleep 0.05
done
wait "$run" || { cat "$work/killed.log" >&2; echo "the run with a killed executor failed" >&2; exit 1; }
grep -E 'run failed|restart 1 of|rank\(s\) on executors' "$work/killed.log" || true
grep -q 'run failed at step .* lost executor' "$work/killed.log" || { echo "the failure line names no lost executor" >&2; exit 1; }
[ -n "$detected_at" ] && [ -n "$recovered_at" ] || { cat "$work/killed.log" >&2; echo "no recovery seen" >&2; exit 1; }
a=$(sha256sum < "$work/straight/model/model.safetensors")
b=$(sha256sum < "$work/killed/model/model.safetensors")
if [ "$a" != "$b" ]; then
  # Where the runs part: the first step whose loss, gradient norm or expert loads differ.
  python3 - "$work/straight/metrics.jsonl" "$work/killed/metrics.jsonl" >&2 <<'EOF'
import json, sys
runs = [[json.loads(line) for line in open(path)] for path in sys.argv[1:]]
keys = ("loss", "grad_norm", "expert_tokens")
for a, b in zip(*runs):
    if any(a[k] != b[k] for k in keys):
        print(f"first step that differs: {a['step']}; uninterrupted loss {a['loss']!r}, grad norm "
              f"{a['grad_norm']!r}; recovered loss {b['loss']!r}, grad norm {b['grad_norm']!r}")
        break
else:
    print("every step's loss, gradient norm and loads are equal: the last update or the export differs")
EOF
  echo "model bytes differ: uninterrupted $a, recovered $b" >&2
  exit 1
fi
awk -v k="$killed_at" -v d="$detected_at" -v r="$recovered_at" 'BEGIN {
  printf "standalone cluster: executor killed, failure detected after %.1f s, ranks reopened %.1f s later; ", d - k, r - d }'
echo "model sha256 equals the uninterrupted run's (${a%% *})"

#!/usr/bin/env bash
# Builds the job with the cuda profile and assembles spark-job/target/nccl-check/: a jlink'd Java runtime and the
# few jars NcclCheck needs (JavaCPP, the CUDA 13 presets, expert-ops, this module's classes), about 50 MB, for a
# GPU machine without Java. Run there: nccl-check/run.sh [DEVICE] (needs libcudart.so.13 and libnccl.so.2).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mvn -B -q -Pcuda -DskipTests -pl spark-job -am package
out=spark-job/target/nccl-check
rm -rf "$out" && mkdir -p "$out/lib"
mvn -B -q -Pcuda -pl spark-job dependency:build-classpath -Dmdep.outputFile="$root/$out/cp.txt" -Dmdep.includeScope=runtime
tr ':' '\n' <"$out/cp.txt" | grep -E '/(javacpp|cuda)-[^/]*\.jar$' | xargs -I{} cp {} "$out/lib/"
cp expert-ops/target/expert-ops-*.jar "$out/lib/"
(cd spark-job/target/classes && jar cf "$root/$out/lib/spark-job-nccl.jar" io/moespark/job/net)
rm "$out/cp.txt"
jlink --add-modules java.base,jdk.unsupported,java.logging,java.management --strip-debug --no-header-files \
  --no-man-pages --compress=2 --output "$out/jre"
cat >"$out/run.sh" <<'RUN'
#!/usr/bin/env bash
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
exec "$here/jre/bin/java" -cp "$here/lib/*" io.moespark.job.net.NcclCheck "$@"
RUN
chmod +x "$out/run.sh"
du -sh "$out"

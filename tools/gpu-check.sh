#!/usr/bin/env bash
# Builds the GPU check bundle (issue 18) and checks it here, without a GPU; CI runs it (.ci/run).
#
# The bundle, target/gpu-check/ (under 64 MiB, for a GPU node with no Java): a jlink'd Java runtime, the
# project's classes built with the cuda profile (the CUDA device layer, the kernels' fatbin), the JavaCPP CUDA
# jars, Jackson for the configs, no ND4J; the parity and bench configs, the bundled corpus, the CPU backend's
# recorded outputs (moe-gpu-check record, here), the PyTorch comparison (tools/torch_moe_bench.py), run.sh.
# On a GPU node: target/gpu-check/run.sh prints (a) to (d) (README, "The GPU backend").
#
# Checked here: the cuda profile of every module compiles (CUDA device layer, NCCL collective), and the
# bundle (1) says in one line that there is no GPU and exits 2, (2) runs (a) to (d) on the CPU through the
# host device layer (the same kernel sources compiled for the CPU) with its own runtime and jars: nothing
# the GPU run needs is missing from it but the GPU.
# usage: tools/gpu-check.sh            (MAVEN_OPTS/-o as the caller's Maven likes: set MVN_FLAGS)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mvn_flags=${MVN_FLAGS:--B -q}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=target/gpu-check
rm -rf "$out" && mkdir -p "$out/lib" "$out/conf" "$out/data" "$out/recorded"

# A copy of the sources, so that the cuda profile's classes stay out of this checkout's CPU build.
tar --exclude='./.git' --exclude='./target' --exclude='*/target' --exclude='./runs' -cf - . | (mkdir "$work/src" && cd "$work/src" && tar xf -)
(cd "$work/src" && mvn $mvn_flags -Pcuda -DskipTests compile -pl expert-ops,data-prep,spark-job \
  && mvn $mvn_flags -Pcuda -pl expert-ops dependency:build-classpath -Dmdep.outputFile="$work/cp.txt" \
       -Dmdep.includeScope=runtime \
  && mvn $mvn_flags -pl expert-ops dependency:build-classpath -Dmdep.outputFile="$work/cp-cpu.txt" \
       -Dmdep.includeScope=runtime)
classes=$work/src/expert-ops/target/classes
[[ -f $classes/io/moespark/ops/backend/cuda/moe_kernels.fatbin ]] || { echo "gpu-check: no fatbin: nvcc is needed to build the bundle" >&2; exit 1; }
jar cf "$out/lib/expert-ops-cuda.jar" -C "$classes" .
# The runtime classpath without ND4J, OpenBLAS and their kin: what the CUDA backend and the trainer load.
tr ':' '\n' <"$work/cp.txt" | grep -E '/(javacpp-[0-9.]+(-linux-x86_64)?|cuda-[0-9.-]+(-linux-x86_64)?|jackson-[a-z-]+-[0-9.]+|snakeyaml-[0-9.]+|jna-[0-9.]+)\.jar$' \
  | xargs -I{} cp {} "$out/lib/"
cp "$work/src/expert-ops/target/kernels-host/libmoe_kernels_host.so" "$out/lib/"
cp conf/tiny.yaml conf/gpu-bench.yaml "$out/conf/"
cp data/corpus/moby-dick.txt.gz "$out/data/"
cp tools/torch_moe_bench.py "$out/"

# What the GPU must reproduce, from the CPU backend (ND4J: the full classpath, here only).
java -cp "$classes:$(cat "$work/cp-cpu.txt")" io.moespark.ops.cli.GpuCheckMain record --out "$out/recorded" \
  --config "$out/conf/tiny.yaml" --data "$out/data/moby-dick.txt.gz" --steps 30

jlink --add-modules java.base,jdk.unsupported,java.logging,java.management --strip-debug \
  --no-header-files --no-man-pages --compress=2 --output "$out/runtime"

cat >"$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# The GPU check: (a) every op case against the CPU backend's recorded outputs, (b) conf/tiny.yaml for 30
# steps in fp32 against the CPU trainer's losses, (c) two ranks on the one GPU against one rank, (d)
# conf/gpu-bench.yaml in tf32 and bf16 against PyTorch eager (tokens/s, ratio, MFU). Exit 0: (a) to (c)
# passed; 1: one failed; 2: no GPU. Extra arguments go to moe-gpu-check run (--device host: the dry run).
here=$(cd "$(dirname "$0")" && pwd)
host=0
for a in "$@"; do [[ $a == host ]] && host=1; done
if [[ $host == 0 ]] && ! ls /dev/nvidia[0-9]* > /dev/null 2>&1; then
  echo "gpu-check: no GPU on this machine (no /dev/nvidia0): run this bundle on a GPU node" >&2
  exit 2
fi
if [[ $host == 0 ]]; then
  # The node's CUDA 13 libraries (cuBLAS, the runtime) come with its Python packages (pip nvidia-*).
  site=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)
  for d in "$site"/nvidia/*/lib /usr/local/cuda/lib64; do
    [[ -d $d ]] && LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  done
  export LD_LIBRARY_PATH
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
fi
bench=$(mktemp)
trap 'rm -f "$bench"' EXIT
"$here/runtime/bin/java" -Xmx16g -Dorg.bytedeco.javacpp.cachedir=/tmp/moe-gpu-check-javacpp \
  -Dmoe.kernels.host="$here/lib/libmoe_kernels_host.so" -cp "$here/lib/*" io.moespark.ops.cli.GpuCheckMain run \
  --recorded "$here/recorded" --config "$here/conf/tiny.yaml" --bench "$here/conf/gpu-bench.yaml" \
  --data "$here/data/moby-dick.txt.gz" --bench-out "$bench" "$@"
rc=$?
if [[ $host == 0 && $rc != 2 && -s $bench ]]; then
  python3 "$here/torch_moe_bench.py" --config "$here/conf/gpu-bench.yaml" --java "$bench" || rc=1
fi
exit $rc
RUN
chmod +x "$out/run.sh"
echo "gpu-check: bundle $out, $(du -sm "$out" | cut -f1) MiB"
size=$(du -sm "$out" | cut -f1)
(( size < 64 )) || { echo "gpu-check: the bundle is $size MiB, more than the 64 MiB a GPU machine takes" >&2; exit 1; }

# (1) Here, without a GPU: one line on stderr, nothing on stdout, exit 2.
set +e
"$out/run.sh" > "$work/stdout" 2> "$work/stderr"
rc=$?
set -e
lines=$(grep -c '' "$work/stderr")
if [[ $rc != 2 || $lines != 1 || -s $work/stdout ]]; then
  echo "gpu-check: without a GPU the bundle gave exit $rc, $lines stderr lines: $(cat "$work/stderr" "$work/stdout")" >&2
  exit 1
fi
echo "gpu-check: without a GPU: $(cat "$work/stderr") (exit 2)"
# (2) The dry run: the bundle's runtime and jars, the CUDA backend's code on the host device layer.
"$out/run.sh" --device host --steps 3 --two-rank-steps 2 --bench "$out/conf/tiny.yaml" --bench-steps 1

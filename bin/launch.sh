#!/usr/bin/env bash
# Shared by the bin/ launchers: builds expert-ops when its jar is missing or older than its sources, then
# runs the given main class on the module's runtime classpath. Not meant to be called directly.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
main_class=$1
shift
jar="$root/expert-ops/target/expert-ops-0.1.0-SNAPSHOT.jar"
cp_file="$root/expert-ops/target/classpath.txt"
if [[ ! -f $jar || ! -f $cp_file || -n $(find "$root/expert-ops/src/main" "$root/expert-ops/pom.xml" "$root/pom.xml" -newer "$jar" -print -quit) ]]; then
  echo "building expert-ops (first run or sources changed)..." >&2
  log=$(mktemp)
  if ! (cd "$root" && mvn -B -DskipTests -pl expert-ops -am package >"$log" 2>&1); then
    cat "$log" >&2
    rm -f "$log"
    echo "build failed (full Maven output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi
exec java ${MOE_JAVA_OPTS:--Xmx8g} -cp "$jar:$(cat "$cp_file")" "$main_class" "$@"

#!/usr/bin/env bash
# Shared by the bin/ launchers: builds MODULE when its jar is missing or older than its sources, then runs
# MAIN_CLASS on the module's classpath (Spark included for the Spark modules), with the JVM options that
# Spark needs on Java 17. Not meant to be called directly.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module=$1
main_class=$2
shift 2
jar="$root/$module/target/$module-0.1.0-SNAPSHOT.jar"
cp_file="$root/$module/target/classpath.txt"
if [[ ! -f $jar || ! -f $cp_file || -n $(find "$root/$module/src/main" "$root/$module/pom.xml" "$root/pom.xml" -newer "$jar" -print -quit) ]]; then
  echo "building $module with Maven (first run or sources changed; about 1-2 minutes, once)..." >&2
  log=$(mktemp)
  if ! (cd "$root" && mvn -B -DskipTests -pl "$module" -am package >"$log" 2>&1); then
    cat "$log" >&2
    rm -f "$log"
    echo "build failed (full Maven output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi
source "$root/bin/spark-opens.sh"
# shellcheck disable=SC2086
exec java ${MOE_JAVA_OPTS:--Xmx8g} $opens -Dlog4j2.configurationFile="$root/conf/log4j2.properties" -cp "$jar:$(cat "$cp_file")${MOE_EXTRA_CP:+:$MOE_EXTRA_CP}" "$main_class" "$@"

# Sourced by the spark-job launchers: local-cluster masters need a Spark home with jars/; the spark-job build
# leaves one (the Maven classpath) in spark-job/target/spark-home. A real SPARK_HOME wins.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${SPARK_HOME:-} && -d $root/spark-job/target/spark-home/jars ]]; then
  export SPARK_HOME=$root/spark-job/target/spark-home SPARK_SCALA_VERSION=2.13
fi

#!/usr/bin/env bash
# Spark resource discovery script for GPUs (spark.executor.resource.gpu.discoveryScript): prints the GPUs this
# executor may use as {"name": "gpu", "addresses": ["0", "1", ...]}. Honours CUDA_VISIBLE_DEVICES when a cluster
# manager has already narrowed the devices; otherwise lists every GPU nvidia-smi reports.
set -euo pipefail
if [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
  ids=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES")
else
  ids=$(nvidia-smi --query-gpu=index --format=csv,noheader)
fi
printf '{"name": "gpu", "addresses": [%s]}\n' "$(sed 's/.*/"&"/' <<<"$ids" | paste -sd, -)"

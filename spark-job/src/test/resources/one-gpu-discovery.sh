#!/usr/bin/env bash
# For GpuPlacementTest: one schedulable "gpu" resource with address 3 (Spark schedules it; nothing uses it).
echo '{"name": "gpu", "addresses": ["3"]}'

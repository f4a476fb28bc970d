#!/usr/bin/env bash
# Executes every notebook in notebooks/ against a run that exists (CI: the run tools/ci-smoke.sh makes) and
# fails on any error; the executed copies go to target/notebooks/. Installs Debian's Jupyter, pandas and
# matplotlib first when they are missing.
# Usage: tools/run-notebooks.sh RUN_DIR PREPARED_DIR [OTHER_RUN_DIR...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=$(cd "$1" && pwd)
prepared=$(cd "$2" && pwd)
shift 2
runs=$run
for r in "$@"; do runs="$runs:$(cd "$r" && pwd)"; done
# Debian's Python (with its Jupyter kernel), whatever python3 comes first on PATH.
export PATH=/usr/bin:$PATH
if ! /usr/bin/python3 -c 'import nbconvert, ipykernel, pandas, matplotlib' 2>/dev/null; then
  echo "installing jupyter-nbconvert, python3-ipykernel, python3-pandas, python3-matplotlib (Debian)..." >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq jupyter-nbconvert python3-ipykernel python3-pandas \
    python3-matplotlib >/dev/null
fi
out="$root/target/notebooks"
mkdir -p "$out"
for nb in "$root"/notebooks/*.ipynb; do
  echo "running $(basename "$nb")"
  MOE_RUN=$run MOE_RUNS=$runs MOE_PREPARED=$prepared MOE_MODEL=$run/model \
    /usr/bin/jupyter-nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
    --output-dir "$out" "$nb" || { echo "notebook failed: $nb" >&2; exit 1; }
done
echo "notebooks: all ran (executed copies in $out)"

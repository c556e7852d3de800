#!/usr/bin/env bash
# Run every benchmark in bench/ (or those named as arguments, e.g. kubeapi_scaling). Each prints
# its own figures; the exit status is non-zero when one of them fails to run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="${PWD}/${COLLECTIONS_DIR:-build/collections}:${PWD}"

if (($#)); then
    benchmarks=("$@")
else
    benchmarks=()
    for file in bench/*.py; do
        name="$(basename "${file}" .py)"
        [[ "${name}" == __init__ ]] || benchmarks+=("${name}")
    done
fi

for name in "${benchmarks[@]}"; do
    echo "=== bench/${name}"
    python -m "bench.${name}"
done

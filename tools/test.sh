#!/usr/bin/env bash
# The whole test suite, stage by stage: lint, docs lint, sanity, pytest (tests/), molecule. Stops
# at the first failing stage with its exit status. Expects the environment that `make setup`
# prepares (run it through `make test`). Prints the time each stage took.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COLLECTIONS_DIR="${COLLECTIONS_DIR:-build/collections}"
timings=()

banner() {
    printf '\n==============================================================\n'
    printf '== %s\n' "$*"
    printf '==============================================================\n'
}

summary() {
    local line
    printf '\n== stage timings\n'
    for line in "${timings[@]}"; do
        printf '   %s\n' "${line}"
    done
}

stage() {
    local name="$1" start status=0
    shift
    banner "stage: ${name}"
    start=${SECONDS}
    "$@" || status=$?
    timings+=("$(printf '%-10s %4ds  %s' "${name}" "$((SECONDS - start))" \
        "$( ((status == 0)) && echo ok || echo "FAILED (exit ${status})")")")
    if ((status != 0)); then
        banner "stage ${name} FAILED (exit ${status})"
        summary
        exit "${status}"
    fi
}

run_pytest() {
    local status=0
    # One worker per core (PYTEST_WORKERS overrides); each test file stays on one worker, as its
    # servers are module-scoped. The slowest tests are listed at the end, to keep the cost in view.
    PYTHONPATH="$(pwd)/${COLLECTIONS_DIR}:$(pwd)" python -m pytest -n "${PYTEST_WORKERS:-auto}" \
        --dist loadfile --durations=15 || status=$?
    if ((status == 5)); then
        echo "pytest collected no tests: that is a failure here" >&2
    fi
    return "${status}"
}

stage lint tools/lint.sh
stage docs tools/docs_lint.sh
stage sanity tools/sanity.sh
stage pytest run_pytest
stage molecule tools/molecule.sh

summary
banner "all stages passed"

#!/usr/bin/env bash
# Lint the repository: ansible-lint (production profile, offline; see .ansible-lint), ruff
# (pyproject.toml) and shellcheck on every shell script. All linters run; the exit status is
# non-zero when any of them failed. Without shellcheck installed this fails under CI=true and only
# warns elsewhere.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=()

run() {
    local name="$1"
    shift
    echo "--- ${name}: $*"
    if ! "$@"; then
        failed+=("${name}")
    fi
}

run ansible-lint ansible-lint
run ruff ruff check .

# Shell scripts: *.sh files and files whose first line names bash or sh.
scripts=()
while IFS= read -r -d '' path; do
    if [[ "${path}" == *.sh ]] || head -n 1 -- "${path}" | grep -Eq '^#!.*(/|env )(ba)?sh\b'; then
        scripts+=("${path}")
    fi
done < <(tools/list_files.sh)

if command -v shellcheck >/dev/null 2>&1; then
    run shellcheck shellcheck --external-sources "${scripts[@]}"
elif [[ "${CI:-}" == "true" ]]; then
    echo "error: shellcheck is not installed (apt-get install shellcheck)" >&2
    failed+=(shellcheck)
else
    echo "warning: shellcheck is not installed (apt-get install shellcheck); skipped ${#scripts[@]} scripts" >&2
fi

if ((${#failed[@]})); then
    echo "lint failed: ${failed[*]}" >&2
    exit 1
fi
echo "lint passed"

#!/usr/bin/env bash
# Print the repository's files, NUL-separated: tracked and untracked ones that .gitignore does not
# exclude (and that still exist). Outside a git work tree, everything except the local state
# directories is listed instead.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' path; do
            if [[ -f "${path}" || -L "${path}" ]]; then
                printf '%s\0' "${path}"
            fi
        done
else
    find . \( -path ./.git -o -path ./.venv -o -path ./build -o -path ./tests/output \
        -o -name __pycache__ -o -name .pytest_cache -o -name .ruff_cache \) -prune \
        -o \( -type f -o -type l \) -printf '%P\0'
fi

#!/usr/bin/env bash
# Run `molecule test` for every scenario molecule/<name>/molecule.yml (or only those named as
# arguments), from the repository root, with molecule/config.yml as the shared base config when it
# exists. All scenarios run; the exit status is non-zero when any of them failed. No scenario at all
# is not an error.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Scenarios live in molecule/ at the collection root (not extensions/molecule/).
export MOLECULE_GLOB="molecule/*/molecule.yml"

base_config=()
if [[ -f molecule/config.yml ]]; then
    base_config=(--base-config molecule/config.yml)
fi

if (($#)); then
    scenarios=("$@")
else
    scenarios=()
    for file in molecule/*/molecule.yml; do
        [[ -f "${file}" ]] || continue
        scenarios+=("$(basename "$(dirname "${file}")")")
    done
fi

if ((${#scenarios[@]} == 0)); then
    echo "molecule: no scenario found (${MOLECULE_GLOB}); nothing to run"
    exit 0
fi

passed=()
failed=()
for scenario in "${scenarios[@]}"; do
    echo "=== molecule scenario ${scenario}"
    start=${SECONDS}
    if molecule "${base_config[@]}" test -s "${scenario}"; then
        passed+=("${scenario} ($((SECONDS - start))s)")
    else
        failed+=("${scenario} ($((SECONDS - start))s)")
    fi
done

echo "molecule: ${#passed[@]} scenario(s) passed${passed[*]:+: ${passed[*]}}"
if ((${#failed[@]})); then
    echo "molecule: ${#failed[@]} scenario(s) FAILED: ${failed[*]}" >&2
    exit 1
fi

#!/usr/bin/env bash
# Make this repository resolvable as meshtune.mesh: build/collections/ansible_collections/meshtune/mesh
# is a symbolic link to the repository root (ansible.cfg puts build/collections on the collection path,
# and tests put it on PYTHONPATH).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COLLECTIONS_DIR="${COLLECTIONS_DIR:-build/collections}"
namespace_dir="${COLLECTIONS_DIR}/ansible_collections/meshtune"
link="${namespace_dir}/mesh"

mkdir -p "${namespace_dir}"
# A relative link keeps working when the checkout is moved.
root="$(realpath --relative-to="${namespace_dir}" .)"
if [[ -L "${link}" && "$(readlink "${link}")" == "${root}" ]]; then
    exit 0
fi
if [[ -e "${link}" && ! -L "${link}" ]]; then
    echo "error: ${link} exists and is not a symbolic link" >&2
    exit 1
fi
ln -sfn "${root}" "${link}"
echo "linked ${link} -> ${root}"

#!/usr/bin/env bash
# Lint the collection's documentation the way the Ansible community checks collections:
# `antsibull-docs lint-collection-docs` with the module, plugin and role docs (schema, markup,
# references to this collection and the ones it depends on, and the RST they render to).
#
# antsibull-docs copies the collection and its dependencies (found with `ansible-galaxy collection
# list`) into a temporary tree, and copies only the files git lists from a path inside a git work
# tree. The dependencies installed in build/collections sit in this repository's ignored build/,
# so they are copied to a temporary collections path outside it first.
# Extra arguments go to antsibull-docs (for example --skip-rstcheck).
#
# Environment: COLLECTIONS_DIR (default build/collections).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COLLECTIONS_DIR="${COLLECTIONS_DIR:-build/collections}"

dependencies="$(mktemp -d)"
trap 'rm -rf "${dependencies}"' EXIT

# Every installed collection but this one (a symbolic link to the repository).
for collection in "${COLLECTIONS_DIR}"/ansible_collections/*/*; do
    if [[ -d "${collection}" && ! -L "${collection}" ]]; then
        namespace="$(basename "$(dirname "${collection}")")"
        mkdir -p "${dependencies}/ansible_collections/${namespace}"
        cp -R "${collection}" "${dependencies}/ansible_collections/${namespace}/"
    fi
done

ANSIBLE_COLLECTIONS_PATH="${dependencies}" antsibull-docs lint-collection-docs \
    --plugin-docs --validate-collection-refs=dependent "$@" .

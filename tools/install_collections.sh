#!/usr/bin/env bash
# Install the collections meshtune.mesh depends on (requirements.yml) into build/collections.
#
# The usual route is ansible-galaxy with requirements.yml. Where the Galaxy server cannot be
# reached, kubernetes.core is taken from the community `ansible` distribution on the Python
# package index instead: its wheel is downloaded once into build/cache, only
# ansible_collections/kubernetes/core is extracted from it, and that folder is installed with
# `ansible-galaxy collection install --offline`.
#
# Environment: ANSIBLE_DIST_VERSION (community `ansible` release to fall back on), COLLECTIONS_DIR,
# CACHE_DIR, GALAXY_TIMEOUT (seconds).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ANSIBLE_DIST_VERSION="${ANSIBLE_DIST_VERSION:-12.3.0}"
COLLECTIONS_DIR="${COLLECTIONS_DIR:-build/collections}"
CACHE_DIR="${CACHE_DIR:-build/cache}"
GALAXY_TIMEOUT="${GALAXY_TIMEOUT:-20}"

mkdir -p "${COLLECTIONS_DIR}" "${CACHE_DIR}"

echo "collections: trying ansible-galaxy with requirements.yml"
if timeout "$((GALAXY_TIMEOUT * 2))" ansible-galaxy collection install --timeout "${GALAXY_TIMEOUT}" \
    -r requirements.yml -p "${COLLECTIONS_DIR}" >"${CACHE_DIR}/galaxy-install.log" 2>&1; then
    cat "${CACHE_DIR}/galaxy-install.log"
    exit 0
fi
echo "collections: the Galaxy server is not reachable (log: ${CACHE_DIR}/galaxy-install.log);" \
    "using the collections shipped in ansible==${ANSIBLE_DIST_VERSION}"

wheel="${CACHE_DIR}/ansible-${ANSIBLE_DIST_VERSION}-py3-none-any.whl"
if [[ ! -f "${wheel}" ]]; then
    python -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "${CACHE_DIR}" "ansible==${ANSIBLE_DIST_VERSION}"
fi

extract_dir="${CACHE_DIR}/ansible-${ANSIBLE_DIST_VERSION}"
# Every collection listed in requirements.yml, as namespace/name.
mapfile -t wanted < <(python - <<'EOF'
import yaml

with open("requirements.yml", encoding="utf-8") as handle:
    data = yaml.safe_load(handle) or {}
for entry in data.get("collections") or []:
    name = entry["name"] if isinstance(entry, dict) else entry
    print(name.replace(".", "/"))
EOF
)

for collection in "${wanted[@]}"; do
    src="${extract_dir}/ansible_collections/${collection}"
    if [[ ! -f "${src}/MANIFEST.json" ]]; then
        python - "${wheel}" "${extract_dir}" "ansible_collections/${collection}/" <<'EOF'
import sys
import zipfile

wheel, dest, prefix = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive:
    members = [name for name in archive.namelist() if name.startswith(prefix)]
    if not members:
        sys.exit(f"{wheel} holds no {prefix}")
    archive.extractall(dest, members)
EOF
    fi
    ansible-galaxy collection install --offline -p "${COLLECTIONS_DIR}" "${src}"
done

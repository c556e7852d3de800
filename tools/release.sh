#!/usr/bin/env bash
# Release VERSION (x.y.z): set it in galaxy.yml, write the release into the changelog
# (`antsibull-changelog release`: changelogs/changelog.yaml and CHANGELOG.rst, from the fragments),
# build the collection tarball into RELEASE_DIR and list what it holds. Commits and tags nothing:
# review the diff, then commit, tag and publish (docs/releasing.md).
#
# Usage: tools/release.sh x.y.z (make release VERSION=x.y.z)
# Environment: RELEASE_DIR (default build/release).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RELEASE_DIR="${RELEASE_DIR:-build/release}"
version="${1:-}"

if [[ ! "${version}" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]]; then
    echo "usage: tools/release.sh x.y.z (make release VERSION=x.y.z); got '${version}'" >&2
    exit 2
fi
# A version the changelog already holds was released before.
if python - "${version}" <<'EOF_PY'
import sys

import yaml

with open("changelogs/changelog.yaml", encoding="utf-8") as handle:
    releases = (yaml.safe_load(handle) or {}).get("releases") or {}
sys.exit(0 if sys.argv[1] in releases else 1)
EOF_PY
then
    echo "error: ${version} is already released (changelogs/changelog.yaml)" >&2
    exit 1
fi

antsibull-changelog lint
sed -i -E "s/^version: .*/version: ${version}/" galaxy.yml
echo "galaxy.yml: version ${version}"
antsibull-changelog release --version "${version}"
echo "changelog: release ${version} written (changelogs/changelog.yaml, CHANGELOG.rst)"

mkdir -p "${RELEASE_DIR}"
ansible-galaxy collection build --force --output-path "${RELEASE_DIR}" .
tarball="${RELEASE_DIR}/meshtune-mesh-${version}.tar.gz"
echo "${tarball} holds:"
tar -tzf "${tarball}" | sort

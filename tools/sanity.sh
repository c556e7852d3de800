#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection, offline.
#
# ansible-test wants the collection under .../ansible_collections/meshtune/mesh as a real path (a
# symbolic link resolves back to the repository and is refused) and its dependencies in the same
# ansible_collections tree. So the repository's files (tools/list_files.sh) are copied into
# build/ansible-test/ansible_collections/meshtune/mesh, kubernetes.core is linked beside them, and
# ansible-test runs there. The copy gets an empty git repository of its own: ansible-test lists the
# files of the nearest enclosing git work tree, and in this repository's tree build/ is ignored.
# Extra arguments go to ansible-test (for example --test pep8, or --exclude tests/).
#
# Environment: PYTHON_VERSION (default 3.11), COLLECTIONS_DIR (default build/collections).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
COLLECTIONS_DIR="${COLLECTIONS_DIR:-build/collections}"
tree="build/ansible-test/ansible_collections"
dest="${tree}/meshtune/mesh"

if [[ ! -d "${COLLECTIONS_DIR}/ansible_collections/kubernetes/core" ]]; then
    echo "error: kubernetes.core is not installed in ${COLLECTIONS_DIR}; run 'make setup'" >&2
    exit 1
fi

rm -rf "${dest}"
mkdir -p "${dest}" "${tree}/kubernetes"
tools/list_files.sh | tar --null --files-from=- --create --file=- | tar --extract --file=- --directory="${dest}"
git -C "${dest}" -c init.defaultBranch=main init --quiet
ln -sfn "$(realpath "${COLLECTIONS_DIR}/ansible_collections/kubernetes/core")" "${tree}/kubernetes/core"

cd "${dest}"
exec ansible-test sanity --local --python "${PYTHON_VERSION}" "$@"

#!/usr/bin/env bash
# Create the project's virtual environment (VENV, default .venv) with PYTHON (default python3)
# when it does not exist yet, and install requirements.txt into it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if [[ ! -x "${VENV}/bin/python" ]]; then
    echo "creating ${VENV} with $(command -v "${PYTHON}") ($("${PYTHON}" --version 2>&1))"
    "${PYTHON}" -m venv "${VENV}"
fi

"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
"${VENV}/bin/python" -m pip check

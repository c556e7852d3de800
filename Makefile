# meshtune.mesh tool chain. `make help` lists the targets.
#
# Everything runs from the virtual environment in $(VENV) (created by `make setup`), with
# build/collections on the collection path (ansible.cfg): meshtune.mesh is a link to this
# repository there, and kubernetes.core is installed beside it.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
PYTHON_VERSION ?= 3.11
VENV ?= .venv
# Community `ansible` release whose kubernetes.core is installed when no Galaxy server answers.
ANSIBLE_DIST_VERSION ?= 12.3.0
COLLECTIONS_DIR := build/collections
CACHE_DIR := build/cache
PYTEST_ARGS ?=
# Extra ansible-playbook arguments for `make run`, e.g. RUN_ARGS="-e meshtune_verify=false".
RUN_ARGS ?=
# The collection imports as ansible_collections.meshtune.mesh, the test server as tests.kubeapi.
PYTEST := PYTHONPATH=$(CURDIR)/$(COLLECTIONS_DIR):$(CURDIR) python -m pytest

VENV_STAMP := $(VENV)/.requirements.stamp
COLLECTIONS_STAMP := $(COLLECTIONS_DIR)/.requirements.stamp

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PYTHON VENV PYTHON_VERSION ANSIBLE_DIST_VERSION COLLECTIONS_DIR CACHE_DIR

.PHONY: help setup check lint sanity unit functional pytest molecule test bench run clean distclean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(VENV_STAMP) $(COLLECTIONS_STAMP) ## Virtual environment, collections, offline ansible-test bootstrap
	@tools/link_collection.sh
	@python tools/ansible_test_offline_pip.py --download-dir $(CACHE_DIR)

$(VENV_STAMP): requirements.txt requirements-runtime.txt tools/setup_venv.sh
	tools/setup_venv.sh
	@touch $@

$(COLLECTIONS_STAMP): requirements.yml tools/install_collections.sh | $(VENV_STAMP)
	tools/install_collections.sh
	@touch $@

check: setup ## lint and unit tests: the quick loop while coding
	tools/lint.sh
	$(PYTEST) tests/unit -n auto $(PYTEST_ARGS)

lint: setup ## ansible-lint, ruff and shellcheck
	tools/lint.sh

docs-lint: setup ## antsibull-docs lint-collection-docs, with the module, plugin and role docs
	tools/docs_lint.sh

sanity: setup ## ansible-test sanity, offline (SANITY_ARGS=... for more options)
	tools/sanity.sh $(SANITY_ARGS)

unit: setup ## pytest on tests/unit
	$(PYTEST) tests/unit $(PYTEST_ARGS)

functional: setup ## pytest on tests/functional (modules, roles and playbooks against local servers)
	$(PYTEST) tests/functional $(PYTEST_ARGS)

pytest: setup ## pytest on all of tests/
	$(PYTEST) $(PYTEST_ARGS)

molecule: setup ## Every Molecule scenario in molecule/
	tools/molecule.sh

test: setup ## setup, lint, docs lint, sanity, pytest, molecule; stops at the first failing stage
	tools/test.sh

bench: setup ## Benchmarks in bench/ (figures printed, not asserted)
	tools/bench.sh

run: setup ## ansible-playbook -i inventories/local playbooks/site.yml $(RUN_ARGS)
	ansible-playbook -i inventories/local playbooks/site.yml $(RUN_ARGS)

release: setup ## Release VERSION=x.y.z: bump galaxy.yml, antsibull-changelog release, build the tarball (docs/releasing.md)
	tools/release.sh $(VERSION)

clean: ## Remove build/, test output and caches (keeps the virtual environment)
	rm -rf build tests/output .pytest_cache .ruff_cache .ansible
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove the virtual environment too
	rm -rf $(VENV)

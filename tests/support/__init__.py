"""What the test suites share: local servers and stand-ins, ways to run modules and playbooks,
sample results. Fixtures live in tests/conftest.py."""

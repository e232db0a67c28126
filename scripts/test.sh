#!/usr/bin/env bash
# Set up everything on a fresh Debian machine (as root) and run the whole test suite:
# the Docker engine, the private sshd, the test images, the venv, lint, types, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not docker" for the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testbed.sh >/dev/null
eval "$(bash scripts/testbed.sh --env)"
bash scripts/venv.sh

echo "== ruff, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy src/opskit

echo "== pytest"
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"

#!/usr/bin/env bash
# Set up everything on a fresh Debian machine (as root) and run the whole test suite:
# the Docker engine, the private sshd, the test images, the venv, lint, types, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not docker" for the unit tests.
#
# Without arguments the suite runs as two pytest processes side by side, each with its own
# namespace (OPSKIT_TEST_NS) and port window, as two checkouts on one server would: the
# database loads, the offsite copies and the dashboard in one, everything else in the
# other. They wait on containers, restic and the browser far more than they compute, so
# the whole takes far less time than one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testbed.sh >/dev/null
eval "$(bash scripts/testbed.sh --env)"
bash scripts/venv.sh

echo "== ruff, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy src/opskit

# pytest's exit 5 (no tests collected) is a failure too.
verdict() {
  if [ "$1" -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; return 1; fi
  return "$1"
}

echo "== pytest"
if [ $# -gt 0 ]; then
  status=0
  .venv/bin/pytest "$@" || status=$?
  verdict "$status"
  exit $?
fi

ns="t$(printf '%s' "$PWD" | sha1sum | cut -c1-6)"
SIDE=(tests/test_loads.py tests/test_offsite.py tests/test_dashboard.py)
side_log=$(mktemp /tmp/opskit-tests-side.XXXXXX)
OPSKIT_TEST_NS="${ns}s" OPSKIT_TEST_PORTS=20000-25999 \
  .venv/bin/pytest -p no:cacheprovider "${SIDE[@]}" >"$side_log" 2>&1 &
side=$!
main_status=0
OPSKIT_TEST_NS="${ns}m" OPSKIT_TEST_PORTS=26000-32000 \
  .venv/bin/pytest $(printf -- '--ignore=%s ' "${SIDE[@]}") || main_status=$?
side_status=0
wait "$side" || side_status=$?
echo "== pytest (side by side: ${SIDE[*]})"
cat "$side_log"
rm -f "$side_log"
result=0
verdict "$main_status" || result=1
verdict "$side_status" || result=1
exit "$result"

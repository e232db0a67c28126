#!/usr/bin/env bash
# Set up everything on a fresh Debian machine (as root) and run the whole test suite:
# the Docker engine, the private sshd, the test images, the venv, lint, types, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not docker" for the unit tests.
#
# Without arguments the suite runs as three pytest processes side by side, each with its
# own namespace (OPSKIT_TEST_NS) and port window, as three checkouts on one server would:
# the database loads and the offsite copies, the dashboard in a browser, and everything
# else. They wait on containers, restic and the browser far more than they compute, so the
# whole takes far less time than one after the other. --durations shows the slowest.
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
GROUP_S=(tests/test_loads.py tests/test_offsite.py tests/test_offsite_shared.py)
GROUP_D=(tests/test_dashboard.py)
logs=()
pids=()
side() {  # side NAME PORTS FILES...: a pytest in the background, its output to a file
  local name=$1 ports=$2 log
  shift 2
  log=$(mktemp "/tmp/opskit-tests-$name.XXXXXX")
  OPSKIT_TEST_NS="${ns}$name" OPSKIT_TEST_PORTS=$ports \
    .venv/bin/pytest -p no:cacheprovider --durations=10 "$@" >"$log" 2>&1 &
  pids+=($!)
  logs+=("$log")
}
side s 20000-23999 "${GROUP_S[@]}"
side d 24000-27999 "${GROUP_D[@]}"
result=0
main_status=0
OPSKIT_TEST_NS="${ns}m" OPSKIT_TEST_PORTS=28000-32000 .venv/bin/pytest --durations=10 \
  $(printf -- '--ignore=%s ' "${GROUP_S[@]}" "${GROUP_D[@]}") || main_status=$?
verdict "$main_status" || result=1
for i in "${!pids[@]}"; do
  status=0
  wait "${pids[$i]}" || status=$?
  echo "== pytest (side by side, $(basename "${logs[$i]}"))"
  cat "${logs[$i]}"
  rm -f "${logs[$i]}"
  verdict "$status" || result=1
done
exit "$result"

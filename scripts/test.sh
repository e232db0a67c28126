#!/usr/bin/env bash
# Set up everything on a fresh Debian machine (as root) and run the whole test suite:
# the Docker engine, the private sshd, the test images, the venv, lint, types, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not docker" for the unit tests.
#
# Without arguments the suite runs as four pytest runners side by side, each with its
# own namespace (OPSKIT_TEST_NS) and port window, as checkouts on one server would: the
# offsite copies, the store's own tests and `init` on stacks started by hand; the
# dashboard in a browser with the shared offsite repository, the drills and the
# interruptions; the wp project's promotion, sync, rebuild and scheduled jobs with the
# database loads and the one-part restores, then the compose tests once more with compose
# v1; and everything else.
# The groups are chosen so that the runners end together.
# They wait on containers, restic and the browser far more than they compute, so the whole
# takes far less time than one after the other. --durations shows the slowest.
# Within a runner, tests/conftest.py runs the modules that need a shared stack (the
# example copy, the wp project) together and takes each stack down after its last test:
# an idle stack's healthchecks cost the engine CPU the other runners need.
#
# The test bed's DOCKER_CONFIG (scripts/testbed.sh --env) brings Docker Compose v2, which
# opskit prefers: the suite runs on v2, as on real servers. The v1 run points DOCKER_CONFIG
# at an empty folder, so `docker compose` fails and opskit falls back to `docker-compose`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testbed.sh >/dev/null
eval "$(bash scripts/testbed.sh --env)"
bash scripts/venv.sh
# The tests run the CLI (`python -m opskit`) many hundred times. Where PYTHONDONTWRITEBYTECODE
# is set (as on the CI machines), each run would compile every opskit module again: compile
# them once here (Python still reads what is compiled; about a fifth of a run's CPU time).
.venv/bin/python -m compileall -q src plugins >/dev/null

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
# Property tests run the CI profile of tests/conftest.py (fewer examples, no deadline);
# OPSKIT_TEST_HYPOTHESIS=default gives each test its own number, as plain pytest does.
export OPSKIT_TEST_HYPOTHESIS=${OPSKIT_TEST_HYPOTHESIS:-ci}
# The tests of backups, restore, drill, sync, rebuild and offsite take the `store` fixture
# and run once per archive store (tests/conftest.py). Both sides of all of them took about
# 40 minutes here, and both sides in one runner of four 26 minutes, over the CI's budget, so
# the suite runs their restic side (the store, the default of a new root); a test about one
# store alone (the folder store's altered archive) runs whatever is chosen.
# OPSKIT_TEST_STORES=folder scripts/test.sh runs the folder side instead,
# OPSKIT_TEST_STORES=restic,folder both sides of every test.
export OPSKIT_TEST_STORES=${OPSKIT_TEST_STORES:-restic}
# Each pytest runs under a reaper of orphans, as systemd is on a server: a killed opskit's
# restic, reparented, must not stay a zombie, whose pid restic takes for a live process that
# still holds its lock (this machine's PID 1 reaps nothing).
reap=()
if command -v tini >/dev/null; then reap=(tini -s -g --); fi
if [ $# -gt 0 ]; then
  status=0
  "${reap[@]}" .venv/bin/pytest "$@" || status=$?
  verdict "$status"
  exit $?
fi

ns="t$(printf '%s' "$PWD" | sha1sum | cut -c1-6)"
GROUP_S=(tests/test_offsite.py tests/test_init.py tests/test_store.py tests/test_migrate.py)
# The drills bring up throw-away database servers beside the example copy that the
# dashboard's runner has up anyway; there they, and the interruptions of commands on the
# example copy, even out the main runner, the longest (23.1 min with test_interrupt's
# 3.5 min, when d took 18.9 min and then v1 5.4 min); test_store_trees (1.1 min) came from
# s, the longest after that move (23.3 min; d 21.3).
GROUP_D=(tests/test_dashboard.py tests/test_offsite_shared.py tests/test_drill.py
  tests/test_store_faults.py tests/test_interrupt.py tests/test_store_trees.py
  tests/test_dashboard_overview.py)
# The wp project's stack and its users: promotion, sync, rebuild, the scheduled jobs, and
# trust's test of containers under no valid service name; with the database loads and the
# restores of one part.
WP_TRUST=tests/test_trust.py::test_a_container_under_no_service_name_is_shown_reported_and_left_alone
# And the whole-server rebuild and drill from offsite (test_recovery, about 7 minutes alone),
# and the backups page's offsite restores and plots (about 3 minutes).
GROUP_W=(tests/test_promote.py tests/test_sync.py tests/test_rebuild.py tests/test_unattended.py
  tests/test_loads.py tests/test_restore_part.py tests/test_recovery.py
  tests/test_dashboard_backups.py "$WP_TRUST")
# The compose-facing tests for v1 (container names `_1` against v2's `-1`): which compose the
# run uses, compose names and stacks started by hand, the CLI's compose lifecycle, and envs
# chosen by profile (v1 lists a profile's services apart from v2). Not
# the test of containers under no valid service name: it is about ops.* labels, not about
# compose, and its wp stacks alone took four minutes of the v1 run.
GROUP_V1=(-m "docker and not ssh" tests/test_compose.py tests/test_trust.py tests/test_cli.py
  tests/test_profiles.py --deselect
  tests/test_trust.py::test_a_container_under_no_service_name_is_shown_reported_and_left_alone)
reports=build/test-reports  # one JUnit file per run (s-then: the v1 run after s), read at the end
rm -rf "$reports" && mkdir -p "$reports"
logs=()
pids=()
side() {  # side NAME PORTS ARGS... [-- VAR=VALUE... ARGS...]: pytest in the background,
  # its output to a file; after `--`, a second pytest with those variables once the first
  # has ended (the exit status is the first failure's)
  local name=$1 ports=$2 log first=() vars=() then=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do first+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  while [ $# -gt 0 ] && [[ $1 =~ ^[A-Z_0-9]+= ]]; do vars+=("$1"); shift; done
  then=("$@")
  log=$(mktemp "/tmp/opskit-tests-$name.XXXXXX")
  (
    status=0
    OPSKIT_TEST_NS="${ns}$name" OPSKIT_TEST_PORTS=$ports \
      "${reap[@]}" .venv/bin/pytest -p no:cacheprovider --durations=10 --junitxml="$reports/$name.xml" \
      "${first[@]}" || status=$?
    verdict "$status" || status=1
    if [ ${#then[@]} -gt 0 ]; then
      later=0
      env "${vars[@]}" "${reap[@]}" .venv/bin/pytest -p no:cacheprovider --durations=10 \
        --junitxml="$reports/$name-then.xml" "${then[@]}" || later=$?
      verdict "$later" || later=1
      [ "$status" -ne 0 ] || status=$later
    fi
    exit "$status"
  ) >"$log" 2>&1 &
  pids+=($!)
  logs+=("$log")
}
v1_config=$(mktemp -d /tmp/opskit-docker-config-v1.XXXXXX)   # no cli-plugins: compose v1
trap 'rm -rf "$v1_config"' EXIT
# The v1 run follows the s runner (17.8 min, the v1 run 5.7 min), so that no more than four
# pytest processes (and no more than two example copies with their healthchecks) share
# the two cores; the wp runner (13.0 min) has the whole-server tests instead.
side s 20000-23999 "${GROUP_S[@]}" -- DOCKER_CONFIG="$v1_config" OPSKIT_TEST_COMPOSE=v1 \
  OPSKIT_TEST_NS="${ns}v1" OPSKIT_TEST_PORTS=30500-32000 "${GROUP_V1[@]}"
side w 32100-32700 "${GROUP_W[@]}"
side d 24000-27999 "${GROUP_D[@]}"
result=0
main_status=0
OPSKIT_TEST_NS="${ns}m" OPSKIT_TEST_PORTS=28000-30499 "${reap[@]}" .venv/bin/pytest --durations=10 \
  --junitxml="$reports/main.xml" \
  $(printf -- '--ignore=%s ' "${GROUP_S[@]}" "${GROUP_D[@]}" "${GROUP_W[@]:0:8}") \
  --deselect "$WP_TRUST" \
  || main_status=$?
verdict "$main_status" || result=1
for i in "${!pids[@]}"; do
  status=0
  wait "${pids[$i]}" || status=$?
  echo "== pytest (side by side, $(basename "${logs[$i]}"))"
  cat "${logs[$i]}"
  rm -f "${logs[$i]}"
  verdict "$status" || result=1
done
echo "== time per runner, and the slowest ten tests of the whole run"
.venv/bin/python scripts/test_times.py "$reports"/*.xml || true
exit "$result"

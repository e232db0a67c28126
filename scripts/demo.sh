#!/usr/bin/env bash
# The main job on a fresh Debian machine (as root): install opskit, bring up the four
# example projects (dev and prod each), show their status and health, and what doctor finds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testbed.sh >/dev/null
eval "$(bash scripts/testbed.sh --env)"   # DOCKER_CONFIG: compose v2, as on real servers
bash scripts/venv.sh
export OPSKIT_ROOT="$PWD/examples/root"
opskit=.venv/bin/opskit

$opskit projects
for project in mdf seriousletter shop webstack; do
  for env in dev prod; do
    $opskit start "$project" "$env"
  done
done
echo "waiting until every container is healthy ..." >&2
for _ in $(seq 1 90); do
  $opskit health >/dev/null 2>&1 && break
  sleep 2
done
$opskit status
$opskit health
# doctor exits 1 for a problem it finds (e.g. archives of an older opskit that others can
# read); the demo shows it without failing.
$opskit doctor || echo "(doctor found problems: see above)" >&2

#!/usr/bin/env bash
# The main job on a fresh Debian machine (as root): install opskit, bring up the four
# example projects (dev and prod each), show their status and health, back up and sync one
# of them (its copies go to the shared offsite repository), and what doctor finds.
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
# A night, a sync and its undo: back up mdf's envs into the example root's one offsite
# repository (shared by every project and env), copy prod's data into dev, then put dev
# back from the backup the sync took first (the newest of dev: history names it as the
# sync's undo point, and retention keeps it). The example files end as they began.
$opskit offsite init
$opskit backup mdf --offsite
$opskit sync mdf --from prod --to dev --yes
$opskit restore mdf dev --latest --yes
$opskit history mdf
$opskit offsite list mdf
# doctor exits 1 for a problem it finds (e.g. archives of an older opskit that others can
# read); the demo shows it without failing.
$opskit doctor || echo "(doctor found problems: see above)" >&2

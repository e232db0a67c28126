#!/bin/sh
# PostgreSQL 15 for the example stacks: initialise once (password, database, seed SQL), then serve.
set -eu
PGDATA=/var/lib/postgresql/data
mkdir -p "$PGDATA" /run/postgresql
chown postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_postgres() { su postgres -s /bin/sh -c "$*"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$POSTGRES_PASSWORD" >/run/postgresql/pw
  chown postgres /run/postgresql/pw
  as_postgres "initdb -D $PGDATA --username=postgres --pwfile=/run/postgresql/pw --auth-local=trust --auth-host=scram-sha-256" >/dev/null
  rm -f /run/postgresql/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  as_postgres "pg_ctl -D $PGDATA -o '-c listen_addresses=' -w start" >/dev/null
  as_postgres "createdb $POSTGRES_DB"
  for seed in /seed/*.sql; do
    [ -f "$seed" ] && as_postgres "psql -q -v ON_ERROR_STOP=1 -d $POSTGRES_DB -f $seed" >/dev/null
  done
  as_postgres "pg_ctl -D $PGDATA -m fast -w stop" >/dev/null
fi
exec su postgres -s /bin/sh -c "exec postgres -D $PGDATA -c listen_addresses='*'"

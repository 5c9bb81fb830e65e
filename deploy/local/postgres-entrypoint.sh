#!/bin/bash
# The entrypoint of qz-local/postgres (Debian's postgresql-15), as far as docker-compose.yml uses the
# public postgres image's: on an empty $PGDATA, initdb with superuser $POSTGRES_USER /
# $POSTGRES_PASSWORD (scram), run /docker-entrypoint-initdb.d/*.sh once, then run postgres
# listening on every interface of the container.
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
export POSTGRES_USER=${POSTGRES_USER:-postgres}
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp); printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"; chown postgres "$pwfile"
  as_pg initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  for f in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$f" ] || continue
    echo "running $f"
    as_pg env PGHOST=/var/run/postgresql bash "$f"
  done
  as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
if [ "${1:-}" = postgres ]; then
  shift
  # `docker stop` sends SIGTERM; PostgreSQL's fast shutdown is SIGINT (SIGTERM would wait for clients)
  as_pg postgres -D "$PGDATA" -c listen_addresses='*' "$@" &
  pid=$!
  trap 'kill -INT $pid' TERM INT
  wait $pid || true
  wait $pid
  exit $?
fi
exec "$@"

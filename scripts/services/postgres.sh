#!/usr/bin/env bash
# Installs (Debian package) and starts a throwaway PostgreSQL cluster on 127.0.0.1 for tests,
# the benchmarks and local development. Idempotent: a running cluster is reused.
# Prints the SQLAlchemy URL of its test database on stdout (everything else goes to stderr).
#
#   QZ_PG_PORT  (default 5433)   QZ_PG_DATA (default var/pg/<port>)   QZ_PG_DB (default qz_test)
set -euo pipefail
cd "$(dirname "$0")/../.."

PORT=${QZ_PG_PORT:-5433}
DATA=${QZ_PG_DATA:-$PWD/var/pg/$PORT}
DBNAME=${QZ_PG_DB:-qz_test}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "postgres: installing Debian package postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if ! as_pg "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$(dirname "$DATA")"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$DATA" --auth=trust --encoding=UTF8 --locale=C.UTF-8 -U postgres >/dev/null
  fi
  # Sized for a 2-core, 24 GB machine doing set work; durability is not the point of a test cluster.
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start -o "\
    -p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp \
    -c shared_buffers=2GB -c work_mem=256MB -c maintenance_work_mem=1GB \
    -c max_parallel_workers_per_gather=2 -c max_wal_size=8GB -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2
fi
as_pg "$PGBIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
  "select 1 from pg_database where datname = '$DBNAME'" | grep -q 1 \
  || as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DBNAME" >&2
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/$DBNAME"

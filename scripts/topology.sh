#!/usr/bin/env bash
# The production topology on loopback, without Docker: the same processes as docker-compose.yml,
# each a plain process on 127.0.0.1 with its pid and log under one run directory.
#
#   scripts/topology.sh start      PostgreSQL (Debian, scripts/services/postgres.sh) and Redis
#                                  (scripts/services/redis.sh); airflow db migrate, pools; the
#                                  development SMSC and the SMS receiver; Airflow's api-server,
#                                  scheduler, dag-processor, triggerer and N Celery workers
#   scripts/topology.sh stop       stops every process it started, by its pid (process group)
#   scripts/topology.sh status     one line per process, and the API's health
#   scripts/topology.sh env        prints the environment file (source it to use the airflow CLI)
#
# Settings (environment; defaults in brackets):
#   QZ_TOPO_DIR [var/topology]          run directory: AIRFLOW_HOME, logs, pids, outputs, topology.env
#   QZ_TOPO_API_PORT [8091]  QZ_TOPO_REDIS_PORT [6391]  QZ_TOPO_SMSC_PORT [2791]
#   QZ_TOPO_SMSC_HTTP_PORT [SMSC port + 6000] (the development SMSC's control port)
#   QZ_TOPO_WORKERS [2]  QZ_TOPO_WORKER_CONCURRENCY [2]  AIRFLOW__CORE__PARALLELISM [4]
#   QZ_TOPO_AIRFLOW_DB_URL / QZ_TOPO_MARKETING_URL / QZ_TOPO_DATAMART_URL   SQLAlchemy URLs; each
#       one not given is a database qz_topo_<name> on the local cluster (QZ_PG_PORT, default 5433)
#   QZ_TOPO_DATAMART_URL given: used as it is (e.g. the 6.4-million-subscriber data mart), nothing
#       generated. Not given: a demo data mart of QZ_TOPO_SUBSCRIBERS [20000] is generated for
#       QZ_TOPO_AS_OF [today in Asia/Shanghai] (once; QZ_TOPO_SUBSCRIBERS=0 skips it).
#   QZ_TOPO_DEMO_DATAMART_URL: where that demo data mart goes [database qz_topo_datamart]
#   QZ_TOPO_SMSC ["dev"]: "dev" starts the development SMSC; otherwise the JSON of the `smsc`
#       connection of a real SMSC (nothing started for it)
#   QZ_TOPO_SMSC_RATE [1000]  QZ_TOPO_SMSC_WINDOW [100]: the development SMSC's contracted rate
#       (submit_sm per second, the whole account) and window, as the `smsc` connection's extras
#   QZ_FAKE_NOW: the project's clock for every process (the demo plays the cycle day at 09:00)
#   AIRFLOW_CONN_ALERT_WEBHOOK / AIRFLOW_CONN_ALERT_SMTP: passed on (docs/runbook.md, alerts)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/services/env.sh"   # wait_port, port_open

DIR=$(mkdir -p "${QZ_TOPO_DIR:-$ROOT/var/topology}" && cd "${QZ_TOPO_DIR:-$ROOT/var/topology}" && pwd)
API_PORT=${QZ_TOPO_API_PORT:-8091}
REDIS_PORT=${QZ_TOPO_REDIS_PORT:-6391}
SMSC_PORT=${QZ_TOPO_SMSC_PORT:-2791}
SMSC_HTTP_PORT=${QZ_TOPO_SMSC_HTTP_PORT:-$((SMSC_PORT + 6000))}
WORKERS=${QZ_TOPO_WORKERS:-2}
PY="$ROOT/.venv/bin/python"
AIRFLOW="$ROOT/.venv/bin/airflow"
log() { echo "[topology] $*" >&2; }

# ---------------------------------------------------------------- processes
start_proc() {  # start_proc NAME CMD...: its own session (so its children stop with it), log, pid
  local name=$1; shift
  if [ -f "$DIR/pids/$name.pid" ] && kill -0 "$(cat "$DIR/pids/$name.pid")" 2>/dev/null; then
    log "$name already running ($(cat "$DIR/pids/$name.pid"))"; return 0
  fi
  setsid "$@" > "$DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/$name.pid"
}

stop_proc() {  # stop_proc NAME: SIGTERM to its process group, SIGKILL after 30 s
  local name=$1 f="$DIR/pids/$1.pid" pid t0=$SECONDS
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in 30 s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # children that left the group's leader behind (uvicorn, celery pool) go with the group
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$f"
  log "stopped $name ($((SECONDS - t0)) s)"
}

stop_all() {
  local f p
  for f in "$DIR"/pids/celery-worker-*.pid; do [ -e "$f" ] && stop_proc "$(basename "$f" .pid)"; done
  for p in scheduler triggerer dag-processor api-server receiver devsmsc; do stop_proc "$p"; done
  bash "$ROOT/scripts/services/redis.sh" stop "$DIR/redis"
}

status_all() {
  local f name rc=0
  for f in "$DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$name running $(cat "$f")"; else echo "$name DEAD"; rc=1; fi
  done
  if [ -f "$DIR/topology.env" ]; then
    # shellcheck disable=SC1091
    . "$DIR/topology.env"
    http_get "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" && echo || { echo "api-server not healthy"; rc=1; }
  fi
  return $rc
}

# ---------------------------------------------------------------- helpers
url_db() {  # url_db NAME: the URL of database qz_topo_NAME on the local cluster, created if missing
  local base
  base=$(QZ_PG_DB="qz_topo_$1" bash "$ROOT/scripts/services/postgres.sh")
  echo "$base"
}

conn_json() {  # conn_json URL: the Airflow connection (JSON) for an SQLAlchemy URL (or an SQLite file)
  "$PY" - "$1" <<'PYEOF'
import json, sys
import sqlalchemy as sa
raw = sys.argv[1]
if "://" not in raw:
    print(json.dumps({"conn_type": "sqlite", "host": raw})); sys.exit()
u = sa.make_url(raw)
if u.get_backend_name() == "sqlite":
    print(json.dumps({"conn_type": "sqlite", "host": u.database})); sys.exit()
print(json.dumps({"conn_type": "postgres", "host": u.host, "port": u.port or 5432, "login": u.username,
                  "password": u.password, "schema": u.database}))
PYEOF
}

http_get() {  # http_get URL: the body on stdout; fails unless 2xx (Python: no curl needed)
  "$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1" 2>/dev/null
}

secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))'; }

# ---------------------------------------------------------------- start
start_all() {
  mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/airflow" "$DIR/output" "$DIR/sms-state"
  local t0=$SECONDS
  "$ROOT/scripts/bootstrap.sh"

  local airflow_db=${QZ_TOPO_AIRFLOW_DB_URL:-$(url_db airflow)}
  local marketing=${QZ_TOPO_MARKETING_URL:-$(url_db marketing)}
  local datamart generate=0
  if [ -n "${QZ_TOPO_DATAMART_URL:-}" ]; then
    datamart=$QZ_TOPO_DATAMART_URL
  else
    datamart=${QZ_TOPO_DEMO_DATAMART_URL:-$(url_db datamart)}
    generate=${QZ_TOPO_SUBSCRIBERS:-20000}
  fi
  local broker
  broker=$(bash "$ROOT/scripts/services/redis.sh" start "$REDIS_PORT" "$DIR/redis")

  local smsc_conn=${QZ_TOPO_SMSC:-dev}
  if [ "$smsc_conn" = dev ]; then
    smsc_conn="{\"conn_type\": \"generic\", \"host\": \"127.0.0.1\", \"port\": $SMSC_PORT, \"login\": \"QZDEV\", \"password\": \"dev\", \"extra\": {\"source_addr\": \"10658\", \"rate\": ${QZ_TOPO_SMSC_RATE:-1000}, \"window\": ${QZ_TOPO_SMSC_WINDOW:-100}}}"
    local dev_smsc=1
  fi

  # Secrets of this run: generated once, kept in the run directory (mode 600), never in the repo.
  if [ ! -f "$DIR/secrets.env" ]; then
    (umask 077; {
      echo "JWT_SECRET=$(secret)"; echo "API_SECRET=$(secret)"
      echo "FERNET_KEY=$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
      echo "HQ_PASSWORD=$(secret)"
    } > "$DIR/secrets.env")
  fi
  # shellcheck disable=SC1091
  . "$DIR/secrets.env"
  local users="hq:admin" passwords
  passwords=$("$PY" - "$HQ_PASSWORD" <<'PYEOF'
import json, sys
from qz_outbound import counties
print(json.dumps({"hq": sys.argv[1], **{f"county_{c}": f"county-{c}-{sys.argv[1][:8]}" for c in counties.county_names()}}))
PYEOF
)
  for c in $("$PY" -c 'from qz_outbound import counties; print(" ".join(counties.county_names()))'); do
    users="$users,county_$c:viewer"
  done
  (umask 077; echo "$passwords" > "$DIR/airflow/passwords.json")

  local dm_conn mk_conn
  dm_conn=$(conn_json "$datamart"); mk_conn=$(conn_json "$marketing")
  local metadata=${airflow_db/#postgresql:/postgresql+psycopg:}   # Airflow and Celery's result store: psycopg 3
  local result_backend="db+$metadata"
  (umask 077; cat > "$DIR/topology.env" <<ENV
# The environment of this topology's processes (written by scripts/topology.sh; holds secrets: mode 600)
export PATH='$ROOT/.venv/bin':"\$PATH"
export AIRFLOW_HOME='$DIR/airflow'
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
export AIRFLOW__CORE__DAGS_FOLDER='$ROOT/dags'
export AIRFLOW__CORE__PLUGINS_FOLDER='$ROOT/plugins'
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DEFAULT_TIMEZONE=Asia/Shanghai
export AIRFLOW__CORE__FERNET_KEY='$FERNET_KEY'
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL='http://127.0.0.1:$API_PORT/execution/'
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS='$users'
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE='$DIR/airflow/passwords.json'
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN='$metadata'
export AIRFLOW__CELERY__BROKER_URL='$broker'
export QZ_SMS_LIMITER_URL='${broker%/0}/1'
export AIRFLOW__CELERY__RESULT_BACKEND='$result_backend'
export AIRFLOW__CELERY__WORKER_CONCURRENCY=${QZ_TOPO_WORKER_CONCURRENCY:-2}
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$API_PORT
export AIRFLOW__API__SECRET_KEY='$API_SECRET'
export AIRFLOW__API_AUTH__JWT_SECRET='$JWT_SECRET'
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW_CONN_DATAMART='$dm_conn'
export AIRFLOW_CONN_MARKETING_DB='$mk_conn'
export AIRFLOW_CONN_SMSC='$smsc_conn'
export QZ_MARKETING_DB_URL='$marketing'
export QZ_OUTPUT_DIR='$DIR/output'
export QZ_SMS_STATE_DIR='$DIR/sms-state'
export GX_ANALYTICS_ENABLED=False
ENV
  for v in AIRFLOW_CONN_ALERT_WEBHOOK AIRFLOW_CONN_ALERT_SMTP QZ_FAKE_NOW AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE; do
    [ -n "${!v:-}" ] && printf "export %s='%s'\n" "$v" "${!v}" >> "$DIR/topology.env"
  done)
  # shellcheck disable=SC1091
  . "$DIR/topology.env"
  unset AIRFLOW__CORE__UNIT_TEST_MODE

  log "airflow db migrate, pools (config/pools.json)"
  "$AIRFLOW" db migrate > "$DIR/logs/db-migrate.log" 2>&1 || { tail -30 "$DIR/logs/db-migrate.log" >&2; exit 1; }
  "$AIRFLOW" pools import "$ROOT/config/pools.json" > "$DIR/logs/pools.log" 2>&1 || { cat "$DIR/logs/pools.log" >&2; exit 1; }
  log "marketing_db migrations (qz-outbound db upgrade)"
  "$ROOT/.venv/bin/qz-outbound" db upgrade --marketing "$marketing" > "$DIR/logs/marketing-upgrade.log" 2>&1 \
    || { tail -30 "$DIR/logs/marketing-upgrade.log" >&2; exit 1; }

  if [ "$generate" != 0 ] && [ ! -f "$DIR/datamart.generated" ]; then
    local as_of=${QZ_TOPO_AS_OF:-$(TZ=Asia/Shanghai date +%F)}
    log "demo data mart: $generate subscribers as of $as_of"
    "$ROOT/.venv/bin/qz-outbound" generate-datamart --url "$datamart" --subscribers "$generate" --as-of "$as_of" --quiet \
      > "$DIR/logs/datamart.log" 2>&1 || { tail -30 "$DIR/logs/datamart.log" >&2; exit 1; }
    echo "$datamart $generate $as_of" > "$DIR/datamart.generated"
  fi

  if [ -n "${dev_smsc:-}" ]; then
    start_proc devsmsc "$PY" -m qz_outbound.dev.smsc serve --port "$SMSC_PORT" --http-port "$SMSC_HTTP_PORT" --system-id QZDEV
    wait_port "$SMSC_PORT" 30 || { log "development SMSC did not start"; cat "$DIR/logs/devsmsc.log" >&2; exit 1; }
  fi
  start_proc receiver "$PY" -m qz_outbound.sms --log-level WARNING receive --db "$marketing"

  start_proc api-server "$AIRFLOW" api-server --host 127.0.0.1 --port "$API_PORT" --workers 1
  start_proc scheduler "$AIRFLOW" scheduler
  start_proc dag-processor "$AIRFLOW" dag-processor
  start_proc triggerer "$AIRFLOW" triggerer --skip-serve-logs
  local w
  for w in $(seq 1 "$WORKERS"); do
    # no log server per worker (it binds every interface on a fixed port): the logs are local files
    start_proc "celery-worker-$w" "$AIRFLOW" celery worker --celery-hostname "worker$w@%h" --skip-serve-logs
  done

  local deadline=$((SECONDS + 180))
  until http_get "http://127.0.0.1:$API_PORT/api/v2/monitor/health" > /dev/null; do
    if (( SECONDS > deadline )); then log "api-server not healthy after 180 s"; tail -40 "$DIR/logs/api-server.log" >&2; exit 1; fi
    sleep 1
  done
  for w in $(seq 1 "$WORKERS"); do
    until grep -q "ready\." "$DIR/logs/celery-worker-$w.log" 2>/dev/null; do
      if (( SECONDS > deadline )); then log "celery worker $w not ready"; tail -40 "$DIR/logs/celery-worker-$w.log" >&2; exit 1; fi
      kill -0 "$(cat "$DIR/pids/celery-worker-$w.pid")" 2>/dev/null || { log "celery worker $w died"; tail -40 "$DIR/logs/celery-worker-$w.log" >&2; exit 1; }
      sleep 1
    done
  done
  log "up in $((SECONDS - t0)) s: http://127.0.0.1:$API_PORT (user hq; password in $DIR/secrets.env)"
  echo "API_URL=http://127.0.0.1:$API_PORT"
  echo "TOPOLOGY_ENV=$DIR/topology.env"
  echo "STARTUP_SECONDS=$((SECONDS - t0))"
}

case "${1:-}" in
  start) trap 'rc=$?; [ $rc -ne 0 ] && { log "start failed: stopping what started"; stop_all; }; exit $rc' EXIT
         start_all ;;
  stop) stop_all ;;
  status) status_all ;;
  env) cat "$DIR/topology.env" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac

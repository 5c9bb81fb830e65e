#!/usr/bin/env bash
# Installs (Debian package redis-server) and starts one Redis on 127.0.0.1, idempotently; the
# Celery broker of the production topology on loopback (scripts/topology.sh). A Redis already
# answering on the port is left alone. Prints its URL on stdout (everything else to stderr).
#
#   scripts/services/redis.sh start PORT DIR     # data, pid and log files under DIR
#   scripts/services/redis.sh stop DIR           # stops the one started there, by its pid file
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

cmd=${1:?start|stop}
if [ "$cmd" = stop ]; then
  dir=${2:?DIR}
  f="$dir/redis.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    pid=$(cat "$f"); kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "[redis] stopped ($pid)" >&2
  fi
  rm -f "$f"
  exit 0
fi

port=${2:?PORT}
dir=${3:?DIR}
if ! command -v redis-server >/dev/null 2>&1; then
  echo "[redis] installing Debian package redis-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the package's postinst from starting a system Redis on its default port
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  if ! apt-get install -y -q --no-install-recommends redis-server >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends redis-server >/dev/null
  fi
fi
if port_open "$port"; then
  echo "[redis] already up on $port" >&2
else
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save '' --appendonly no --protected-mode yes
  wait_port "$port" 20 || { echo "[redis] did not start" >&2; tail -20 "$dir/redis.log" >&2; exit 1; }
  echo "[redis] up on $port" >&2
fi
echo "redis://127.0.0.1:$port/0"

#!/usr/bin/env bash
# Stop what start.sh started, each by its own pid (never by name).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

stop_pid() {  # stop_pid NAME PIDFILE
  local name=$1 f=$2 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    echo "[services] stopped $name ($pid)" >&2
  fi
  rm -f "$f"
}

stop_pid jasmin "$JASMIN_ROOT/jasmind.pid"

rabbit_dir="$QZ_SERVICES_RUN/rabbitmq"
if [ -f "$rabbit_dir/rabbit.pid" ]; then
  runuser -u rabbitmq -- env HOME="$rabbit_dir" RABBITMQ_NODENAME=qz_rabbit@localhost ERL_EPMD_PORT=4379 \
    /usr/lib/rabbitmq/bin/rabbitmqctl -q stop "$rabbit_dir/rabbit.pid" >/dev/null 2>&1 || stop_pid rabbitmq "$rabbit_dir/rabbit.pid"
  rm -f "$rabbit_dir/rabbit.pid"
fi
# epmd daemonized on its own: stop the one listening on our port, by its pid
epmd_pid=$(ss -Hltnp 'sport = :4379' 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "${epmd_pid:-}" ] && kill "$epmd_pid" 2>/dev/null && echo "[services] stopped epmd ($epmd_pid)" >&2

stop_pid redis "$QZ_SERVICES_RUN/redis/redis.pid"
exit 0

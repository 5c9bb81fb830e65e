#!/usr/bin/env bash
# Start Redis, RabbitMQ and Jasmin 0.11.0 on 127.0.0.1 for the interoperability tests,
# idempotently: a service already answering on its port is left alone.
# Runs install.sh first (a no-op once installed). Prints the ports as KEY=VALUE lines.
#
#   scripts/services/start.sh        # install if needed, start all three
#   scripts/services/stop.sh         # stop them (by their own pid files)
#
# Provisioning Jasmin (user, upstream connector to a development SMSC, routes) is done
# by the tests through jCli: qz_outbound.dev.jasmin.provision().
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
bash "$here/install.sh" >&2

mkdir -p "$QZ_SERVICES_RUN"
log() { echo "[services] $*" >&2; }

# ---------------------------------------------------------------- redis
redis_dir="$QZ_SERVICES_RUN/redis"
if port_open "$QZ_REDIS_PORT"; then
  log "redis already up on $QZ_REDIS_PORT"
else
  mkdir -p "$redis_dir"
  redis-server --bind 127.0.0.1 --port "$QZ_REDIS_PORT" --dir "$redis_dir" \
    --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log" \
    --save '' --appendonly no --protected-mode yes
  wait_port "$QZ_REDIS_PORT" 20 || { log "redis did not start"; tail -20 "$redis_dir/redis.log" >&2; exit 1; }
  log "redis up on $QZ_REDIS_PORT"
fi

# ---------------------------------------------------------------- rabbitmq
rabbit_dir="$QZ_SERVICES_RUN/rabbitmq"
rabbit_env=(
  HOME="$rabbit_dir"
  RABBITMQ_NODENAME=qz_rabbit@localhost
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  RABBITMQ_NODE_PORT="$QZ_RABBITMQ_PORT"
  RABBITMQ_DIST_PORT="$QZ_RABBITMQ_DIST_PORT"
  RABBITMQ_MNESIA_BASE="$rabbit_dir/mnesia"
  RABBITMQ_LOG_BASE="$rabbit_dir/log"
  RABBITMQ_PID_FILE="$rabbit_dir/rabbit.pid"
  RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit_dir/enabled_plugins"
  RABBITMQ_CONFIG_FILE="$rabbit_dir/rabbitmq"
  RABBITMQ_SERVER_START_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  ERL_EPMD_ADDRESS=127.0.0.1
  ERL_EPMD_PORT=4379
)
rabbitctl() { runuser -u rabbitmq -- env "${rabbit_env[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl "$@"; }
if port_open "$QZ_RABBITMQ_PORT"; then
  log "rabbitmq already up on $QZ_RABBITMQ_PORT"
else
  mkdir -p "$rabbit_dir/log" "$rabbit_dir/mnesia"
  echo '[].' > "$rabbit_dir/enabled_plugins"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$QZ_RABBITMQ_PORT" > "$rabbit_dir/rabbitmq.conf"
  chown -R rabbitmq:rabbitmq "$rabbit_dir"
  # setsid: the broker outlives this script; epmd daemonizes on its own (stop.sh stops it by pid)
  setsid runuser -u rabbitmq -- env "${rabbit_env[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server \
    > "$rabbit_dir/log/startup.log" 2>&1 < /dev/null &
  deadline=$((SECONDS + 120))
  until rabbitctl -q await_startup --timeout 5 >/dev/null 2>&1; do
    if (( SECONDS > deadline )); then log "rabbitmq did not start"; tail -30 "$rabbit_dir/log/startup.log" >&2; exit 1; fi
    sleep 1
  done
  log "rabbitmq up on $QZ_RABBITMQ_PORT"
fi

# ---------------------------------------------------------------- jasmin
jroot="$JASMIN_ROOT"
jconf="$jroot/etc/jasmin"
if port_open "$QZ_JASMIN_JCLI_PORT" && port_open "$QZ_JASMIN_SMPP_PORT"; then
  log "jasmin already up (smpp $QZ_JASMIN_SMPP_PORT, jcli $QZ_JASMIN_JCLI_PORT)"
else
  if pid_alive "$jroot/jasmind.pid"; then kill "$(cat "$jroot/jasmind.pid")" 2>/dev/null || true; sleep 1; fi
  mkdir -p "$jconf/resource" "$jconf/store" "$jroot/var/log/jasmin" "$jroot/var/run"
  cp "$JASMIN_RESOURCE_SRC/"* "$jconf/resource/"
  cat > "$jconf/jasmin.cfg" <<CFG
[smpp-server]
id = qz_jasmin
bind = 127.0.0.1
port = $QZ_JASMIN_SMPP_PORT
log_privacy = True
[smpp-server-pb]
bind = 127.0.0.1
port = $QZ_JASMIN_SMPPSPB_PORT
[smpp-server-pb-client]
host = 127.0.0.1
port = $QZ_JASMIN_SMPPSPB_PORT
[client-management]
bind = 127.0.0.1
port = $QZ_JASMIN_SMPPCM_PORT
[service-smppclient]
[sm-listener]
log_privacy = True
[dlr]
log_privacy = True
# a receipt may overtake the submit_sm_resp bookkeeping: look it up again soon
dlr_lookup_retry_delay = 1
dlr_lookup_max_retries = 5
[amqp-broker]
host = 127.0.0.1
port = $QZ_RABBITMQ_PORT
[http-api]
bind = 127.0.0.1
port = $QZ_JASMIN_HTTP_PORT
log_privacy = True
[router]
bind = 127.0.0.1
port = $QZ_JASMIN_ROUTER_PORT
persistence_timer_secs = 0
[deliversm-thrower]
[dlr-thrower]
[redis-client]
host = 127.0.0.1
port = $QZ_REDIS_PORT
[jcli]
bind = 127.0.0.1
port = $QZ_JASMIN_JCLI_PORT
admin_username = $QZ_JASMIN_ADMIN_USER
admin_password = $(printf '%s' "$QZ_JASMIN_ADMIN_PASSWORD" | md5sum | cut -d' ' -f1)
[interceptor-client]
host = 127.0.0.1
CFG
  (
    cd "$jroot"
    export ROOT_PATH="$jroot" CONFIG_PATH="$jconf" STORE_PATH="$jconf/store/" \
      RESOURCE_PATH="$jconf/resource/" LOG_PATH="$jroot/var/log/jasmin"
    setsid "$JASMIN_VENV/bin/python" "$JASMIN_VENV/bin/jasmind.py" -c "$jconf/jasmin.cfg" \
      --enable-dlr-thrower --enable-dlr-lookup \
      > "$jroot/jasmind.out" 2>&1 < /dev/null &
    echo $! > "$jroot/jasmind.pid"
  )
  if ! wait_port "$QZ_JASMIN_JCLI_PORT" 60 || ! wait_port "$QZ_JASMIN_SMPP_PORT" 30; then
    log "jasmin did not start"; tail -40 "$jroot/jasmind.out" >&2; exit 1
  fi
  log "jasmin up (smpp $QZ_JASMIN_SMPP_PORT, jcli $QZ_JASMIN_JCLI_PORT)"
fi

echo "QZ_JASMIN_SMPP_PORT=$QZ_JASMIN_SMPP_PORT"
echo "QZ_JASMIN_JCLI_PORT=$QZ_JASMIN_JCLI_PORT"
echo "QZ_JASMIN_HTTP_PORT=$QZ_JASMIN_HTTP_PORT"
echo "QZ_JASMIN_ADMIN_USER=$QZ_JASMIN_ADMIN_USER"
echo "QZ_JASMIN_ADMIN_PASSWORD=$QZ_JASMIN_ADMIN_PASSWORD"
